"""Nothing lost, nothing escapes: the finishing order under faults, claims on single runs, names that would become
paths, the dense cache key, and a dry run that writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import results, runner
from harness.cli import main
from harness.config import RunConfig
from harness.errors import UserError
from harness.runner import run
from harness.sweep import Claim, SweepSpec, run_sweep
from tests.test_runner import save_digits

QUICK = dict(task="digits", method="slr", rate=4.0, epochs=2, retrain_epochs=1, max_steps=3)


class Killed(BaseException):
    """Stands in for SIGKILL at a write point (BaseException: nothing in the runner may catch it)."""


def completed_records(workdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in workdir.glob("prunebench_runs/*/record.json")
            if json.loads(p.read_text())["status"] == "completed"]


@pytest.mark.parametrize("point", ["after_record", "after_store", "after_checkpoint_delete"])
def test_a_kill_at_each_write_point_of_the_finish_still_ends_in_one_completed_record(workdir, monkeypatch, point):
    cfg = dict(QUICK, weights=str(save_digits(workdir)))
    real_put, real_unlink = results.ResultStore.put, Path.unlink

    def put(self, record):
        if point == "after_record" and record["status"] == "completed":
            raise Killed
        out = real_put(self, record)
        if point == "after_store" and record["status"] == "completed":
            raise Killed
        return out

    def unlink(self, missing_ok=False):
        real_unlink(self, missing_ok=missing_ok)
        if point == "after_checkpoint_delete" and self.name == "checkpoint.pt":
            raise Killed

    monkeypatch.setattr(results.ResultStore, "put", put)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(Killed):
        run(RunConfig(**cfg), log=lambda s: None)
    monkeypatch.setattr(results.ResultStore, "put", real_put)  # (not undo(): that would also undo the chdir)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    rec = run(RunConfig(**cfg), resume=True, log=lambda s: None)
    assert rec["status"] == "completed"
    assert len(completed_records(workdir)) == 1
    rows = list(results.ResultStore(workdir / "prunebench.sqlite").records())
    assert [r["status"] for r in rows] == ["completed"]


def test_a_second_process_cannot_run_the_same_run_id(workdir):
    cfg = RunConfig(**QUICK, pretrain_epochs=1)
    runner.resolve(cfg, runner.validate(cfg))
    holder = Claim(cfg.store, cfg.run_id())
    holder.pid = os.getppid()  # a live process on this host that is not us (our parent)
    assert holder.acquire()
    with pytest.raises(UserError, match="being run by another process"):
        run(RunConfig(**QUICK, pretrain_epochs=1), log=lambda s: None)


@pytest.mark.parametrize("task,model", [("../../escape", "cnn"), ("digits", "../cnn"), ("digits", "a/b")])
def test_names_that_would_become_paths_are_refused(workdir, task, model):
    spec = SweepSpec(task=task, model=model, methods=["slr"], rates=[4.0])
    with pytest.raises(UserError):
        run_sweep(spec, store=workdir / "s.sqlite", out=workdir / "runs")
    assert not any(p.is_dir() for p in workdir.parent.glob("escape*"))
    with pytest.raises(UserError):
        run(RunConfig(task=task, model=model, method="slr", rate=4.0), log=lambda s: None)


def test_run_ids_are_path_safe():
    assert RunConfig(task="digits", model="cnn", method="slr", rate=4.0).run_id().startswith("digits-cnn-slr-4x-s0-")
    weird = RunConfig(task="a b", model="c/d", method="slr", rate=4.0).run_id()  # built in Python, not validated
    assert "/" not in weird and " " not in weird


def test_dense_cache_is_keyed_by_every_setting_that_changes_the_dense_model(workdir, monkeypatch):
    cache = workdir / "cache"
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(cache))
    base = dict(task="digits", method="magnitude", rate=2.0, epochs=0, retrain_epochs=0, pretrain_epochs=1,
                max_steps=2)
    for batch in (16, 32, 32):
        run(RunConfig(**base, batch_size=batch), log=lambda s: None)
    assert len(list(cache.glob("dense-*.pt"))) == 2  # batch 16 and batch 32; the second 32 reused its cache
    victim = sorted(cache.glob("dense-*.pt"))[0]
    victim.write_bytes(b"torn")  # a corrupt cache is retrained, not fatal
    for batch in (16, 32):
        assert run(RunConfig(**base, batch_size=batch, seed=0), resume=False, log=lambda s: None)["status"] == \
            "completed"


def test_sweep_dry_run_creates_no_store(workdir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--methods", "slr", "--rates", "4", "--dry-run", "--store", str(workdir / "s.sqlite")])
    assert exc.value.code == 0 and "todo" in capsys.readouterr().out
    assert not (workdir / "s.sqlite").exists()


def test_out_that_is_a_file_is_one_line(workdir, capsys):
    (workdir / "file").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["run", "--method", "slr", "--rate", "4", "--out", str(workdir / "file")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "is a file" in err and len(err.strip().splitlines()) == 1
