"""The run pipeline on the embedded digits task, the CIFAR-10 loader, and every bad input of the core issue."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adapters.classification import Cifar10Task, DigitsTask
from harness.artifacts import load_pruned
from harness.cli import main
from harness.methods import MethodSettings
from harness.runner import RunConfig, run
from harness.tasks import TaskConfig, register_task

ROOT = Path(__file__).resolve().parent.parent
QUICK = dict(task="digits", epochs=3, retrain_epochs=1, pretrain_epochs=4, max_steps=8)


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("method", ["slr", "admm", "magnitude", "iterative", "projected", "random"])
def test_each_method_reaches_requested_sparsity(workdir, method):
    rec = run(RunConfig(method=method, rate=6.0, **QUICK), log=lambda s: None)
    assert rec["status"] == "completed", rec["error"]
    comp = rec["compression"]
    assert comp["achieved"]["paper"] == pytest.approx(6.0, rel=2e-3)
    for name, ratio in comp["prune_ratios"].items():
        numel = load_pruned(rec["artifacts"]["model"])[0][name].numel()
        kept = numel - int(numel * ratio + 1e-9)
        assert comp["layers"][name] == pytest.approx(1 - kept / numel, abs=1e-12)
    assert {"dense", "hardpruned", "retrained"} <= set(rec["metrics"])


def test_slr_and_admm_beat_random_on_digits(workdir):
    scores = {}
    for method in ("slr", "admm", "random"):
        rec = run(RunConfig(task="digits", method=method, rate=10.0, epochs=8, retrain_epochs=0), log=lambda s: None)
        scores[method] = rec["metrics"]["hardpruned"]
    assert scores["random"] < 30.0  # chance is 10 %
    assert scores["slr"] > scores["random"] + 20.0
    assert scores["admm"] > scores["random"] + 20.0


def test_record_store_and_provenance(workdir):
    rec = run(RunConfig(method="slr", rate=4.0, check_every=1, **QUICK), log=lambda s: None)
    on_disk = json.loads((Path(rec["artifacts"]["dir"]) / "record.json").read_text())
    assert on_disk["run_id"] == rec["run_id"] and on_disk["schema_version"] == 1
    assert [c["epoch"] for c in on_disk["curves"]["hardprune_checks"]] == [1, 2, 3]
    assert len(on_disk["updates"]) == 2 and "sat1" in on_disk["updates"][0]
    prov = on_disk["provenance"]
    assert prov["packages"]["torch"] and prov["seed"] == 0 and prov["finished"]
    assert (Path(rec["artifacts"]["dir"]) / "prune_config.yaml").is_file()
    rows = sqlite3.connect(workdir / "prunebench.sqlite").execute("SELECT run_id, status, method FROM runs").fetchall()
    assert rows == [(rec["run_id"], "completed", "slr")]


def test_reference_mode_runs_and_logs_leak(workdir):
    rec = run(RunConfig(method="slr", rate=4.0, settings=MethodSettings(mode="reference"), **QUICK), log=lambda s: None)
    assert rec["config"]["method_config"]["wprev_alias"] is True
    assert rec["updates"][-1]["leak_c"] > 0


def test_early_stop_records_epochs_to_threshold(workdir):
    rec = run(RunConfig(method="admm", rate=2.0, check_every=1, early_stop=0.0, **QUICK), log=lambda s: None)
    assert rec["epochs"]["to_threshold"] == 1 and rec["epochs"]["method"] == 1


# ---- CIFAR-10 loader on data in the exact python-pickle layout ---------------------------------------------------
def make_cifar(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "data_scripts" / "make_synthetic_cifar10.py"), "--out", str(tmp_path),
                    "--per-batch", "20", "--test", "30"], check=True, capture_output=True)
    return tmp_path


def test_cifar10_loader_reads_pickle_layout(tmp_path):
    root = make_cifar(tmp_path)
    task = Cifar10Task(TaskConfig(model="resnet56", data=root, batch_size=16))
    x, y = next(iter(task.train_loader(0)))
    assert x.shape == (16, 3, 32, 32) and y.dtype == torch.int64
    assert len(task.eval_loader().dataset) == 30 and len(task.train_loader(1).dataset) == 100


def test_cifar10_run_end_to_end(workdir):
    root = make_cifar(workdir / "data")
    rec = run(RunConfig(task="cifar10", model="resnet56", method="slr", rate=6.5, data=str(root), epochs=2,
                        retrain_epochs=1, max_steps=2, batch_size=16), log=lambda s: None)
    assert rec["status"] == "completed"
    assert rec["compression"]["achieved"]["paper"] == pytest.approx(6.5, rel=1e-3)


# ---- bad input: one line, non-zero exit, no traceback -----------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["run", "--task", "mnist"], "unknown task 'mnist'"),
    (["run", "--model", "vgg99", "--method", "slr"], "unknown model 'vgg99'"),
    (["run", "--method", "obd", "--rate", "4"], "unknown --method 'obd'"),
    (["run", "--method", "slr", "--rate", "0.5"], "must be > 1"),
    (["run", "--method", "slr", "--rate", "500"], "highest feasible rate"),
    (["run", "--task", "cifar10", "--method", "slr"], "needs --data"),
    (["run", "--method", "slr", "--rate", "4", "--device", "cuda:7"], "cuda"),
])
def test_bad_input_is_one_line(workdir, capsys, args, needle):
    code, out, err = cli(args + ["--epochs", "1", "--pretrain-epochs", "1", "--max-steps", "2"], capsys)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_wrong_cifar_layout_names_missing_file(workdir, capsys):
    root = make_cifar(workdir / "data")
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    code, _, err = cli(["run", "--task", "cifar10", "--model", "resnet56", "--method", "slr", "--data", str(root)], capsys)
    assert code == 2 and "data_batch_3" in err and "cifar10_download.py" in err


def test_corrupt_and_mismatched_checkpoints(workdir, capsys):
    corrupt = workdir / "corrupt.pth"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    code, _, err = cli(["run", "--method", "slr", "--rate", "4", "--weights", str(corrupt)], capsys)
    assert code == 2 and "corrupt" in err
    task = DigitsTask(TaskConfig(model="cnn"))
    state = task.build_model().state_dict()
    state.pop("fc2.weight")
    state["extra.weight"] = torch.zeros(1)
    wrong = workdir / "wrong.pth"
    torch.save({"model": state}, wrong)
    code, _, err = cli(["run", "--method", "slr", "--rate", "4", "--weights", str(wrong)], capsys)
    assert code == 2 and "missing keys (1): fc2.weight" in err and "unexpected keys (1): extra.weight" in err


def test_good_checkpoint_with_module_prefix_loads(workdir):
    model = DigitsTask(TaskConfig(model="cnn")).build_model()
    path = workdir / "good.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    rec = run(RunConfig(method="magnitude", rate=3.0, weights=str(path), task="digits", epochs=1, retrain_epochs=0),
              log=lambda s: None)
    assert rec["status"] == "completed"


class NaNDigitsTask(DigitsTask):
    """Digits whose loss turns NaN in epoch 2: the run must stop, keep epoch 1 and be marked failed."""

    name = "nan_digits"
    calls = 0

    def loss(self, model, batch):
        NaNDigitsTask.calls += 1
        loss = super().loss(model, batch)
        return loss * float("nan") if NaNDigitsTask.calls > 30 else loss


def test_nan_loss_marks_run_failed_and_keeps_record(workdir, capsys):
    register_task("nan_digits", "tests.test_runner:NaNDigitsTask")
    NaNDigitsTask.calls = 0
    code, out, err = cli(["run", "--task", "nan_digits", "--method", "slr", "--rate", "4", "--epochs", "3",
                          "--weights", str(save_digits(workdir))], capsys)
    assert code == 3 and "diverged" in err and "record kept" in err
    rec = json.loads(next(workdir.glob("prunebench_runs/nan_digits-*/record.json")).read_text())
    assert rec["status"] == "failed" and len(rec["curves"]["train"]) == 1
    assert "dense" in rec["metrics"]


def save_digits(workdir: Path) -> Path:
    path = workdir / "digits.pth"
    torch.save(DigitsTask(TaskConfig(model="cnn")).build_model().state_dict(), path)
    return path


class InterruptedDigitsTask(DigitsTask):
    """Raises KeyboardInterrupt once, at the first step of epoch `interrupt_epoch` (22 steps per digits epoch), as a
    kill would; subclasses pick the epoch. Counters are per class so each test arms its own."""

    name = "interrupted_digits"
    interrupt_epoch = 3
    calls = 0
    armed = True

    def loss(self, model, batch):
        cls = type(self)
        cls.calls += 1
        if cls.armed and cls.calls == (cls.interrupt_epoch - 1) * 22 + 1:
            cls.armed = False
            raise KeyboardInterrupt
        return super().loss(model, batch)


class InterruptedInEpoch4(InterruptedDigitsTask):
    name = "interrupted4_digits"
    interrupt_epoch = 4
    calls = 0
    armed = True


def test_interrupted_run_resumes(workdir):
    register_task("interrupted_digits", "tests.test_runner:InterruptedDigitsTask")
    cfg = dict(task="interrupted_digits", method="slr", rate=4.0, epochs=4, retrain_epochs=1,
               weights=str(save_digits(workdir)))
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(**cfg), log=lambda s: None)
    rec = run(RunConfig(**cfg), resume=True, log=lambda s: None)
    assert rec["status"] == "completed"
    assert [p["epoch"] for p in rec["curves"]["train"]] == [1, 2, 3, 4]
    assert [u["epoch"] for u in rec["updates"]] == [2, 3, 4]


def test_cli_subprocess_has_no_traceback(workdir):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--task", "nope"], capture_output=True,
                          text=True, cwd=workdir, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown task 'nope'") and "Traceback" not in proc.stderr


def test_help_explains(capsys):
    code, out, _ = cli(["run", "--help"], capsys)
    assert code == 0 and "compression rate" in out.lower() and "--resume" in out


def test_bf16_autocast_and_cosine_schedule(workdir, monkeypatch):
    from harness.config import TrainRecipe

    monkeypatch.setattr(DigitsTask, "recipe", classmethod(lambda cls, model: TrainRecipe(
        optimizer="adam", lr=1e-3, epochs=3, retrain_epochs=2, scheduler="cosine")))
    rec = run(RunConfig(task="digits", method="admm", rate=4.0, amp="bf16", max_steps=4,
                        weights=str(save_digits(workdir))), log=lambda s: None)
    assert rec["status"] == "completed"
    lrs = [p["lr"] for p in rec["curves"]["train"]]
    assert lrs[0] == pytest.approx(1e-3) and lrs[1] < lrs[0] and lrs[2] < lrs[1]  # cosine over the method epochs


def test_sparse_checkpoints_resume_from_the_last_one_and_are_removed_at_the_end(workdir):
    register_task("interrupted4_digits", "tests.test_runner:InterruptedInEpoch4")
    cfg = dict(task="interrupted4_digits", method="slr", rate=4.0, epochs=5, retrain_epochs=1, checkpoint_every=2,
               weights=str(save_digits(workdir)))
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(**cfg), log=lambda s: None)
    run_dir = next(Path("prunebench_runs").glob("interrupted4_digits-*"))
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert (ckpt["phase"], ckpt["epoch"]) == ("method", 2)  # epoch 3 was not checkpointed (every 2)
    logs: list[str] = []
    rec = run(RunConfig(**cfg), resume=True, log=logs.append)
    assert rec["status"] == "completed" and any("at method epoch 3" in line for line in logs)
    assert [p["epoch"] for p in rec["curves"]["train"]] == [1, 2, 3, 4, 5]
    assert not (run_dir / "checkpoint.pt").exists() and (run_dir / "pruned_model.safetensors").is_file()
    kept = run(RunConfig(**{**cfg, "task": "digits", "keep_checkpoint": True, "epochs": 1}), log=lambda s: None)
    assert (Path(kept["artifacts"]["dir"]) / "checkpoint.pt").is_file()
