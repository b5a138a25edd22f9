"""Provenance for every record: git sha (+ dirty flag), package versions, device, host, command line, times."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("prunebench", "torch", "torchvision", "numpy", "ultralytics", "pycocotools", "faster-coco-eval",
            "scikit-learn", "spconv")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """The sha of the prunebench checkout (not of the user's working directory).

    A copy of the tree without .git (e.g. shipped to a GPU machine) has no sha to read; then PRUNEBENCH_GIT_SHA, set
    by whoever made the copy, names it, and the dirty flag stays unknown.
    """
    repo = cwd or Path(__file__).resolve().parent.parent
    unknown = {"sha": os.environ.get("PRUNEBENCH_GIT_SHA") or None, "dirty": None}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return unknown
    if sha.returncode != 0:
        return unknown
    return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "cpu": platform.processor() or platform.machine(),
                            "threads": torch.get_num_threads()}
    if device.type == "cuda" and torch.cuda.is_available():
        idx = device.index or 0
        info.update(gpu=torch.cuda.get_device_name(idx), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def collect(device: torch.device, seed: int) -> dict[str, Any]:
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "device": device_info(device),
        "seed": seed,
        "argv": sys.argv,
        "started": now(),
        "finished": None,
    }
