"""Keep Ultralytics (and matplotlib) offline and out of $HOME. Import this before either is imported.

Measured traps (install.md §2): importing ultralytics writes settings into ~/.config and probes DNS; every train/val
asks GitHub for Arial.ttf unless a font is already in its config dir; missing packages trigger `pip install`;
importing ultralytics before torch pins OMP_NUM_THREADS=1. Users never set these by hand: the CLI and the adapters
call `configure()` first. Values the user already exported are respected.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def state_dir() -> Path:
    """Per-user scratch folder for tool configs (not $HOME): $PRUNEBENCH_STATE or <tmp>/prunebench-<uid>."""
    base = os.environ.get("PRUNEBENCH_STATE")
    if base:
        return Path(base)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"prunebench-{uid}"


def configure() -> Path:
    root = state_dir()
    yolo_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(root / "ultralytics")))
    os.environ.setdefault("MPLCONFIGDIR", str(root / "matplotlib"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    font = yolo_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        _install_font(font)
    Path(os.environ["MPLCONFIGDIR"]).mkdir(parents=True, exist_ok=True)
    return root


def _install_font(dest: Path) -> None:
    """Any TrueType font named Arial.ttf stops Ultralytics' check_font from going to GitHub."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec is None or spec.origin is None:
            return
        src = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if src.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
    except OSError:
        pass  # a read-only tmp: Ultralytics then only warns (offline) — never fatal
