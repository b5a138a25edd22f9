"""Files from elsewhere (CIFAR batches, weight files) are read without running code they carry."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters.classification import read_cifar_batch
from harness.checkpoints import load_weights
from harness.errors import CheckpointError, DataError

ROOT = Path(__file__).resolve().parent.parent


class _Planted:
    """Unpickling this runs `os.system("touch MARKER")`: what a doctored data or weight file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg
    return msg


# ---- CIFAR-10 batches -------------------------------------------------------------------------------------------
def test_synthetic_cifar_batches_still_load(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "data_scripts" / "make_synthetic_cifar10.py"), "--out", str(tmp_path),
                    "--per-batch", "3", "--test", "3"], check=True, capture_output=True)
    data, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    assert data.shape == (3, 32, 32, 3) and data.dtype == np.uint8 and labels.shape == (3,)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batch_any_protocol(tmp_path, protocol):
    doc = {b"data": np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072), b"labels": [3, 7],
           b"batch_label": b"x", b"filenames": [b"a.png", b"b.png"]}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(doc, protocol=protocol))
    data, labels = read_cifar_batch(path)
    assert labels.tolist() == [3, 7] and data[1, 0, 0, 0] == (3072 % 256)


def test_cifar_batch_written_by_python2_numpy_names(tmp_path):
    # The official files were written by Python 2 with numpy 1.x: the array reconstructor lives in `numpy.core`.
    raw = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray" in raw
    (tmp_path / "b").write_bytes(raw)
    assert read_cifar_batch(tmp_path / "b")[1].tolist() == [0]


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_planted_cifar_batch_does_not_execute(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Planted(marker), b"labels": [0]}, protocol=protocol))
    with pytest.raises(DataError) as err:
        read_cifar_batch(path)
    assert not marker.exists()
    assert "posix.system" in _one_line(err.value) or "os.system" in str(err.value)


def test_cifar_codecs_other_than_latin1_refused(tmp_path):
    import _codecs

    class Evil:
        def __reduce__(self):
            return _codecs.encode, ("x", "rot13")

    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match="rot13"):
        read_cifar_batch(path)


def test_cifar_batch_that_is_a_directory(tmp_path):
    (tmp_path / "data_batch_1").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        read_cifar_batch(tmp_path / "data_batch_1")
