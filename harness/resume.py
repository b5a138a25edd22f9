"""The resume checkpoint of a run (`<run dir>/checkpoint.pt`): written after epochs, read by `--resume`.

It holds only tensors and plain data (model and optimizer state dicts, the method's per-tensor state, the record so
far), so it is read with `torch.load(weights_only=True)`: a file planted in a shared output folder cannot run code.
Writes go to a unique temporary name and are renamed into place, so two processes never share a temp file and a kill
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from harness.errors import UserError

REQUIRED = ("run_id", "phase", "epoch", "model", "hooks", "optimizer", "record")


def save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, run_id: str, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint of run `run_id` at `path`, or None if there is none; one-line errors for anything else."""
    if not path.exists():
        return None
    hint = f"delete {path} to start the run over"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"cannot resume: {path} is unreadable or not a prunebench checkpoint ({first}); {hint}") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise UserError(f"cannot resume: {path} is not a prunebench resume checkpoint; {hint}")
    if state["run_id"] != run_id:
        raise UserError(f"cannot resume: {path} belongs to run {state['run_id']!r}, not {run_id!r}; {hint}")
    return state
