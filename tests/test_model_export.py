"""export_model (harness/model_export.py): ONNX in onnxruntime, TorchScript, CSR, and an Ultralytics checkpoint that
YOLO() opens and validates offline with the same mAP50 as the harness's own validator run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import UserError
from harness.model_export import FORMATS, export_model
from harness.projection import hard_prune_
from harness.sparsity import SparsityPlan
from tests.pruned_models import digits_cnn, tiny_ufld, yolov3_tiny
from tests.test_detection import OPTS, _task, coco_dir, no_network  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")
CASES = {"digits": (digits_cnn, "classification"), "ufld": (tiny_ufld, "lanes"), "yolov3-tiny": (yolov3_tiny, "detection")}


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_matches_pytorch_in_onnxruntime_at_two_batch_sizes(case, tmp_path):
    import onnxruntime as ort

    build, kind = CASES[case]
    model, _, x = build()
    result = export_model(model, x[:1], "onnx", tmp_path / "m.onnx", task_kind=kind)
    assert result.max_scaled_diff is not None and result.max_scaled_diff <= 1e-4, result
    assert result.max_abs_diff is not None and result.bytes == (tmp_path / "m.onnx").stat().st_size
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.repeat(x[:1].numpy(), 3, axis=0)})  # any batch: the axis is dynamic
    assert out[0].shape[0] == 3
    if kind == "detection":  # the inference output only, as `yolo export` writes it: (batch, 4 + nc, anchors)
        assert len(out) == 1 and out[0].shape[1] == 4 + 2


@pytest.mark.parametrize("case", ["digits", "yolov3-tiny"])
def test_torchscript_reloads_with_the_same_outputs(case, tmp_path):
    build, kind = CASES[case]
    model, _, x = build()
    result = export_model(model, x[:1], "torchscript", tmp_path / "m.pt", task_kind=kind)
    assert result.max_abs_diff == 0.0 and isinstance(torch.jit.load(str(tmp_path / "m.pt")), torch.jit.ScriptModule)


def test_a_mismatching_export_fails_the_check(tmp_path, monkeypatch):
    import harness.model_export as me

    real = me.onnx_session

    class Off:  # onnxruntime giving outputs 1e-3 away from PyTorch's
        def __init__(self, path):
            self.session = real(path)

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, names, feed):
            return [o + 1e-3 for o in self.session.run(names, feed)]

    monkeypatch.setattr(me, "onnx_session", Off)
    model, _, x = digits_cnn()
    with pytest.raises(UserError, match=r"differs from PyTorch by 0\.001.*not usable"):
        export_model(model, x[:1], "onnx", tmp_path / "m.onnx")


def test_sparse_format_stores_csr_linears_and_times_them(tmp_path):
    model, _, x = tiny_ufld(0.9)
    result = export_model(model, x, "sparse", tmp_path / "m.pt", task_kind="lanes", repeats=2, warmup=1)
    assert result.max_scaled_diff <= 1e-4 and set(result.latency_ms) == {"dense_b1", "csr_b1"}
    assert "cls.0, cls.2" in result.notes[0]
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert type(loaded.cls[0]).__name__ == "CSRLinear"
    yolo, _, xy = yolov3_tiny()
    with pytest.raises(UserError, match="no Linear layer is sparse enough"):
        export_model(yolo, xy, "sparse", tmp_path / "y.pt", task_kind="detection")


def test_user_mistakes_are_one_line_errors(tmp_path):
    model, _, x = digits_cnn()
    with pytest.raises(UserError, match="unknown export format 'tflite'"):
        export_model(model, x, "tflite", tmp_path / "m")
    with pytest.raises(UserError, match="YOLO models only"):
        export_model(model, x, "ultralytics", tmp_path / "m.pt")
    with pytest.raises(UserError, match="unknown task kind"):
        export_model(model, x, "onnx", tmp_path / "m.onnx", task_kind="segmentation")
    yolo, _, xy = yolov3_tiny()
    with pytest.raises(UserError, match="must end in .pt"):
        export_model(yolo, xy, "ultralytics", tmp_path / "m.onnx", task_kind="detection")
    assert set(FORMATS) == {"onnx", "torchscript", "ultralytics", "sparse"}


def test_ultralytics_checkpoint_opens_in_yolo_and_validates_like_our_run(coco_dir, workdir, no_network):  # noqa: F811
    """Same weights, same validator settings: YOLO(path).val's mAP50 equals the mAP50_ultralytics our evaluator
    recorded to 1e-6 (both are Ultralytics' DetectionValidator on the same fp32 weights and inputs, so only float
    summation order could differ), and its detections are the ones our evaluator scored with the COCO API.

    rect=False: the harness's validator letterboxes to square imgsz; `yolo val`'s default rect=True pads each batch
    to its own shape (96x96 for these 96x72 images at imgsz 64), a different input and so a different number."""
    from ultralytics import YOLO

    task = _task(data=coco_dir)
    model = task.build_model()
    plan = SparsityPlan.for_rate(model, task.default_prune_set(model), 2.0, rule="conv")
    hard_prune_(dict(model.named_parameters()), plan.ratios)
    ours = task.evaluate(model)
    assert ours["n_detections"] + ours["n_detections_other_categories"] > 0  # the comparison is not vacuous
    path = workdir / "pruned_yolo.pt"
    result = export_model(model, torch.rand(1, 3, 64, 64), "ultralytics", path, task_kind="detection",
                          ultralytics_args={"data": str(task.data_yaml), "imgsz": task.imgsz})
    assert result.max_abs_diff == 0.0
    yolo = YOLO(str(path))
    assert yolo.task == "detect"
    metrics = yolo.val(data=str(task.data_yaml), imgsz=task.imgsz, batch=task.val_batch, conf=task.conf,
                       iou=task.iou, rect=False, device="cpu", workers=0, plots=False, save_json=True, verbose=False,
                       project=str(workdir), name="yolo_val", exist_ok=True)
    assert 100.0 * float(metrics.box.map50) == pytest.approx(ours["mAP50_ultralytics"], abs=1e-6)
    theirs = json.loads((workdir / "yolo_val" / "predictions.json").read_text())
    mine = json.loads((task._work() / "val" / "predictions.json").read_text())
    key = lambda d: (str(d["image_id"]), d["category_id"], -d["score"], d["bbox"])  # noqa: E731
    assert len(theirs) == len(mine) > 0
    for a, b in zip(sorted(theirs, key=key), sorted(mine, key=key)):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert a["score"] == pytest.approx(b["score"], abs=1e-5) and a["bbox"] == pytest.approx(b["bbox"], abs=1e-3)
    exported = yolo.export(format="torchscript", imgsz=task.imgsz, device="cpu")  # `yolo export` takes it too
    assert Path(exported).is_file()
    assert no_network == []


def test_export_run_model_loads_the_run_file_strictly_first(tmp_path):
    from harness.artifacts import save_pruned
    from harness.errors import CheckpointError
    from harness.model_export import export_run_model

    model, masks, x = digits_cnn()
    save_pruned(model.state_dict(), masks, tmp_path / "run.safetensors", masks=masks)
    fresh, _, _ = digits_cnn(seed=3)
    result = export_run_model(fresh, tmp_path / "run.safetensors", x[:1], "torchscript", tmp_path / "m.pt")
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x)) and result.max_abs_diff == 0.0
    with pytest.raises(CheckpointError, match="missing keys"):
        export_run_model(torch.nn.Linear(2, 2), tmp_path / "run.safetensors", x[:1], "onnx", tmp_path / "m.onnx")
