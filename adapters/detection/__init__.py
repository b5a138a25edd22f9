"""Object detection (YOLOv3 family in Ultralytics 8.x on COCO): data conversion lives in `coco_data`."""

from adapters.detection.task import CocoTask  # noqa: E402,F401  (the `--task coco` adapter; imports no ultralytics)
