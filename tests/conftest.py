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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for modules of tiny tensors: avoids oversubscription stalls on busy shared CPUs
    (measured here: 0.12 s vs 2 s per small UFLD forward); the previous setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tusimple_root(tmp_path_factory):
    """A small synthetic TuSimple set (3 training, 2 test frames) converted as real data would be; read-only, shared."""
    from adapters.lanes.convert import convert_test, convert_train
    from adapters.lanes.synthetic import make_synthetic_tusimple

    out = tmp_path_factory.mktemp("tusimple")
    make_synthetic_tusimple(out, n_train=3, n_test=2, seed=3)
    convert_train(out)
    convert_test(out)
    return out


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU: without one they are skipped, saying so (benchmarks/gpu/h200_proof.py runs
    them with `-m cuda` on a GPU machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
