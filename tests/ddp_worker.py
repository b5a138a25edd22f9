"""A worker for tests/test_distributed.py, started by `python -m torch.distributed.run --standalone --nproc_per_node N
tests/ddp_worker.py SPEC.json`: runs the spec's runs through the real runner (harness.runner.Run) on every rank and
saves what each rank ended with (method state, model weights, the record it returned) to `<dump>/rank<r>-<i>.pt`, so
the test can compare ranks bitwise.

SPEC: {"runs": [RunConfig dicts], "dump": folder, "nan_rank": optional rank whose loss turns NaN in method epoch 2}.
Exit code: 3 when a run failed (as the CLI), else 0.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from adapters.classification import DigitsTask  # noqa: E402
from harness import distributed  # noqa: E402
from harness.config import RunConfig  # noqa: E402
from harness.runner import Run  # noqa: E402
from harness.tasks import register_task  # noqa: E402


class NanDigits(DigitsTask):
    """Digits whose loss becomes NaN on one rank from the 2nd epoch of the method phase (steps counted per rank)."""

    name = "nandigits"
    nan_rank = -1
    nan_after_steps = 10**9

    def loss(self, model, batch):
        loss = super().loss(model, batch)
        self._steps = getattr(self, "_steps", 0) + 1
        if distributed.world().rank == self.nan_rank and self._steps > self.nan_after_steps:
            return loss * float("nan")
        return loss


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    dump = Path(spec["dump"])
    if spec.get("nan_rank") is not None:
        NanDigits.nan_rank = int(spec["nan_rank"])
        NanDigits.nan_after_steps = int(spec["nan_after_steps"])
        register_task("nandigits", NanDigits)
    rank = int(os.environ.get("RANK", "0"))
    failed = False
    for i, doc in enumerate(spec["runs"]):
        run = Run(RunConfig.from_dict(doc, where="ddp_worker"), log=print if rank == 0 else (lambda s: None))
        record = run.execute()
        failed |= record["status"] != "completed"
        method = run.method
        torch.save({"record": record, "method": method.state_dict() if method is not None else None,
                    "scalars": method.scalar_state() if method is not None else None,
                    "model": run.model.state_dict() if run.model is not None else None,
                    "world": distributed.world().describe()}, dump / f"rank{rank}-{i}.pt")
    distributed.destroy()
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
