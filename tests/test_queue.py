"""The store is the queue: `benchmark sweep --executor local --workers 3` on one digits sweep, against SQLite and
against a throwaway PostgreSQL server (tests/conftest.py). One worker is stopped mid-cell until its lease runs out and
another finishes its cell, then it is killed with SIGKILL; every other cell runs exactly once, no row is duplicated,
and the store agrees with every run folder's record.json."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import db
from harness.results import ResultStore

ROOT = Path(__file__).resolve().parent.parent
GRID = ["--methods", "slr,admm", "--rates", "4", "--seeds", "0,1,2", "--epochs", "4", "--retrain-epochs", "0",
        "--pretrain-epochs", "1", "--max-steps", "3", "--device", "cpu"]
LEASE = 3.0  # seconds: a stopped worker loses its cell this long after its last heartbeat
ATTEMPT = re.compile(r"^--- sweep pid (\d+) on ", re.M)


def _held(store: ResultStore) -> list[tuple[str, int, float]]:
    c = db.claims.c
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(c.run_id, c.pid, c.expires).where(c.token.is_not(None)))]


def _attempts(run_dir: Path) -> list[int]:
    log = run_dir / "sweep.log"
    return [int(p) for p in ATTEMPT.findall(log.read_text())] if log.is_file() else []


def test_three_local_workers_share_the_queue_and_survive_a_lost_worker(store_url, tmp_path):
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRUNEBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "harness.cli", "sweep", *GRID, "--store", store_url, "--out", str(out),
            "--executor", "local", "--workers", "3", "--stale-after", str(LEASE)]
    sweep = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = ResultStore(store_url)
    victim = None
    try:
        # Stop a worker mid-cell: it holds the claim and has written an epoch checkpoint. Stop it right after one of
        # its heartbeats committed, so it is not stopped inside a database transaction (that would block the others
        # until it is killed: a stopped process keeps its locks, a killed one loses them).
        deadline, beats = time.monotonic() + 240, {}
        while victim is None:
            assert sweep.poll() is None, "the sweep ended before a worker could be stopped: " + sweep.stderr.read()
            assert time.monotonic() < deadline, "no worker was seen mid-cell"
            for run_id, pid, expires in _held(store):
                if beats.setdefault((run_id, pid), expires) != expires and (out / run_id / "checkpoint.pt").exists():
                    victim = run_id, pid
                    os.kill(pid, signal.SIGSTOP)
                    break
            time.sleep(0.02)
        # Its lease runs out and another worker takes the cell over (resuming its checkpoint if it wrote one).
        while len(_attempts(out / victim[0])) < 2:
            assert sweep.poll() is None and time.monotonic() < deadline, "the stopped worker's cell was not taken over"
            time.sleep(0.2)
        os.kill(victim[1], signal.SIGKILL)
        stdout, stderr = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
        if victim is not None:  # never leave a stopped process behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim[1], signal.SIGKILL)

    assert sweep.returncode == 0, stdout + stderr
    assert "ended without a result" in stderr  # the killed worker is reported, its cell is not lost
    cells = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(cells) == 6
    for run_id in cells:
        attempts = _attempts(out / run_id)
        if run_id == victim[0]:  # started by the stopped worker, resumed from its checkpoint by another one
            assert len(attempts) == 2 and attempts[0] == victim[1] != attempts[1], attempts
            assert "resuming " in (out / run_id / "sweep.log").read_text().split("--- sweep pid")[2]
        else:
            assert len(attempts) == 1, f"{run_id} ran {len(attempts)} times"
        on_disk = json.loads((out / run_id / "record.json").read_text())
        assert on_disk["status"] == "completed"
        assert store.get(run_id) == on_disk  # the store row is the record file
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.runs)).scalar() == 6  # no duplicate rows
        assert conn.execute(sa.select(sa.func.count()).select_from(db.claims)).scalar() == 6
    assert _held(store) == []  # every claim released
    assert stdout.count("completed ") == 6


def test_slurm_without_sbatch_is_one_line(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    with pytest.raises(SystemExit) as done:
        main(["sweep", "--methods", "magnitude", "--rates", "4", "--store", str(tmp_path / "s.sqlite"),
              "--out", str(tmp_path / "runs"), "--executor", "slurm", "--workers", "2"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "needs SLURM's sbatch and srun on the PATH" in err and err.count("\n") == 1


FAKE_SBATCH = """#!/bin/sh
cp "$1" "{dest}"
echo "Submitted batch job 4242"
"""


def test_slurm_workers_are_one_job_array(tmp_path, monkeypatch, capsys):
    """With a stand-in `sbatch` on the PATH: K workers become one array job with the partition, GPUs and time asked."""
    from harness.cli import main

    pytest.importorskip("submitit")
    script = tmp_path / "submitted.sh"
    (tmp_path / "bin").mkdir()
    sbatch = tmp_path / "bin" / "sbatch"
    sbatch.write_text(FAKE_SBATCH.format(dest=script))
    sbatch.chmod(0o755)
    (tmp_path / "bin" / "srun").symlink_to("/bin/true")  # submitit checks that srun exists
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SystemExit) as done:
        main(["sweep", "--methods", "magnitude", "--rates", "4", "--store", str(tmp_path / "s.sqlite"),
              "--out", str(tmp_path / "runs"), "--executor", "slurm", "--workers", "4", "--slurm-partition", "gpu",
              "--gpus-per-task", "1", "--timeout-min", "90"])
    assert done.value.code == 0
    text = script.read_text()
    for line in ("#SBATCH --array=0-3", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1", "#SBATCH --time=90"):
        assert line in text, text
    out = capsys.readouterr()
    assert "queued 4 SLURM workers" in out.out and "4242_0" in out.out
    assert "SQLite store is safe on one node only" in out.err


@pytest.mark.parametrize("argv, message", [
    (["--executor", "cloud"], "choose one of inline, local, slurm"),
    (["--workers", "3"], "--workers needs --executor local or slurm"),
    (["--executor", "local", "--workers", "0"], "at least 1"),
    (["--store", "mysql://u@h/db", "--executor", "local"], "SQLite or PostgreSQL only"),
])
def test_worker_flag_mistakes_are_one_line(tmp_path, capsys, argv, message):
    from harness.cli import main

    with pytest.raises(SystemExit) as done:
        main(["sweep", "--methods", "magnitude", "--rates", "4", "--out", str(tmp_path / "runs"),
              "--store", str(tmp_path / "s.sqlite"), *argv])
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and err.count("\n") == 1, err
