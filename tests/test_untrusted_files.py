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
from harness.weights import load_weights
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


# ---- weight files -----------------------------------------------------------------------------------------------
def _coco_task(weights: Path, trust: bool = False):
    from harness.tasks import TaskConfig, build_task

    cfg = TaskConfig(model="yolov3-tiny", weights=weights, options={"imgsz": 64})
    cfg.trust_weights = trust  # what --trust-weights sets
    return build_task("coco", cfg)


def _ultralytics_save(model: torch.nn.Module, path: Path) -> None:
    """The layout Ultralytics' trainer saves (ultralytics/engine/trainer.py save_model): the fp16 module itself."""
    import copy

    torch.save({"epoch": -1, "best_fitness": None, "model": copy.deepcopy(model).half(), "ema": None,
                "updates": 0, "optimizer": None, "train_args": {"model": "yolov3-tiny.yaml"}, "date": "2026-12-01",
                "version": "8.4.190"}, path)


@pytest.fixture(scope="module")
def tiny_model():
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel("yolov3-tiny.yaml", nc=80, verbose=False)


def test_ultralytics_checkpoint_needs_trust(tmp_path, tiny_model, caplog):
    path = tmp_path / "yolov3-tiny.pt"
    _ultralytics_save(tiny_model, path)
    with pytest.raises(CheckpointError, match="--trust-weights") as err:
        _coco_task(path).build_model()
    assert "DetectionModel" in _one_line(err.value)
    with caplog.at_level("WARNING", logger="prunebench"):
        loaded = _coco_task(path, trust=True).build_model()
    assert any("unpickling" in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)
    assert all(torch.equal(a.half().float(), b) for a, b in
               zip(tiny_model.state_dict().values(), loaded.state_dict().values()))


def test_plain_state_dict_loads_without_trust(tmp_path, tiny_model, caplog):
    path = tmp_path / "sd.pt"
    torch.save(tiny_model.state_dict(), path)
    with caplog.at_level("WARNING", logger="prunebench"):
        loaded = _coco_task(path).build_model()
    assert not caplog.records
    assert all(torch.equal(a, b) for a, b in zip(tiny_model.state_dict().values(), loaded.state_dict().values()))


def test_planted_weights_do_not_execute(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Planted(marker)}, path)
    with pytest.raises(CheckpointError, match="--trust-weights") as err:
        _coco_task(path).build_model()
    assert "system" in _one_line(err.value) and not marker.exists()
    # harness/weights.py (the other tasks' --weights) reads weights-only too
    with pytest.raises(CheckpointError) as err:
        load_weights(torch.nn.Linear(2, 2), path)
    assert not marker.exists() and "trusted source" in _one_line(err.value)


@pytest.mark.parametrize("content", [b"hello world\n", b"PK\x03\x04 truncated zip", b"", b"\x80\x02}q\x00."])
def test_junk_weight_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    for load in (lambda: load_weights(torch.nn.Linear(2, 2), path), lambda: _coco_task(path).build_model()):
        with pytest.raises(CheckpointError) as err:
            load()
        _one_line(err.value)


def test_weights_that_are_a_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_weights(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(CheckpointError, match="is a directory"):
        _coco_task(tmp_path).build_model()


def test_any_bytes_as_a_cifar_batch(tmp_path):
    """Random bytes and random pickles of plain data end in arrays or one DataError line (hypothesis)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    plain = st.recursive(st.none() | st.booleans() | st.integers() | st.binary(max_size=8) | st.text(max_size=8),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=6), inner,
                                                                                     max_size=4), max_leaves=20)
    path = tmp_path / "data_batch_1"

    def check() -> None:
        try:
            data, labels = read_cifar_batch(path)
        except DataError as exc:
            _one_line(exc)
        else:
            assert data.dtype == np.uint8 and len(data) == len(labels)

    @settings(max_examples=40, deadline=None)
    @given(raw=st.binary(max_size=300))
    def any_bytes(raw: bytes) -> None:
        path.write_bytes(raw)
        check()

    @settings(max_examples=40, deadline=None)
    @given(doc=plain, protocol=st.integers(0, 5))
    def any_pickle(doc, protocol: int) -> None:
        path.write_bytes(pickle.dumps(doc, protocol=protocol))
        check()

    any_bytes()
    any_pickle()
