"""The progress view of `benchmark sweep`: one bar over the shard's cells and one line per finished cell.

On a terminal the bar is live (rich); without one (nohup, SLURM, CI) only the per-cell lines are printed, each on
its own flushed line, so a log shows progress. User text (run ids, error messages) is never read as markup.
"""

from __future__ import annotations

import os
import sys
from typing import Any


class SweepView:
    def __init__(self, name: str, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[last]}",
                                 markup=False), console=self.console, transient=False, disable=not self.live)
        self.bar = self.progress.add_task(f"sweep {name}", total=total, last="")
        self.total = total
        self._prev_env: str | None = None

    def __enter__(self) -> "SweepView":
        # One progress view: the runner's per-epoch bars would fight with it.
        self._prev_env = os.environ.get("PRUNEBENCH_PROGRESS")
        os.environ["PRUNEBENCH_PROGRESS"] = "0"
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
        if self._prev_env is None:
            os.environ.pop("PRUNEBENCH_PROGRESS", None)
        else:
            os.environ["PRUNEBENCH_PROGRESS"] = self._prev_env

    def on_event(self, kind: str, o: Any, done: int, total: int) -> None:
        if kind == "start":
            self.progress.update(self.bar, description=f"{o.method} {o.rate or ''}x s{o.seed}", last="starting")
            if not self.live:
                print(f"start    {'-':10} {o.run_id} [{done + 1}/{total}]", flush=True)
            return
        self.progress.update(self.bar, completed=done)
        m = o.metrics or {}
        extra = " ".join(f"{k}={m[k]:.2f}" for k in ("hardpruned", "retrained") if isinstance(m.get(k), (int, float)))
        line = f"{o.outcome:8} {o.status or '-':10} {o.run_id} {extra} [{done}/{total}]"
        if o.error and o.status != "completed":
            line += f"  ({o.error.splitlines()[0][:160]})"
        if self.live:
            self.progress.console.print(line, markup=False)
        else:
            print(line, file=sys.stdout, flush=True)

    def on_log(self, run_id: str, line: str) -> None:
        text = line.strip().splitlines()[0][:70] if line.strip() else ""
        self.progress.update(self.bar, last=text)
        if not self.live and " epoch " in text:
            print(f"    {run_id}: {text}", flush=True)
