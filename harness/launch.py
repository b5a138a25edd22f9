"""`benchmark run --nproc N`: the same command on N local processes through torch.distributed's elastic launcher
(what `torchrun --standalone --nproc_per_node N -m harness.cli run …` does), with its outcome in one line.

The workers join one process group (harness/distributed.py). When a worker dies (killed, out of memory), the
launcher stops the others; finished runs and the last checkpoint stay, and `--resume` continues.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from typing import Callable

from harness.errors import UserError

# Exit codes of the CLI that the launcher passes on when rank 0 ended with them (harness/cli.py).
PASSED_ON = {2: "a usage error", 3: "a failed run (record kept)", 130: "interrupted"}


def strip_nproc(argv: list[str]) -> list[str]:
    """`argv` without `--nproc N` / `--nproc=N`: what each worker runs."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def threads_per_process(nproc: int) -> int:
    """CPU threads per worker so N workers do not oversubscribe the cores (torchrun sets 1)."""
    return max(1, (os.cpu_count() or 1) // nproc)


def launch(worker_argv: list[str], nproc: int, log: Callable[[str], None]) -> int:
    """Run `python -m harness.cli <worker_argv>` on `nproc` processes; returns the exit code for the CLI."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise UserError(f"--nproc {nproc}: give 1 or more processes")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_process(nproc)))
    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # the agent's own lines; we say what failed
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"prunebench-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2)
    log(f"launching {nproc} processes (torch.distributed, {'one GPU each' if _cuda_run(worker_argv) else 'gloo on CPU'})")
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "harness.cli", *worker_argv)
    except ChildFailedError as exc:
        return _failure_code(exc, log)
    return 0


def _cuda_run(argv: list[str]) -> bool:
    import torch

    device = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--device"), "auto")
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def _failure_code(exc, log: Callable[[str], None]) -> int:
    """One line for a failed job; rank 0's CLI exit code when it ended on its own (usage error, failed run)."""
    failures = exc.failures  # rank -> ProcessFailure
    # The launcher stops the survivors with SIGTERM, and they are reported as failures too: the cause is the other.
    causes = {r: f for r, f in failures.items() if f.exitcode != -signal.SIGTERM} or failures
    # A rank killed by a signal is the cause; the others then exit 1, having lost their peer (harness/errors.py).
    first_rank, first = min(causes.items(), key=lambda kv: (kv[1].exitcode >= 0, kv[1].timestamp, kv[0]))
    code = first.exitcode
    if 0 in failures and failures[0].exitcode in PASSED_ON and failures[0].exitcode == code:
        return code  # the workers printed their own error line
    if code < 0:
        try:
            cause = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            cause = f"ended with signal {-code}"
    else:
        cause = f"exited with code {code}"
    log(f"error: rank {first_rank} {cause}; the launcher stopped the other processes. Finished runs and the last "
        "checkpoint are kept: run the same command with --resume to continue")
    return 1
