"""The GPU table script for issue 3 (`benchmarks/gpu/ufld_synthetic_table.py`) runs every step at smoke size on CPU,
so the command a GPU session runs is known to work end to end: data, sweep, records, Markdown table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ufld_table_script_smoke(tmp_path):
    out_md = tmp_path / "table.md"
    cmd = [sys.executable, "benchmarks/gpu/ufld_synthetic_table.py", "--work", str(tmp_path / "w"), "--smoke",
           "--out-md", str(out_md)]
    env = {**os.environ, "PRUNEBENCH_PROGRESS": "0", "PRUNEBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out_md.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 4.21x |")]
    assert [r.split("|")[2].strip() for r in rows] == ["admm", "slr"]
    assert "Command: `" in text and "torch 2." in text and "cosine-iter" in text
    # Run again: the sweep finds both cells done and only rewrites the table.
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "2 completed" in again.stdout + again.stderr
