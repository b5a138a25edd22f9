"""Loading users' dense weight files (`--weights`) strictly, with errors that list what does not match.

Not the resume checkpoints of a run: those are harness/resume.py."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import CheckpointError, format_key_mismatch

_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net")


def read_checkpoint(path: str | Path) -> Any:
    """torch.load on the CPU, turning unreadable files into a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({first[:200]})") from None


def extract_state_dict(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """Find the state dict in a checkpoint: a bare dict of tensors or one nested under a usual key."""
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if key in obj and isinstance(obj[key], dict):
                return extract_state_dict(obj[key], path)
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise CheckpointError(f"checkpoint {path} holds no state dict (expected a dict of tensors, or one under 'model')")


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Drop a (Distributed)DataParallel prefix when every key carries it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load with strict key and shape checks; any mismatch is a CheckpointError naming the keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not match model {type(model).__name__}: {format_key_mismatch(missing, unexpected)}"
        )
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if shapes:
        raise CheckpointError(
            f"checkpoint {path} has {len(shapes)} tensor(s) of the wrong shape (checkpoint vs model): "
            + "; ".join(shapes[:4])
        )
    model.load_state_dict(state, strict=True)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """read -> extract -> strip `module.` -> strict load."""
    load_strict(model, strip_prefix(extract_state_dict(read_checkpoint(path), path)), path)
