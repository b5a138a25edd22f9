"""Learning-rate schedules: UFLD's per-iteration warm-up + cosine (with upstream's off-by-one), resume, CLI and runs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from adapters.classification import DigitsTask
from harness.errors import UserError
from harness.runner import RunConfig, run
from harness.schedules import WarmupCosinePerIteration, iterations_per_epoch, make_schedule
from harness.tasks import TaskConfig
from harness.training import train_epoch
from tests.test_runner import cli, save_digits


class LrRecorder(nn.Module):
    """A one-parameter model whose loss records the lr the optimizer will use for this batch."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.seen: list[float] = []
        self.opt: torch.optim.Optimizer | None = None

    def loss(self, model, batch):
        self.seen.append(self.opt.param_groups[0]["lr"])
        return (self.w * batch).sum() ** 2


def train_lrs(epochs: int, iters: int, warmup: int, lr: float = 0.4, start_epoch: int = 1,
              resume_from: int | None = None) -> list[float]:
    model = LrRecorder()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.opt = opt
    sched = make_schedule(opt, "cosine-iter", epochs, iters, warmup)
    if resume_from is not None:
        sched.resume_at(resume_from)
    loader = [torch.ones(3)] * iters
    for epoch in range(start_epoch, epochs + 1):
        train_epoch(model, loader, model.loss, opt, None, epoch, torch.device("cpu"), schedule=sched)
        sched.after_epoch()
    return model.seen


def ufld_lr(step: int, lr: float, warmup: int, total: int) -> float:
    """The lr upstream trains step `step` with: the initial lr, then the value set after the previous step."""
    if step == 0:
        return lr
    t = step - 1
    return lr * t / warmup if t < warmup else lr * (1 + math.cos(math.pi * t / total)) / 2


def test_cosine_iter_matches_upstream_step_by_step():
    epochs, iters, warmup, lr = 3, 7, 5, 0.4
    seen = train_lrs(epochs, iters, warmup, lr)
    expected = [ufld_lr(t, lr, warmup, epochs * iters) for t in range(epochs * iters)]
    assert seen == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert seen[1] == 0.0 and seen[2] == pytest.approx(lr / warmup)  # upstream's off-by-one, kept on purpose
    assert seen[-1] < seen[warmup + 1] < lr


def test_cosine_iter_resume_continues_the_curve():
    epochs, iters, warmup = 4, 6, 4
    full = train_lrs(epochs, iters, warmup)
    resumed = train_lrs(epochs, iters, warmup, start_epoch=3, resume_from=2)
    assert resumed == pytest.approx(full[2 * iters:], rel=1e-12)


def test_schedule_kinds_and_errors():
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)
    assert make_schedule(opt, "constant", 5).describe() == {"kind": "constant"}
    assert make_schedule(opt, "cosine", 5).describe() == {"kind": "cosine", "epochs": 5}
    s = make_schedule(opt, "cosine-iter", 5, 10, 100)
    assert isinstance(s, WarmupCosinePerIteration) and s.describe()["total_iters"] == 50
    with pytest.raises(UserError, match="unknown scheduler 'step'"):
        make_schedule(opt, "step", 5)
    assert iterations_per_epoch([0] * 9, None) == 9 and iterations_per_epoch([0] * 9, 4) == 4


def test_run_with_cosine_iter_records_schedule(workdir):
    rec = run(RunConfig(task="digits", method="slr", rate=4.0, epochs=2, retrain_epochs=1, max_steps=5,
                        scheduler="cosine-iter", warmup_iters=3, weights=str(save_digits(workdir))),
              log=lambda s: None)
    assert rec["status"] == "completed"
    assert rec["config"]["schedule"] == {"kind": "cosine-iter", "warmup_iters": 3, "iters_per_epoch": 5,
                                         "total_iters": 10}
    lr = DigitsTask.recipe("cnn").lr
    # lr at the end of epoch 1 is the value set after step 4: cosine at 4/10 of the phase
    assert rec["curves"]["train"][0]["lr"] == pytest.approx(lr * (1 + math.cos(math.pi * 4 / 10)) / 2)


@pytest.mark.parametrize("args,needle", [
    (["--scheduler", "step"], "unknown --scheduler 'step'; choose one of: constant, cosine, cosine-iter"),
    (["--warmup-iters", "-1"], "--warmup-iters must be >= 0"),
])
def test_bad_scheduler_is_one_line(workdir, capsys, args, needle):
    code, _, err = cli(["run", "--method", "slr", "--rate", "4", "--epochs", "1", "--max-steps", "2"] + args, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no training here
def test_epoch_cosine_matches_torch_and_resumes_after_optimizer_state_load():
    def fresh():
        p = nn.Parameter(torch.ones(1))
        return torch.optim.Adam([p], lr=0.3)

    opt, ref_opt = fresh(), fresh()
    ours, ref = make_schedule(opt, "cosine", 6), torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=6)
    for _ in range(4):
        ours.after_epoch()
        ref.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
    # Resume: the optimizer state (which holds the annealed lr) is loaded, then the schedule is put at epoch 4.
    saved = opt.state_dict()
    opt2 = fresh()
    sched2 = make_schedule(opt2, "cosine", 6)
    opt2.load_state_dict(saved)
    sched2.resume_at(4)
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
    sched2.after_epoch()
    ours.after_epoch()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
