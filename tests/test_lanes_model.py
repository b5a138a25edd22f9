"""UFLD parsingNet: official state-dict layout (UFLD `model/model.py`, the released `tusimple_18.pth`),
parameter counts and strict checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adapters.lanes.ufld_model import build_ufld, load_ufld_checkpoint
from harness.errors import CheckpointError, UserError


pytestmark = pytest.mark.usefixtures("one_thread")

# ---- expected layout of UFLD's `model/model.py` (ResNet-18, no aux) -----------------------------------------------
# (conv weight key, shape) or (BN prefix, channels); a BN expands to 5 entries in state_dict order.
_UFLD_R18_LAYOUT: list[tuple[str, object]] = [
    ("model.conv1.weight", (64, 3, 7, 7)), ("model.bn1", 64),
]
for _layer, _cin, _cout in ((1, 64, 64), (2, 64, 128), (3, 128, 256), (4, 256, 512)):
    for _block in (0, 1):
        _p = f"model.layer{_layer}.{_block}"
        _first_in = _cin if _block == 0 else _cout
        _UFLD_R18_LAYOUT += [
            (f"{_p}.conv1.weight", (_cout, _first_in, 3, 3)), (f"{_p}.bn1", _cout),
            (f"{_p}.conv2.weight", (_cout, _cout, 3, 3)), (f"{_p}.bn2", _cout),
        ]
        if _block == 0 and _layer > 1:
            _UFLD_R18_LAYOUT += [(f"{_p}.downsample.0.weight", (_cout, _cin, 1, 1)), (f"{_p}.downsample.1", _cout)]
_UFLD_R18_LAYOUT += [
    ("cls.0.weight", (2048, 1800)), ("cls.0.bias", (2048,)),
    ("cls.2.weight", (22624, 2048)), ("cls.2.bias", (22624,)),
    ("pool.weight", (8, 512, 1, 1)), ("pool.bias", (8,)),
]


def expected_keys_r18() -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = []
    for key, val in _UFLD_R18_LAYOUT:
        if isinstance(val, int):  # BatchNorm
            out += [(f"{key}.{s}", (val,)) for s in ("weight", "bias", "running_mean", "running_var")]
            out.append((f"{key}.num_batches_tracked", ()))
        else:
            out.append((key, val))
    return out


@pytest.fixture(scope="module")
def r18() -> torch.nn.Module:
    return build_ufld("ufld_resnet18").eval()


@pytest.fixture(scope="module")
def r18_aux() -> torch.nn.Module:
    return build_ufld("ufld_resnet18", use_aux=True).eval()


def test_state_dict_matches_official_layout_exactly(r18):
    got = [(k, tuple(v.shape)) for k, v in r18.state_dict().items()]
    assert len(got) == 126
    assert got == expected_keys_r18()


def test_aux_keys_sit_between_backbone_and_head(r18_aux):
    keys = list(r18_aux.state_dict())
    assert len(keys) == 206
    aux = [k for k in keys if k.startswith("aux_")]
    assert len(aux) == 80
    first, last = keys.index(aux[0]), keys.index(aux[-1])
    assert keys[first - 1].startswith("model.layer4.") and keys[last + 1] == "cls.0.weight"
    sd = r18_aux.state_dict()
    assert tuple(sd["aux_combine.0.conv.weight"].shape) == (256, 384, 3, 3)
    assert tuple(sd["aux_header4.0.conv.weight"].shape) == (128, 512, 3, 3)
    assert tuple(sd["aux_combine.4.weight"].shape) == (5, 128, 1, 1) and "aux_combine.4.bias" in sd
    assert "aux_header2.0.conv.bias" not in sd  # aux convs have no bias


def test_parameter_counts(r18, r18_aux):
    params = dict(r18.named_parameters())
    assert sum(p.numel() for p in params.values()) == 61_225_640
    # the paper's counting rule (every parameter whose name lacks "bias"): the N_tot of SLR paper Table 4
    assert sum(p.numel() for n, p in params.items() if "bias" not in n) == 61_196_160
    conv_fc = [n for n, p in params.items() if p.dim() > 1]
    assert len(conv_fc) == 23 and sum(params[n].numel() for n in conv_fc) == 61_191_360
    assert params["cls.2.weight"].numel() == 46_333_952
    assert sum(p.numel() for p in r18_aux.parameters()) == 64_621_357


def test_forward_shapes(r18_aux):
    with torch.no_grad():
        logits, seg = r18_aux(torch.zeros(1, 3, 288, 800))
    assert logits.shape == (1, 101, 56, 4) and seg.shape == (1, 5, 36, 100)


def test_resnet34_and_small_input():
    small = build_ufld("ufld_resnet34", griding_num=10, input_size=(64, 160))
    assert small.cls[0].in_features == 8 * 2 * 5
    with torch.no_grad():
        assert small(torch.zeros(2, 3, 64, 160)).shape == (2, 11, 56, 4)
    with pytest.raises(UserError, match="multiples of 32"):
        build_ufld("ufld_resnet18", input_size=(100, 160))
    with pytest.raises(UserError):
        build_ufld("ufld_resnet50")


# Loading tests use a small head and input: the key handling does not depend on size, and a full 245 MB
# checkpoint would dominate the suite's run time.
SMALL = {"griding_num": 10, "input_size": (64, 160)}


def small(aux: bool = False) -> torch.nn.Module:
    return build_ufld("ufld_resnet18", use_aux=aux, **SMALL).eval()


def _save_official_layout(model: torch.nn.Module, path: Path, prefix: str = "module.") -> None:
    """What UFLD's train.py writes from a DistributedDataParallel model: {'model': sd, 'optimizer': ...}."""
    torch.save({"model": {prefix + k: v for k, v in model.state_dict().items()}, "optimizer": {"state": {}}}, path)


def test_official_layout_with_prefix_and_aux_loads_strictly(tmp_path):
    src = small(aux=True)
    ckpt = tmp_path / "ep039.pth"
    _save_official_layout(src, ckpt)
    x = torch.randn(1, 3, 64, 160)

    noaux = small()
    facts = load_ufld_checkpoint(noaux, ckpt)
    assert facts["dropped_aux_keys"] == 80
    with torch.no_grad():
        assert torch.equal(noaux(x), src(x)[0])

    aux = small(aux=True)
    assert load_ufld_checkpoint(aux, ckpt)["aux_init"] == "checkpoint"
    for k, v in src.state_dict().items():
        assert torch.equal(aux.state_dict()[k], v), k


def test_released_layout_without_aux_into_aux_model(tmp_path):
    src = small()
    ckpt = tmp_path / "tusimple_18.pth"
    _save_official_layout(src, ckpt, prefix="")
    aux = small(aux=True)
    with pytest.raises(CheckpointError, match="missing keys \\(80\\): aux_header2.0.conv.weight"):
        load_ufld_checkpoint(aux, ckpt)
    assert load_ufld_checkpoint(aux, ckpt, allow_missing_aux=True)["aux_init"].startswith("random")
    assert torch.equal(aux.state_dict()["cls.2.weight"], src.state_dict()["cls.2.weight"])


def test_key_mismatch_lists_keys(tmp_path):
    sd = dict(small().state_dict())
    del sd["model.layer3.1.conv2.weight"]
    sd["head.extra.weight"] = torch.zeros(1)
    ckpt = tmp_path / "bad.pth"
    torch.save({"model": sd}, ckpt)
    with pytest.raises(CheckpointError) as err:
        load_ufld_checkpoint(small(), ckpt)
    msg = str(err.value)
    assert "model.layer3.1.conv2.weight" in msg and "head.extra.weight" in msg and "\n" not in msg


def test_wrong_head_shape_names_the_cause(tmp_path):
    other = build_ufld("ufld_resnet18", griding_num=20, input_size=(64, 160))  # as a CULane head vs TuSimple's
    ckpt = tmp_path / "other_griding.pth"
    torch.save({"model": other.state_dict()}, ckpt)
    with pytest.raises(CheckpointError, match="cls.2.weight is \\(4704, 2048\\)"):
        load_ufld_checkpoint(small(), ckpt)


def test_corrupt_file_is_one_line_error(tmp_path):
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"PK\x03\x04 definitely not a torch file")
    with pytest.raises(CheckpointError) as err:
        load_ufld_checkpoint(small(), bad)
    assert "\n" not in str(err.value) and "corrupt" in str(err.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_ufld_checkpoint(small(), tmp_path / "absent.pth")
