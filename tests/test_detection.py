"""The coco task: YOLOv3 models from the packaged YAMLs, Ultralytics' trainer with pruning hooks, COCO-API AP50.

CPU only and offline: the synthetic COCO set comes from data_scripts/make_synthetic_coco.py through the real converter.
Training from scratch on a few images leaves mAP at 0 (measured), so nothing here asserts accuracy.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sqlite3
from pathlib import Path

import pytest
import torch

from harness.artifacts import load_pruned

from harness.errors import CheckpointError, DataError, UserError
from harness.methods import MaskedRetrain
from harness.projection import hard_prune_
from harness.phases import PhaseSpec
from harness.runner import RunConfig, run
from harness.sparsity import SparsityPlan
from harness.tasks import TaskConfig, build_task

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"yolov3-tiny": 12_173_248, "yolov3": 103_754_144, "yolov3-spp": 104_803_744}  # ultralytics 8.4 YAMLs
OPTS = {"imgsz": 64, "conf": 1e-5}  # conf below the head's bias prior so a random model still emits detections


def _make_synthetic():
    path = ROOT / "data_scripts" / "make_synthetic_coco.py"
    spec = importlib.util.spec_from_file_location("make_synthetic_coco", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_synthetic_coco


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory) -> Path:
    """A converted synthetic COCO-2014 folder: 12 train + 4 val images (2 in the 5k minival list, 2 in trainval)."""
    from adapters.detection.coco_data import convert_coco

    base = tmp_path_factory.mktemp("coco")
    _make_synthetic()(base / "raw", "2014", n_train=12, n_val=4, image_size=(96, 72), seed=1)
    convert_coco(base / "raw", base / "conv", "2014")
    return base / "conv"


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection / DNS lookup raises; the attempts are recorded so a test can assert there were none."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def _task(model: str = "yolov3-tiny", data: Path | None = None, trust_weights: bool = False, **kw):
    cfg = TaskConfig(model=model, data=data, device=torch.device("cpu"), batch_size=4, options=dict(OPTS), **kw)
    cfg.trust_weights = trust_weights  # --trust-weights: Ultralytics checkpoints pickle whole modules
    return build_task("coco", cfg)


def test_models_build_from_packaged_yamls_without_network(no_network):
    for name, count in PARAMS.items():
        task = _task(name)
        model = task.build_model()
        assert sum(p.numel() for p in model.parameters()) == count
        pset = task.default_prune_set(model)
        params = dict(model.named_parameters())
        assert pset and all(params[n].dim() == 4 and ".dfl." not in n for n in pset)
        assert not any(".dfl." in n for n in pset) and any(".dfl." in n for n in params)
        # every other 4-D weight is in the set (first conv and the 1x1 prediction convs included)
        assert set(pset) == {n for n, p in params.items() if p.dim() == 4 and ".dfl." not in n}
        assert "model.0.conv.weight" in pset
        del model
    assert no_network == []
    task = _task()
    assert (task.primary_metric, task.headline_rule) == ("AP50", "conv")
    recipe = task.recipe(task.cfg.model)
    assert (recipe.optimizer, recipe.lr, recipe.momentum, recipe.check_every) == ("sgd", 0.01, 0.937, 5)


def test_scheduler_flags_are_refused_for_the_ultralytics_driver(coco_dir, workdir):
    cfg = RunConfig(task="coco", model="yolov3-tiny", method="slr", rate=2.0, epochs=1, batch_size=4,
                    data=str(coco_dir), device="cpu", options=dict(OPTS), scheduler="cosine-iter",
                    store=str(workdir / "store.sqlite"), out=str(workdir / "runs"))
    with pytest.raises(UserError, match="do not apply to coco"):
        run(cfg, log=lambda s: None)


def test_full_run_offline_records_ap50_and_conv_compression(coco_dir, workdir, no_network):
    cfg = RunConfig(task="coco", model="yolov3-tiny", method="slr", rate=2.0, epochs=2, retrain_epochs=1,
                    check_every=1, batch_size=4, data=str(coco_dir), device="cpu", options=dict(OPTS),
                    store=str(workdir / "store.sqlite"), out=str(workdir / "runs"))
    rec = run(cfg, log=lambda s: None)
    assert rec["status"] == "completed", rec["error"]
    assert no_network == []  # Ultralytics never even tried (YOLO_OFFLINE, Arial.ttf in place, no AMP check)
    for key in ("dense", "hardpruned", "retrained"):
        assert isinstance(rec["metrics"][key], float)
        full = rec["metrics_full"][key]
        assert 0.0 <= full["AP50"] <= 100.0 and "mAP50_ultralytics" in full
    assert any(p["n_detections"] > 0 for p in rec["curves"]["hardprune_checks"] + [rec["metrics_full"]["dense"]])
    assert rec["metric"] == "AP50" and rec["compression"]["headline_rule"] == "conv"
    assert rec["compression"]["achieved"]["conv"] == pytest.approx(2.0, rel=1e-3)
    assert [p["epoch"] for p in rec["curves"]["hardprune_checks"]] == [1, 2]
    assert [p["epoch"] for p in rec["curves"]["train"]] == [1, 2] and len(rec["curves"]["retrain"]) == 1
    assert all(p["loss"] > 0 for p in rec["curves"]["train"]) and rec["updates"]  # SLR updated at epoch 2
    info = rec["task_info"]
    assert "COCO-API" in info["metric_definition"] and "mAP50_ultralytics" in info["secondary_metrics"]
    assert info["val_images"] == 2 and info["gt_json"].endswith("instances_val2014.json")
    # the saved model keeps the hard-prune zeros through masked retraining (live weights after the EMA copy-back)
    run_dir = Path(rec["artifacts"]["dir"])
    state, masks = load_pruned(run_dir / "pruned_model.safetensors")
    assert all(not state[n][~m].any() for n, m in masks.items())
    with sqlite3.connect(workdir / "store.sqlite") as db:
        assert db.execute("select count(*) from sqlite_master").fetchone()[0] > 0
    assert json.loads((run_dir / "record.json").read_text())["status"] == "completed"


def test_masks_hold_on_live_model_and_ema_during_retrain(coco_dir):
    task = _task(data=coco_dir)
    model = task.build_model()
    plan = SparsityPlan.for_rate(model, task.default_prune_set(model), 3.0, rule="conv")
    masks = hard_prune_(dict(model.named_parameters()), plan.ratios)
    keeper = MaskedRetrain(masks)
    keeper.attach(model, plan)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n in masks}
    seen: list[tuple[int, int]] = []

    def check(stats, ema, optimizer) -> bool:
        params = dict(ema.named_parameters())
        assert all(not params[n][~m].any() for n, m in masks.items())  # EMA re-masked in place
        seen.append((stats.epoch, stats.steps))
        return False

    spec = PhaseSpec(name="retrain", epochs=1, hooks=keeper, optimizer="sgd", lr=0.01, momentum=0.937,
                     weight_decay=5e-4)
    facts = task.driver().fit(model, spec, check)
    assert [e for e, _ in seen] == [1] and seen[0][1] > 0 and facts["schedule"]["kind"] == "ultralytics"
    live = dict(model.named_parameters())
    assert all(not live[n][~m].any() for n, m in masks.items())
    assert any(not torch.equal(live[n], before[n]) for n in masks)  # an optimizer step did happen


def test_bad_inputs_are_user_errors(tmp_path, coco_dir):
    with pytest.raises(DataError, match="does not exist") as exc:
        _task(data=tmp_path / "missing")
    assert "\n" not in str(exc.value) and "coco_convert.py" in str(exc.value)
    with pytest.raises(DataError, match="coco2014.yaml"):
        _task(data=tmp_path)  # a folder without a converted YAML
    with pytest.raises(DataError, match="needs --data"):
        _task().evaluate(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(UserError, match="imgsz"):
        build_task("coco", TaskConfig(model="yolov3-tiny", options={"imgsz": 50}))
    with pytest.raises(UserError, match="--lr"):
        build_task("coco", TaskConfig(model="yolov3-tiny", options={"lr0": 0.1}))
    with pytest.raises(UserError, match="unknown model"):
        build_task("coco", TaskConfig(model="yolov5s"))

    from ultralytics.nn.tasks import ClassificationModel, DetectionModel, SegmentationModel

    others = ((SegmentationModel, "yolov8-seg.yaml", "segment"), (ClassificationModel, "yolov8-cls.yaml", "classify"))
    for cls, yml, kind in others:
        path = tmp_path / f"{kind}.pt"
        torch.save({"model": cls(yml, nc=80, verbose=False)}, path)
        with pytest.raises(CheckpointError, match=kind) as exc:
            _task(weights=path, trust_weights=True).build_model()
        assert "\n" not in str(exc.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        _task(weights=tmp_path / "nope.pt").build_model()
    # a detection checkpoint of another architecture: key mismatch, named
    other = tmp_path / "v8.pt"
    torch.save({"model": DetectionModel("yolov8.yaml", nc=80, verbose=False)}, other)
    with pytest.raises(CheckpointError, match="does not match yolov3-tiny"):
        _task(weights=other, trust_weights=True).build_model()
    # the right architecture loads exactly (Ultralytics checkpoint layout: the EMA module, possibly fp16)
    src = _task().build_model()
    good = tmp_path / "tiny.pt"
    torch.save({"ema": src.half(), "model": None}, good)
    loaded = _task(weights=good, trust_weights=True).build_model()
    assert all(torch.equal(a.float(), b) for a, b in zip(src.state_dict().values(), loaded.state_dict().values()))


def test_cli_run_prints_table(coco_dir, workdir, capsys):
    from harness.cli import main

    code = 0
    try:
        main(["run", "--task", "coco", "--model", "yolov3-tiny", "--method", "slr", "--rate", "3.33", "--data",
              str(coco_dir), "--epochs", "1", "--retrain-epochs", "0", "--batch-size", "4", "--device", "cpu",
              "--opt", "imgsz=64"])
    except SystemExit as exc:  # main() exits only on errors
        code = exc.code
    out = capsys.readouterr().out
    assert code in (0, None), out
    assert "coco / yolov3-tiny: AP50" in out and "slr" in out and "completed" in out


def test_cli_subprocess_writes_nothing_to_home(coco_dir, tmp_path):
    """A fresh `benchmark run --task coco` process, with none of the tool variables exported, keeps Ultralytics'
    settings, font and scratch files in prunebench's state folder and leaves $HOME untouched."""
    import os
    import subprocess
    import sys

    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR", "YOLO_OFFLINE", "YOLO_AUTOINSTALL",
                        "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PRUNEBENCH_STATE=str(state), PYTHONPATH=str(ROOT), PRUNEBENCH_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--task", "coco", "--model", "yolov3-tiny", "--method", "admm",
         "--rate", "2", "--data", str(coco_dir), "--epochs", "1", "--retrain-epochs", "0", "--batch-size", "4",
         "--device", "cpu", "--opt", "imgsz=64", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "runs")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(home.rglob("*")) == []
    assert (state / "ultralytics" / "Ultralytics" / "Arial.ttf").is_file()
