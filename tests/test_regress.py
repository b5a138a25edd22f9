"""Regression checks: CI sweep vs the committed baseline, injected regressions, tables, JUnit, schema versions."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = [sys.executable, "-m", "harness.cli"]
BASELINE = ROOT / "benchmarks" / "baselines" / "ci_digits.json"
# Measured (see README "Regression baseline"): same seed and thread count -> bit-identical records; 1 vs 2 CPU threads
# moved cells by up to 2.9 points (retrained ADMM/SLR at 10x). A one-sided 4-point floor absorbs that; a broken SLR or
# ADMM (hard-pruned 4x: 91 -> ~64, the magnitude level) is far beyond it.
CI_TOL = "4.0"


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRUNEBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "2"}
    return subprocess.run(BENCH + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A fresh run of benchmarks/configs/ci_digits.yaml (about a minute on 2 cores), as a records JSON."""
    d = tmp_path_factory.mktemp("ci")
    env_cache = {"PRUNEBENCH_CACHE": str(d / "cache")}
    os.environ.update(env_cache)  # a clean dense cache: the baseline's dense model is rebuilt, not borrowed
    done = _bench("sweep", "--config", str(ROOT / "benchmarks/configs/ci_digits.yaml"), "--store", "s.sqlite",
                  "--out", "runs", cwd=d)
    assert done.returncode == 0, done.stdout + done.stderr
    out = _bench("export", "--results", "s.sqlite", "--format", "records", "--out", "fresh.json", cwd=d)
    assert out.returncode == 0, out.stderr
    return d / "fresh.json"


def test_ci_sweep_matches_committed_baseline(fresh, tmp_path):
    junit = tmp_path / "regress.xml"
    done = _bench("regress", "--results", str(fresh), "--against", str(BASELINE), "--tol", CI_TOL, "--junit", str(junit),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    suite = ET.parse(junit).getroot()
    assert int(suite.get("tests")) >= 36 and suite.get("failures") == "0"


def test_injected_regression_fails_and_names_the_cell(fresh, tmp_path):
    records = json.loads(fresh.read_text())
    worse = copy.deepcopy(records)
    for r in worse:
        if r["method"] == "slr" and r["rate_requested"] == 4.0:
            r["metrics_full"]["hardpruned"]["top1"] -= 5.0  # a 5-point drop: a real regression
    bad = tmp_path / "worse.json"
    bad.write_text(json.dumps(worse))
    junit = tmp_path / "j.xml"
    done = _bench("regress", "--results", str(bad), "--against", str(BASELINE), "--tol", CI_TOL, "--junit", str(junit),
                  cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL slr 4.0x hardpruned top1" in done.stdout
    failures = [c for c in ET.parse(junit).getroot() if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["slr 4x hardpruned top1"]


def test_one_sided_vs_two_sided(fresh, tmp_path):
    records = json.loads(fresh.read_text())
    better = copy.deepcopy(records)
    for r in better:
        r["metrics_full"]["retrained"]["top1"] += 1.0
    path = tmp_path / "better.json"
    path.write_text(json.dumps(better))
    assert _bench("regress", "--results", str(path), "--against", str(fresh), "--tol", "0.5", cwd=tmp_path).returncode == 0
    assert _bench("regress", "--results", str(path), "--against", str(fresh), "--tol", "0.5", "--two-sided",
                  cwd=tmp_path).returncode == 1


def test_paper_table_cells_without_runs_are_not_run_not_failures(fresh, tmp_path):
    done = _bench("regress", "--results", str(fresh), "--against", str(ROOT / "benchmarks/tables/paper_table1.csv"),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not run" in done.stdout and "0 passed, 0 failed, 33 not run" in done.stderr


def test_unknown_schema_version_is_refused_in_one_line(fresh, tmp_path):
    records = json.loads(fresh.read_text())
    records[0]["schema_version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(records))
    for cmd in (["regress", "--results", str(path), "--against", str(BASELINE)],
                ["export", "--results", str(path), "--format", "md", "--out", str(tmp_path / "x.md")]):
        done = _bench(*cmd, cwd=tmp_path)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "schema version 99" in lines[0]


@pytest.mark.parametrize("table", sorted((ROOT / "benchmarks" / "tables").glob("*.csv")), ids=lambda p: p.name)
def test_reported_tables_are_well_formed(table):
    from harness.regress import TABLE_COLUMNS, read_table

    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(TABLE_COLUMNS) <= set(rows[0])
    for row in rows:
        assert row["source"].strip() and row["table"] in row["source"].replace("_", " ").replace("paper ", "paper ") \
            or row["source"].startswith(("paper Table", "seed 003 Table"))
        assert row["phase"] in ("dense", "hardpruned", "retrained", "before_prune")
        float(row["value"]), float(row["rate"])
    refs = read_table(table)
    assert len(refs) == len(rows)
