"""The evaluator protocol and the one inference loop every task uses (after detectron2's evaluator.py).

An evaluator is three methods: `reset()` before a pass, `process(batch, outputs)` per batch, `evaluate()` at the end,
returning a flat dict of metric name -> float. Tasks choose the evaluator; the loop below is shared.

Under data-parallel training (harness/distributed.py) the loop splits the dataset into contiguous per-rank slices
(each sample exactly once, no padding) when the evaluator can merge partial passes (`MergeableEvaluator`: `partial()`
and `merge(partials)`, as detectron2 gathers its evaluators' predictions); rank 0 scores the merged pass and every
rank gets rank 0's metrics, so decisions taken on them (early stop) are the same everywhere. An evaluator without
`merge` is run over the whole dataset on every rank.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import torch
from torch import nn

from harness import distributed
from harness.progress import progress


@runtime_checkable
class Evaluator(Protocol):
    """Accumulates predictions over one pass of a dataset and turns them into metrics."""

    def reset(self) -> None: ...

    def process(self, batch: Any, outputs: Any) -> None: ...

    def evaluate(self) -> dict[str, float]: ...


@runtime_checkable
class MergeableEvaluator(Evaluator, Protocol):
    """An evaluator whose pass can be split: `partial()` is what `process` accumulated (picklable), and
    `merge(partials)` replaces it by the union of the partials given in dataset order."""

    def partial(self) -> Any: ...

    def merge(self, partials: list[Any]) -> None: ...


@torch.no_grad()
def inference_on_dataset(
    model: nn.Module,
    loader: Iterable,
    evaluator: Evaluator,
    forward: Callable[[nn.Module, Any], Any],
    desc: str = "eval",
) -> dict[str, float]:
    """Run `forward(model, batch)` over `loader` in eval mode and return `evaluator.evaluate()`.

    `forward` moves the batch to the device and returns what the evaluator's `process` expects; the model's
    train/eval mode is restored afterwards so the caller's training state is untouched.
    """
    split = distributed.collective() and isinstance(evaluator, MergeableEvaluator)
    shard = distributed.shard_eval_loader(loader) if split else None
    was_training = model.training
    model.eval()
    evaluator.reset()
    try:
        for batch in progress(loader if shard is None else shard, desc=desc, leave=False):
            evaluator.process(batch, forward(model, batch))
    finally:
        model.train(was_training)
    if not distributed.collective():
        return evaluator.evaluate()
    if shard is not None:
        evaluator.merge(distributed.gather_objects(evaluator.partial()))  # type: ignore[attr-defined]
    return distributed.broadcast_object(evaluator.evaluate() if distributed.world().is_main else None)
