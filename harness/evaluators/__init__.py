"""Task-specific metric implementations (COCO bbox AP, TuSimple lane accuracy, ...), each a plain function API."""
