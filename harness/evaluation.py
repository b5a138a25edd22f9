"""The evaluator protocol and the one inference loop every task uses (after detectron2's evaluator.py).

An evaluator is three methods: `reset()` before a pass, `process(batch, outputs)` per batch, `evaluate()` at the end,
returning a flat dict of metric name -> float. Tasks choose the evaluator; the loop below is shared.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import torch
from torch import nn

from harness.progress import progress


@runtime_checkable
class Evaluator(Protocol):
    """Accumulates predictions over one pass of a dataset and turns them into metrics."""

    def reset(self) -> None: ...

    def process(self, batch: Any, outputs: Any) -> None: ...

    def evaluate(self) -> dict[str, float]: ...


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
    was_training = model.training
    model.eval()
    evaluator.reset()
    try:
        for batch in progress(loader, desc=desc, leave=False):
            evaluator.process(batch, forward(model, batch))
    finally:
        model.train(was_training)
    return evaluator.evaluate()
