"""The GPU proof script (`benchmarks/gpu/h200_proof.py`) at smoke size on CPU: every step runs (the CUDA tests skip,
the engine benchmark and the lane table run tiny), the outputs land in --out, and a second run skips every finished
step, so the one command a GPU session runs is known to work end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_h200_proof_smoke_runs_every_step_and_resumes(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = [sys.executable, "benchmarks/gpu/h200_proof.py", "--smoke", "--out", str(out), "--work", str(work),
           "--budget-s", "1500"]
    env = {**os.environ, "PRUNEBENCH_PROGRESS": "0", "PRUNEBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    summary = json.loads((out / "summary.json").read_text())
    steps = summary["steps"]
    assert list(steps) == ["cuda_tests", "engine", "ddp", "lane_table"]
    assert steps["cuda_tests"]["status"] == "ok" and steps["cuda_tests"]["tests"] > 0
    assert steps["cuda_tests"]["skipped"] == steps["cuda_tests"]["tests"]  # no GPU here: every cuda test skips
    assert {g["goal"] for g in steps["engine"]["goals"]} == {"slr step / plain step", "admm step / plain step"}
    assert steps["ddp"]["status"] in ("ok", "skipped")
    lane = steps["lane_table"]
    assert lane["status"] == "ok" and lane["calibration"]["img_per_s"] > 0 and lane["predicted_s"] > 0
    for name in ("summary.md", "cuda_tests.xml", "engine_smoke.md", "engine_smoke.json", "ufld_synthetic_table_smoke.md"):
        assert (out / name).is_file(), name
    assert "## Profile: slr step / plain step" in (out / "engine_smoke.md").read_text()
    table = (out / "ufld_synthetic_table_smoke.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 4.21x |")]
    assert [r.split("|")[2].strip() for r in rows] == ["admm", "slr"]
    assert "Command: `python benchmarks/gpu/ufld_synthetic_table.py" in table and "torch 2." in table
    assert "cosine-iter" in table and "git: " in table and "git: None" not in table

    # A rerun with the same --work finds every step done and only rewrites the summary.
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("done in an earlier run") == 4
    assert all(s.get("resumed") for s in json.loads((out / "summary.json").read_text())["steps"].values())


def test_work_inside_out_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/gpu/h200_proof.py", "--out", str(tmp_path),
                           "--work", str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "must not be inside --out" in proc.stderr


def _proof_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("h200_proof", ROOT / "benchmarks" / "gpu" / "h200_proof.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["h200_proof"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_lane_plan_is_sized_to_the_budget():
    proof = _proof_module()
    base = proof.lanes.TablePlan()
    fast = proof.Calibration(img_per_s=1500.0, gen_frames_per_s=100.0, run_overhead_s=10.0)
    plan = proof.size_lane_plan(base, fast, 300.0)
    assert plan is not None and proof.lane_seconds(plan, fast) <= 300.0
    assert plan.modes == "paper,reference" and plan.cells() == 12  # fast enough for both modes
    more = dataclasses.replace(plan, train=plan.train + 1, test=min(500, max(64, (plan.train + 1) // 6)))
    assert plan.train == proof.FRAMES[1] or proof.lane_seconds(more, fast) > 300.0  # the most frames that fit
    slow = proof.Calibration(img_per_s=150.0, gen_frames_per_s=100.0, run_overhead_s=10.0)
    plan = proof.size_lane_plan(base, slow, 300.0)
    assert plan is not None and plan.modes == "paper" and proof.lane_seconds(plan, slow) <= 300.0
    assert proof.size_lane_plan(base, slow, 60.0) is None  # nothing worth running fits

