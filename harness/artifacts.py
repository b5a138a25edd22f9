"""The pruned model as a compressed file: 1-bit masks plus packed non-zeros, in safetensors.

Layout (format "prunebench-pruned", version 1). For every pruned tensor `name`:

* ``name::bits``   uint8, ``np.packbits`` (big bit order) of the flattened *value mask*: the entries whose values are
  stored (the retrain mask, plus any non-zero it leaves out);
* ``name::values`` the entries under that mask, in flat (row-major) order, as fp32 (default), fp16 or bf16;
* ``name::mask``   only when the retrain mask differs from the value mask (the reference-compatible `percentile`
  projection keeps ties at its threshold non-zero but frozen): the retrain mask's packed bits.

Every other state-dict entry (BN statistics, biases, unpruned weights) is stored as it is. The safetensors metadata
holds one JSON document under the key ``prunebench``: format, version, value dtype and, per tensor in state-dict order,
its shape, dtype and kind ("dense" | "pruned").

Why safetensors: a flat header + raw buffers, with no pickle, so loading a file cannot execute code (a `torch.load`
of a pickled checkpoint can), it is read by every major framework, and corrupt or truncated files fail in its header
checks instead of deep inside an unpickler.

Reload is exact for fp32 values: every tensor comes back equal to the saved one (pruned entries as +0.0, so a -0.0
left by `x * mask` reads back as +0.0, equal in value and in every operation's result). fp16/bf16 values round the kept
weights (the file says so); dense tensors are never converted.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from harness.errors import CheckpointError, UserError

FORMAT = "prunebench-pruned"
VERSION = 1
META_KEY = "prunebench"
VALUE_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SEP = "::"  # never in a PyTorch state-dict key (module and attribute names are identifiers joined by dots)


@dataclass
class ArtifactInfo:
    """Sizes of a written artifact, for the results record (`asdict`)."""

    path: str
    bytes: int  # the file on disk
    dense_bytes: int  # the dense state dict's tensor payload (what a dense fp32 checkpoint stores)
    header_bytes: int  # safetensors' 8-byte length + JSON header (tensor index and our metadata)
    bound_bytes: int  # (stored values x value bytes + entries / 8) x 1.05 + header_bytes (pruned tensors' part)
    pruned_tensors: int
    pruned_entries: int  # entries of the pruned tensors
    stored_values: int  # entries of the pruned tensors written as values (non-zeros plus kept zeros)
    value_dtype: str

    @property
    def ratio(self) -> float:
        """Dense payload over file size (how much smaller the file is than the dense weights)."""
        return self.dense_bytes / self.bytes if self.bytes else math.inf

    def to_record(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _packbits(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(mask.reshape(-1).cpu().numpy().astype(np.bool_)))


def _unpackbits(bits: torch.Tensor, count: int) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(bits.numpy(), count=count).astype(np.bool_))


def save_pruned(
    state: Mapping[str, torch.Tensor],
    pruned_names: Iterable[str],
    path: str | Path,
    value_dtype: str = "fp32",
    masks: Mapping[str, torch.Tensor] | None = None,
) -> ArtifactInfo:
    """Write `state` (a model's state_dict) with the `pruned_names` tensors compressed; returns the sizes.

    `masks` are the retrain masks (bool, one per pruned tensor) when the caller has them (the runner's hard prune);
    without them the mask of a pruned tensor is its non-zero pattern.
    """
    from safetensors.torch import save_file

    if value_dtype not in VALUE_DTYPES:
        raise UserError(f"unknown value dtype {value_dtype!r}; choose one of: {', '.join(VALUE_DTYPES)}")
    pruned = list(dict.fromkeys(pruned_names))
    unknown = [n for n in pruned if n not in state]
    if unknown:
        raise UserError(f"pruned tensor(s) not in the state dict: {', '.join(unknown[:4])}")
    pset = set(pruned)
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, dict[str, Any]] = {}
    seen: set[int] = set()
    dense_bytes = pruned_entries = stored = 0
    for name, tensor in state.items():
        t = tensor.detach().cpu()
        dense_bytes += t.numel() * t.element_size()
        entries[name] = {"shape": list(t.shape), "dtype": _dtype_name(t.dtype)}
        if name not in pset:
            # safetensors refuses tensors sharing storage (tied weights): give repeats their own copy.
            ptr = t.untyped_storage().data_ptr() if t.numel() else -1
            tensors[name] = t.contiguous().clone() if ptr in seen else t.contiguous()
            seen.add(ptr)
            entries[name]["kind"] = "dense"
            continue
        if not t.is_floating_point():
            raise UserError(f"pruned tensor {name} has dtype {t.dtype}; only floating-point tensors can be pruned")
        nonzero = t != 0
        given = None if masks is None else masks.get(name)
        retrain = nonzero if given is None else given.detach().cpu().to(torch.bool).reshape(t.shape)
        keep = retrain | nonzero
        tensors[name + SEP + "bits"] = _packbits(keep)
        tensors[name + SEP + "values"] = t[keep].to(VALUE_DTYPES[value_dtype]).contiguous()
        if not torch.equal(keep, retrain):
            tensors[name + SEP + "mask"] = _packbits(retrain)
        entries[name]["kind"] = "pruned"
        pruned_entries += t.numel()
        stored += int(keep.sum())
    meta = {"format": FORMAT, "version": VERSION, "value_dtype": value_dtype, "tensors": entries}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, separators=(",", ":"))})
    tmp.replace(path)  # a killed write never leaves a half file under the final name
    with path.open("rb") as fh:
        header = 8 + int.from_bytes(fh.read(8), "little")
    value_bytes = VALUE_DTYPES[value_dtype].itemsize
    dense_part = sum(t.numel() * t.element_size() for n, t in tensors.items() if SEP not in n)
    bound = (stored * value_bytes + pruned_entries / 8 + len(pruned)) * 1.05 + dense_part + header
    return ArtifactInfo(path=str(path), bytes=path.stat().st_size, dense_bytes=dense_bytes, header_bytes=header,
                        bound_bytes=int(math.ceil(bound)), pruned_tensors=len(pruned), pruned_entries=pruned_entries,
                        stored_values=stored, value_dtype=value_dtype)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The artifact's JSON metadata (format, version, value dtype, per-tensor shape/dtype/kind), header only."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own SafetensorsError / OSError for broken headers
        raise CheckpointError(f"{path} is not a readable safetensors file ({_first_line(exc)})") from None
    return _parse_meta(raw, path)


def load_pruned(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(dense state dict in the saved order and dtypes, retrain masks of the pruned tensors), on the CPU."""
    from safetensors.torch import load_file

    path = _existing(path)
    meta = read_metadata(path)
    try:
        stored = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path} is corrupt or truncated ({_first_line(exc)})") from None
    state: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for name, entry in meta["tensors"].items():
        try:
            shape = torch.Size(entry["shape"])
            dtype = getattr(torch, entry["dtype"])
            if entry["kind"] == "dense":
                tensor = stored[name]
            else:
                count = shape.numel()
                keep = _unpackbits(stored[name + SEP + "bits"], count)
                values = stored[name + SEP + "values"]
                if values.numel() != int(keep.sum()):
                    raise ValueError(f"{values.numel()} values for {int(keep.sum())} mask bits")
                flat = torch.zeros(count, dtype=dtype)
                flat[keep] = values.to(dtype)
                tensor = flat.view(shape)
                extra = stored.get(name + SEP + "mask")
                masks[name] = (keep if extra is None else _unpackbits(extra, count)).view(shape)
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: tensor {name} is inconsistent with the file's index ({_first_line(exc)})"
                                  ) from None
        if tensor.shape != shape or tensor.dtype != dtype:
            raise CheckpointError(f"{path}: tensor {name} is {tuple(tensor.shape)} {tensor.dtype}, the index says "
                                  f"{tuple(shape)} {dtype}")
        state[name] = tensor
    return state, masks


def load_into(model: torch.nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """Load an artifact strictly into `model` (key and shape checks name what differs); returns the retrain masks."""
    from harness.weights import load_strict

    state, masks = load_pruned(path)
    load_strict(model, state, path)
    return masks


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"pruned-model file {path} does not exist")
    return path


def _parse_meta(raw: str | None, path: Path) -> dict[str, Any]:
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a prunebench pruned model (no '{META_KEY}' "
                              "metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: unreadable prunebench metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("tensors"), dict):
        raise CheckpointError(f"{path} is not a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path} is {FORMAT} version {meta.get('version')}; this prunebench reads version "
                              f"{VERSION}")
    return meta


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
