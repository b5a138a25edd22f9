"""Loading users' dense weight files (`--weights`) strictly, with errors that list what does not match.

Not the resume checkpoints of a run: those are harness/resume.py."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import CheckpointError, format_key_mismatch

_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net")
# torch's weights-only unpickler says this when a file names a global it does not admit (a module class, os.system);
# the global's name follows "GLOBAL" in its message.
_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"
_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")
_log = logging.getLogger("prunebench")


def read_checkpoint(path: str | Path, trust: bool = False, hint: str = "") -> Any:
    """torch.load on the CPU with the weights-only unpickler (tensors, containers, numbers, strings: nothing runs).

    A file that also pickles Python objects (whole modules, as Ultralytics saves them) is refused with a one-line
    CheckpointError unless `trust` is set; then it is unpickled in full (which can run code the file carries) after
    a one-line warning. `hint` says how the user grants that trust (e.g. "pass --trust-weights"). Any other
    unreadable file is a one-line CheckpointError.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if _WEIGHTS_ONLY_REFUSAL not in str(exc):
            raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({_first_line(exc)})") from None
        found = _GLOBAL_NAME.search(str(exc))
        what = f"Python objects ({found.group(1)})" if found else "Python objects"
        if not trust:
            raise CheckpointError(
                f"checkpoint {path} pickles {what}, not only tensors, and loading it could run code it carries; "
                f"{hint or 'refusing to load it'} if the file comes from a trusted source"
            ) from None
        _log.warning("warning: unpickling %s in full (it holds %s): this runs any code the file carries", path, what)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:  # noqa: BLE001 — whatever a foreign pickle raises, the file is at fault
            raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc2).__name__}: "
                                  f"{_first_line(exc2)})") from None
    except Exception as exc:  # noqa: BLE001 — a text or truncated file raises KeyError, RuntimeError, EOFError, ...
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


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
