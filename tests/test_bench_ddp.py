"""benchmarks/perf/bench_ddp.py at smoke size on CPU: the direct mode spawns world sizes 1 and 2 (gloo), and the
report has one row per world size with a positive throughput, finite SLR / ADMM overhead ratios and replicas that
stayed identical; a global batch the world sizes do not divide is refused before anything starts."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "perf" / "bench_ddp.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PRUNEBENCH_PROGRESS": "0"}


def table(text: str) -> list[dict[str, str]]:
    """The Markdown table that starts with `| ranks |`, as one dict per row keyed by the header."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| ranks |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def test_direct_mode_smoke_reports_every_world_size(tmp_path):
    out = tmp_path / "tmp.md"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--max-ranks", "2",
                           "--out", str(out)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    rows = table(text)
    assert [r["ranks"] for r in rows] == ["1", "2"]
    assert [r["batch / rank"] for r in rows] == ["4", "2"]  # the global batch (4) is split across the ranks
    for r in rows:
        assert float(r["images/s"]) > 0
        for col in ("SLR / plain", "ADMM / plain"):
            ratio = float(r[col].rstrip("x"))
            assert math.isfinite(ratio) and ratio > 0, (col, r[col])
        assert float(r["rank drift (max abs)"]) == 0.0  # the hooks ran after the all-reduce on every rank alike
    assert rows[0]["scaling efficiency"] == "1.00"
    assert "backend gloo" in text and "do not represent GPU scaling" in text
    assert "- git: " in text and "- command: `python " in text


def test_indivisible_global_batch_is_refused_in_one_line():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--max-ranks", "2",
                           "--global-batch", "3"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "error: --global-batch 3 is not divisible by world size 2 (the global batch is split evenly across ranks)"]
