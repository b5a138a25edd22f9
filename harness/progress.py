"""Progress bars for long work: tqdm on a terminal, silent under CI or when PRUNEBENCH_PROGRESS=0."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    if os.environ.get("RANK", "0") != "0":  # data-parallel runs: rank 0 shows the job's progress
        return False
    flag = os.environ.get("PRUNEBENCH_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no", "")
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable[T], desc: str, leave: bool = True, total: int | None = None) -> tqdm:
    """A tqdm bar over `iterable` that disappears in non-interactive runs (logs stay readable)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return tqdm(iterable, desc=desc, leave=leave, total=total, disable=not progress_enabled(), dynamic_ncols=True)
