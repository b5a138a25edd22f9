"""Tracking: TensorBoard event files (every run, by default) and the optional MLflow logger, each checked by reading
back what was written (TensorBoard's EventAccumulator; MLflow's client on a local file store)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from harness.config import RunConfig
from harness.errors import UserError
from harness.hooks import CurveLog, HardPruneCheck
from harness.phases import EpochHook, run_phase
from harness.runner import run
from harness.sparsity import SparsityPlan
from harness.tracking import Tracker, flat_params
from tests.test_engine import FakeDriver, make_ctx
from tests.test_runner import cli

TINY = dict(task="digits", method="slr", rate=4.0, epochs=2, retrain_epochs=1, pretrain_epochs=1, max_steps=3)


def read_events(log_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def series(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


class AddUpdate(EpochHook):
    """Stands in for a method's dual update at batch 0 of epoch 2 (harness/methods/penalty.py logs it so)."""

    def after_epoch(self, ctx, stats, view, optimizer):
        if stats.epoch == 2:
            ctx.spec.hooks.updates.append({"epoch": 2, "s": 0.01, "sat1": True, "k_before": 1})


def test_track_hook_on_a_toy_phase(tmp_path):
    ctx = make_ctx(epochs=3)
    tracker = Tracker(RunConfig(task="toy"), tmp_path)
    hooks = [CurveLog("train"), AddUpdate(),
             HardPruneCheck(SparsityPlan(ratios={"weight": 0.75}), "topk", check_every=2, early_stop=None,
                            higher_is_better=True), tracker.hook()]
    run_phase(FakeDriver(), ctx, hooks)
    ctx.record.metrics, ctx.record.status = {"dense": 32.0, "hardpruned": 8.0}, "completed"
    ctx.record.config = {"method": "slr", "settings": {"rho": 0.1}, "rate": None}
    tracker.finish(ctx.record)

    acc = read_events(tmp_path / "tensorboard")
    assert series(acc, "method/loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert series(acc, "method/penalty") == [(1, 0.5), (2, 0.5), (3, 0.5)]  # the method's log keys
    assert [(s, round(v, 6)) for s, v in series(acc, "method/lr")] == [(1, 0.1), (2, 0.1), (3, 0.1)]
    # hard-prune checks only where HardPruneCheck evaluated (every 2 and the last epoch), all metrics of the check
    assert series(acc, "hardprune_check/acc") == [(2, 8.0), (3, 8.0)]
    assert [s for s, _ in series(acc, "hardprune_check/n_evals")] == [2, 3]
    # the dual update at its epoch, booleans as 0/1
    assert series(acc, "updates/s") == [(2, pytest.approx(0.01))] and series(acc, "updates/sat1") == [(2, 1.0)]
    assert series(acc, "final/dense") == [(0, 32.0)] and series(acc, "final/hardpruned") == [(0, 8.0)]
    # the HPARAMS tab: the config, flattened, as this run's hyper-parameters
    start = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["method"].string_value == "slr" and start.hparams["settings.rho"].number_value == 0.1


def test_flat_params_for_hyperparameter_tables():
    assert flat_params({"a": 1, "s": {"rho": 0.1, "o": {}}, "n": None, "l": [1, 2]}) == {
        "a": 1, "s.rho": 0.1, "s.o": "{}", "n": "null", "l": "[1, 2]"}


def test_digits_run_writes_tensorboard_by_default(workdir, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(workdir / "cache"))  # a cold dense cache: the pretrain phase runs
    rec = run(RunConfig(**TINY), log=lambda s: None)
    acc = read_events(Path(rec["artifacts"]["dir"]) / "tensorboard")
    assert [s for s, _ in series(acc, "pretrain/loss")] == [1]
    assert [s for s, _ in series(acc, "method/loss")] == [1, 2]
    assert {"method/penalty", "method/w_minus_z", "method/s", "method/k"} <= set(acc.Tags()["scalars"])
    assert series(acc, "hardprune_check/top1") == [(2, pytest.approx(rec["metrics"]["hardpruned"]))]
    assert series(acc, "retrain_eval/top1") == [(1, pytest.approx(rec["metrics"]["retrained"]))]
    # SLR's one dual update (epoch 2 of 2), with both surrogate conditions
    assert [s for s, _ in series(acc, "updates/sat1")] == [u["epoch"] for u in rec["updates"]] == [2]
    for stage in ("dense", "hardpruned", "retrained"):
        assert series(acc, f"final/{stage}") == [(0, pytest.approx(rec["metrics"][stage]))]
    assert series(acc, "final/compression_paper")[0][1] == pytest.approx(4.0, rel=2e-3)


def test_no_tensorboard_flag_writes_nothing(workdir, capsys):
    code, _, err = cli(["run", "--task", "digits", "--method", "magnitude", "--rate", "4", "--epochs", "0",
                        "--retrain-epochs", "1", "--pretrain-epochs", "1", "--max-steps", "2", "--no-tensorboard"],
                       capsys)
    assert code == 0, err
    (run_dir,) = [p for p in (workdir / "prunebench_runs").iterdir() if p.is_dir() and p.name != "cache"]
    assert (run_dir / "record.json").is_file() and not (run_dir / "tensorboard").exists()


def test_tracking_flags_do_not_change_the_run_id():
    assert RunConfig(**TINY).run_id() == RunConfig(**TINY, tensorboard=False, mlflow="file:///x").run_id()


def _mlflow_installed() -> bool:
    if importlib.util.find_spec("mlflow") is None:  # the `mlflow` extra: try to install it once
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mlflow-skinny>=3,<4"], capture_output=True)
        importlib.invalidate_caches()
    return importlib.util.find_spec("mlflow") is not None


def test_mlflow_logs_params_curves_and_final_metrics(workdir):
    if not _mlflow_installed():
        pytest.skip("mlflow-skinny could not be installed (no package registry)")
    from mlflow.tracking import MlflowClient

    uri = (workdir / "mlruns").as_uri()
    rec = run(RunConfig(**TINY, mlflow=uri, tensorboard=False), log=lambda s: None)
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("prunebench").experiment_id])
    assert found.info.run_name == rec["run_id"] and found.info.status == "FINISHED"
    assert found.data.tags["prunebench.run_id"] == rec["run_id"]
    params = found.data.params
    assert params["method"] == "slr" and params["rate"] == "4.0" and params["settings.rho"] == "0.1"
    history = client.get_metric_history(found.info.run_id, "method/loss")
    assert sorted(m.step for m in history) == [1, 2]
    assert found.data.metrics["final/retrained"] == pytest.approx(rec["metrics"]["retrained"])
    assert found.data.metrics["hardprune_check/top1"] == pytest.approx(rec["metrics"]["hardpruned"])
    assert not (Path(rec["artifacts"]["dir"]) / "tensorboard").exists()


def test_mlflow_missing_is_one_line(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install prunebench\[mlflow\]"):
        Tracker(RunConfig(mlflow="file:///tmp/x"), tmp_path)


def test_mlflow_resume_bad_uri_and_a_failing_store(tmp_path):
    if not _mlflow_installed():
        pytest.skip("mlflow-skinny could not be installed (no package registry)")
    from harness.tracking import MlflowSink

    uri, tags, warnings = (tmp_path / "mlruns").as_uri(), {"prunebench.run_id": "rid"}, []
    first = MlflowSink(uri, "rid", tags, resume=False, warn=warnings.append)
    again = MlflowSink(uri, "rid", tags, resume=True, warn=warnings.append)
    assert again.run == first.run  # --resume continues the MLflow run of the same run id
    with pytest.raises(UserError, match="--mlflow nosuchscheme://x: cannot open the MLflow tracking store"):
        MlflowSink("nosuchscheme://x", "rid", tags, resume=False, warn=warnings.append)

    def down(*args, **kwargs):
        raise ConnectionError("server went away")

    again.client.log_batch = down  # type: ignore[method-assign]
    again.scalars({"method/loss": 1.0}, 1)
    again.scalars({"method/loss": 0.5}, 2)  # the sink is off now: no second warning, no exception
    assert len(warnings) == 1 and "MLflow logging to" in warnings[0] and "server went away" in warnings[0]
