"""A run leaves the compressed pruned-model file with its bytes and costs; `benchmark export-model` exports it;
N:M projections run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.artifacts import load_pruned
from harness.cli import main
from harness.projection import is_nm
from harness.runner import RunConfig, run

TINY = dict(task="digits", epochs=1, retrain_epochs=1, pretrain_epochs=1, max_steps=3)


def cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_run_writes_the_compressed_file_and_export_model_checks_onnx(workdir, capsys):
    rec = run(RunConfig(method="slr", rate=4.0, **TINY), log=lambda s: None)
    size, costs = rec["size"], rec["costs"]
    assert Path(rec["artifacts"]["model"]).name == "pruned_model.safetensors"
    assert size["bytes"] <= size["bound_bytes"] + (size["dense_bytes"] - 4 * size["pruned_entries"])
    assert size["bytes"] < size["dense_bytes"] / 2.5  # 4x fewer weights, 1 bit of mask each
    assert 0 < costs["effective_gmacs"] < costs["dense_gmacs"] and costs["ms_per_image"] > 0
    state, masks = load_pruned(rec["artifacts"]["model"])
    assert set(masks) == set(rec["compression"]["prune_ratios"])

    run_dir = Path(rec["artifacts"]["dir"])
    code, out, err = cli(["export-model", str(run_dir), "--format", "onnx"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["max_abs_diff"] < 1e-4 and Path(result["path"]).is_file()

    code, _, err = cli(["export-model", str(workdir), "--format", "onnx"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_nm_projection_runs_and_every_mask_obeys_the_pattern(workdir, capsys):
    rec = run(RunConfig(method="admm", settings=__import__("harness.config", fromlist=["MethodSettings"])
                        .MethodSettings(projection="nm:2:4"), **TINY), log=lambda s: None)
    assert rec["status"] == "completed" and rec["rate_requested"] is None
    assert rec["compression"]["achieved"]["pruned"] == pytest.approx(2.0)
    _, masks = load_pruned(rec["artifacts"]["model"])
    assert masks and all(is_nm(m.reshape(m.shape[0], -1), 2, 4) for m in masks.values())
    code, _, err = cli(["run", "--method", "iterative", "--projection", "nm:2:4", "--dry-run"], capsys)
    assert code == 2 and "iterative" in err
    code, _, err = cli(["run", "--method", "slr", "--projection", "nm:4:2", "--dry-run"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
