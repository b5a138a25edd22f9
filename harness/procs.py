"""Is a process still there? Used to tell live owners of locks and scratch folders from ones left by killed runs."""

from __future__ import annotations

import os
from pathlib import Path

PID_MAX = 2**22  # Linux's PID_MAX_LIMIT: a larger "pid" is not a process id


def proc_start(pid: int) -> str | None:
    """The process start time in clock ticks (Linux /proc): tells a live pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]  # field 22 overall; fields after the "(comm)" start at 3
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists. Only positive pids: os.kill(0 or -1, ...) addresses groups, not a process."""
    if not 0 < pid < PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
