"""The compressed pruned-model file (harness/artifacts.py): exact reload, size bound, masks, one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.artifacts import VALUE_DTYPES, load_into, load_pruned, read_metadata, save_pruned
from harness.errors import CheckpointError, UserError
from harness.projection import hard_prune_
from tests.pruned_models import digits_cnn, tiny_ufld, yolov3_tiny

pytestmark = pytest.mark.usefixtures("one_thread")
BUILDERS = {"digits": digits_cnn, "ufld": tiny_ufld, "yolov3-tiny": yolov3_tiny}


def _size_bound(state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], value_bytes: int, header: int) -> float:
    """(non-zeros x value bytes + entries / 8) x 1.05 over the pruned tensors, dense tensors as they are, + header."""
    pruned = sum(int(torch.count_nonzero(state[n])) * value_bytes + state[n].numel() / 8 for n in masks)
    dense = sum(t.numel() * t.element_size() for n, t in state.items() if n not in masks)
    return (pruned + dense) * 1.05 + header


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_reload_is_exact_into_a_fresh_module_and_within_the_size_bound(kind, tmp_path):
    model, masks, x = BUILDERS[kind]()
    state = model.state_dict()
    info = save_pruned(state, masks, tmp_path / "model.safetensors", masks=masks)
    assert info.bytes <= _size_bound(state, masks, 4, info.header_bytes), info
    assert info.bytes <= info.bound_bytes and info.dense_bytes == sum(t.numel() * t.element_size()
                                                                      for t in state.values())
    assert info.header_bytes < 64 * 1024
    fresh, _, _ = BUILDERS[kind](seed=1)  # other random weights, same architecture
    loaded_masks = load_into(fresh, tmp_path / "model.safetensors")
    again = fresh.state_dict()
    assert list(again) == list(state)
    assert all(again[k].dtype == v.dtype and torch.equal(again[k], v) for k, v in state.items())
    assert set(loaded_masks) == set(masks) and all(torch.equal(loaded_masks[n], m) for n, m in masks.items())
    with torch.no_grad():
        a, b = model(x), fresh(x)
    flat_a = torch.cat([t.reshape(-1) for t in (a if isinstance(a, (list, tuple)) else [a]) if torch.is_tensor(t)])
    flat_b = torch.cat([t.reshape(-1) for t in (b if isinstance(b, (list, tuple)) else [b]) if torch.is_tensor(t)])
    assert torch.equal(flat_a, flat_b)


def test_ufld_at_90_percent_is_a_fraction_of_the_dense_bytes(tmp_path):
    model, masks, _ = tiny_ufld(0.9)
    info = save_pruned(model.state_dict(), masks, tmp_path / "m.safetensors")  # masks from the non-zeros
    # 10 % of the values at 4 bytes + 1 bit per entry is 0.525 of 4 bytes per entry: about 0.13 of the dense size.
    assert info.bytes < 0.16 * info.dense_bytes and info.ratio > 6
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["version"] == 1 and meta["value_dtype"] == "fp32"
    assert meta["tensors"]["cls.0.weight"]["kind"] == "pruned" and meta["tensors"]["cls.0.bias"]["kind"] == "dense"


@pytest.mark.parametrize("value_dtype", ["fp16", "bf16"])
def test_half_precision_values_round_only_the_kept_weights(value_dtype, tmp_path):
    model, masks, _ = digits_cnn()
    state = model.state_dict()
    full = save_pruned(state, masks, tmp_path / "a.safetensors")
    half = save_pruned(state, masks, tmp_path / "b.safetensors", value_dtype=value_dtype)
    assert half.bytes < full.bytes
    loaded, loaded_masks = load_pruned(tmp_path / "b.safetensors")
    for name, tensor in state.items():
        want = tensor.to(VALUE_DTYPES[value_dtype]).to(tensor.dtype) if name in masks else tensor
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], want), name
    assert all(torch.equal(loaded_masks[n], m) for n, m in masks.items())


def test_percentile_masks_that_freeze_nonzeros_come_back_separately(tmp_path):
    w = nn.Parameter(torch.tensor([[3.0, 1.0, 1.0, 1.0, 0.5, 2.0, -1.0, 0.1]]))
    masks = hard_prune_({"w": w}, {"w": 0.5}, "percentile")  # tau = 1.0: the 1.0 ties stay but leave the mask
    state = {"w": w.detach().clone(), "b": torch.arange(3.0)}
    assert (state["w"] != 0).sum() > masks["w"].sum()
    save_pruned(state, ["w"], tmp_path / "p.safetensors", masks=masks)
    loaded, loaded_masks = load_pruned(tmp_path / "p.safetensors")
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["b"], state["b"])
    assert torch.equal(loaded_masks["w"], masks["w"])


def test_user_mistakes_are_one_line_errors(tmp_path):
    model, masks, _ = digits_cnn()
    with pytest.raises(UserError, match="unknown value dtype 'fp8'"):
        save_pruned(model.state_dict(), masks, tmp_path / "x.safetensors", value_dtype="fp8")
    with pytest.raises(UserError, match="not in the state dict: nope"):
        save_pruned(model.state_dict(), ["nope"], tmp_path / "x.safetensors")
    with pytest.raises(UserError, match="only floating-point"):
        save_pruned({"steps": torch.arange(4)}, ["steps"], tmp_path / "x.safetensors")


def _message(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_corrupt_truncated_foreign_or_missing_files_raise_checkpoint_error(tmp_path):
    from safetensors.torch import save_file

    model, masks, _ = digits_cnn()
    path = tmp_path / "m.safetensors"
    save_pruned(model.state_dict(), masks, path)
    data = path.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "header only": data[:100],
        "garbage": b"\x00\x01not a safetensors file at all",
        "empty": b"",
    }
    for label, blob in cases.items():
        bad = tmp_path / f"{label}.safetensors"
        bad.write_bytes(blob)
        with pytest.raises(CheckpointError) as exc:
            load_pruned(bad)
        assert str(bad) in _message(exc), label
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a prunebench pruned model") as exc:
        load_pruned(tmp_path / "plain.safetensors")
    _message(exc)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pruned(tmp_path / "missing.safetensors")
    other = nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_into(other, path)
