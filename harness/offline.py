"""Keep Ultralytics (and matplotlib) offline and out of $HOME. Import this before either is imported.

Measured traps (ultralytics 8.4): importing ultralytics writes settings into ~/.config and probes DNS; every train/val
asks GitHub for Arial.ttf unless a font is already in its config dir; missing packages trigger `pip install`;
importing ultralytics before torch pins OMP_NUM_THREADS=1. Users never set these by hand: the CLI and the adapters
call `configure()` first. Values the user already exported are respected.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from harness.procs import pid_alive

_log = logging.getLogger("prunebench")
_fallback: Path | None = None  # this process's private state folder when the usual one cannot be trusted


def state_dir() -> Path:
    """Per-user scratch folder for tool configs (not $HOME): $PRUNEBENCH_STATE or <tmp>/prunebench-<uid>.

    In a shared <tmp>, <tmp>/prunebench-<uid> is used only as a real folder owned by this user (made 0700); if
    someone else made it, or it is a symlink, this process uses a fresh private folder instead (a one-line warning):
    another user could otherwise plant Ultralytics settings there or read what runs write.
    """
    global _fallback
    base = os.environ.get("PRUNEBENCH_STATE")
    if base:
        return Path(base)
    if not hasattr(os, "getuid"):
        return Path(tempfile.gettempdir()) / "prunebench"
    if _fallback is not None:
        return _fallback
    path = Path(tempfile.gettempdir()) / f"prunebench-{os.getuid()}"
    problem = _private_dir_problem(path)
    if problem is None:
        return path
    _fallback = Path(tempfile.mkdtemp(prefix=f"prunebench-{os.getuid()}-"))
    atexit.register(shutil.rmtree, _fallback, True)
    _log.warning("warning: %s %s; using %s for this run instead", path, problem, _fallback)
    return _fallback


def _private_dir_problem(path: Path) -> str | None:
    """Make `path` a folder only this user can use; None when it is one, else why it cannot be trusted."""
    try:
        os.mkdir(path, 0o700)
        return None
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot be created ({exc.strerror})"
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if st.st_uid != os.getuid():
        return f"belongs to another user (uid {st.st_uid})"
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours, made by an older version with the umask's mode
    return None


def scratch_dir(prefix: str) -> Path:
    """A fresh folder `<state_dir>/<prefix>.<host>.<pid>.XXXX` for one process's scratch files.

    Its owner removes it when done; a process killed before that leaves it behind, so folders of the same prefix
    whose process on this host is gone are removed first.
    """
    base = state_dir()
    base.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for old in base.glob(f"{prefix}.*"):
        owner_host, _, pid = old.name[len(prefix) + 1:].rpartition(".")[0].rpartition(".")
        if owner_host == host and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}.{host}.{os.getpid()}.", dir=base))


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
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")  # per process: concurrent first runs
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
    except OSError:
        pass  # a read-only tmp: Ultralytics then only warns (offline) — never fatal
