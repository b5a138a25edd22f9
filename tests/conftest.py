"""Shared test setup: offline tool configs in a temp folder, quiet progress bars, deterministic CPU threads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("PRUNEBENCH_PROGRESS", "0")
# One dense-model cache for the whole session: tests that pretrain the same digits model share it.
os.environ.setdefault("PRUNEBENCH_CACHE", str(Path(__import__("tempfile").mkdtemp(prefix="prunebench-cache-"))))
from harness import offline  # noqa: E402

offline.configure()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a fresh folder: stores and run folders land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
