"""Sweeps: config files, shards, resume after `kill -9`, and two processes sharing one store (digits, CPU).
Claims themselves: tests/test_claims.py; launched workers on SQLite and PostgreSQL: tests/test_queue.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import sweep as sw
from harness.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
BENCH = [sys.executable, "-m", "harness.cli"]
TINY = ["--methods", "slr,magnitude,admm", "--rates", "4,10", "--epochs", "2", "--retrain-epochs", "1",
        "--pretrain-epochs", "1", "--max-steps", "2", "--device", "cpu"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PRUNEBENCH_PROGRESS": "0"}


def _statuses(store: Path) -> dict[str, tuple[str, str]]:
    if not store.exists():
        return {}
    with sqlite3.connect(store, timeout=30) as db:
        return {r: (s, f) for r, s, f in db.execute("SELECT run_id, status, finished FROM runs")}


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_config_loads(path):
    spec = sw.load_spec(path)
    cells = spec.cells("s.sqlite", "out")
    assert cells and all(c.task == spec.task and c.model for c in cells)
    assert len({c.run_id() for c in cells}) == len(cells)
    if spec.run.get("prune_config"):
        assert Path(spec.run["prune_config"]).is_file()


def test_unknown_config_key_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: digits\nrun: {epoch: 3}\n")  # typo: epoch
    with pytest.raises(UserError, match="epoch"):
        sw.load_spec(bad)


def test_shards_partition_the_grid():
    spec = sw.SweepSpec(methods=["slr", "admm", "magnitude"], rates=[4.0, 10.0], seeds=[0, 1])
    ids = [c.run_id() for c in spec.cells("s", "o")]
    parts = [[ids[k] for k in range(len(ids)) if k % 3 == i] for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and all(parts)
    assert sw.parse_shard("1/3") == (1, 3)
    with pytest.raises(UserError):
        sw.parse_shard("3/3")


def test_kill9_then_resume_loses_no_finished_cell(tmp_path):
    store = tmp_path / "s.sqlite"
    args = BENCH + ["sweep", *TINY, "--store", str(store), "--out", str(tmp_path / "runs")]
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 150
    while time.time() < deadline and proc.poll() is None:
        if any(s == "completed" for s, _ in _statuses(store).values()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "sweep finished before it could be killed: " + proc.stdout.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r: f for r, (s, f) in _statuses(store).items() if s == "completed"}
    assert 1 <= len(before) < 6
    # the killed process's claim is stale (pid dead) and is taken over on restart
    done = subprocess.run(args, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _statuses(store)
    assert len(after) == 6 and all(s == "completed" for s, _ in after.values())
    for run_id, finished in before.items():  # finished cells were skipped, not redone
        assert after[run_id][1] == finished
        assert f"skipped  completed  {run_id}" in done.stdout
    assert not list(tmp_path.glob("*.claims"))  # no lock files: claims live in the store, all released
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM claims WHERE token IS NOT NULL").fetchone() == (0,)


def test_two_processes_share_one_store_without_duplicating_work(tmp_path):
    store = tmp_path / "s.sqlite"
    args = BENCH + ["sweep", *TINY, "--store", str(store), "--out", str(tmp_path / "runs"), "--seeds", "1"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ran = [{line.split()[2] for line in o.splitlines() if line.startswith("ran ")} for o, _ in outs]
    assert not ran[0] & ran[1], "a cell ran in both processes"
    statuses = _statuses(store)
    assert set(statuses) == ran[0] | ran[1] and len(statuses) == 6
    assert all(s == "completed" for s, _ in statuses.values())


def test_failing_cell_is_recorded_and_the_rest_go_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = sw.SweepSpec(methods=["slr", "magnitude"], rates=[4.0],
                        run=dict(epochs=1, retrain_epochs=1, pretrain_epochs=1, max_steps=2, device="cpu"),
                        method_overrides={"slr": {"run": {"prune_pattern": "no_such_layer"}}})
    outcomes = sw.run_sweep(spec, store=tmp_path / "s.sqlite", out=tmp_path / "runs")
    assert [o.status for o in outcomes] == ["failed", "completed"]
    assert "matches no parameter" in outcomes[0].error
    assert _statuses(tmp_path / "s.sqlite")[outcomes[0].run_id][0] == "failed"


def test_unknown_method_stops_the_sweep_before_any_cell(tmp_path, monkeypatch):
    """Names are checked against the registries before they become run folders: a typo costs seconds, not a grid."""
    monkeypatch.chdir(tmp_path)
    spec = sw.SweepSpec(methods=["bogus", "magnitude"], rates=[4.0], run=dict(epochs=1))
    with pytest.raises(UserError, match="unknown sweep method 'bogus'"):
        sw.run_sweep(spec, store=tmp_path / "s.sqlite", out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
