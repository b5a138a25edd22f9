"""Lane detection: Ultra-Fast-Lane-Detection (UFLD v1) on TuSimple.

Modules, one job each: `constants` (protocol numbers), `ufld_model` (parsingNet + strict checkpoint loading),
`convert` (TuSimple JSON -> UFLD label PNGs and lists), `targets` (row-anchor and aux targets), `transforms`
(preprocessing and augmentation), `tusimple_data` (layout checks and Datasets), `loss`, `decode` (logits ->
prediction JSON lines; `TuSimpleTask.predict` returns these records, scored by harness/evaluators/tusimple), `synthetic` (a TuSimple-format generator for tests) and `task`.
"""

from adapters.lanes.task import TuSimpleTask

__all__ = ["TuSimpleTask"]
