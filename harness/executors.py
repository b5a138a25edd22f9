"""Launch sweep workers that pull cells from the results store until none is left (harness.sweep.run_sweep).

* `local`: K worker processes on this machine through submitit's LocalExecutor (each worker is submitit's controller
  process plus the task process running `sweep_worker`; logs and pickled results under `<out>/.submitit`). On a
  machine with GPUs, worker k sees GPU k mod G only (CUDA_VISIBLE_DEVICES), so K = G spreads a sweep over G GPUs.
* `slurm`: K workers as one SLURM job array through submitit's AutoExecutor; this command returns once they are
  queued (a sweep may wait hours for its nodes): the store shows progress (`benchmark sweep ... --dry-run`).

Workers share nothing but the store, so they can be added, killed or resubmitted at any time: a killed worker's cell
is resumed from its checkpoint by another (harness/claims.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.config import RunConfig
from harness.errors import UserError
from harness.sweep import CellOutcome, SweepSpec

EXECUTORS = ("inline", "local", "slurm")
LOCAL_TIMEOUT_MIN = 60 * 24 * 365  # submitit's local default is 2 minutes; a local sweep has no scheduler limit
SLURM_TIMEOUT_MIN = 60 * 24  # a day: most clusters cap jobs near this; a worker cut off is resumed by the others


@dataclass
class WorkerPlan:
    """What every worker runs: the whole grid (or one static shard of it), pulled cell by cell from the store."""

    spec: SweepSpec
    store: str
    out: str
    shard: tuple[int, int] = (0, 1)
    retry_failed: bool = True
    lease: float = 900.0
    poll: float = 2.0


@dataclass
class SlurmOptions:
    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    timeout_min: int | None = None


@dataclass
class Launched:
    """Workers launched: their ids and where submitit keeps their logs; for local workers, what each returned."""

    executor: str
    job_ids: list[str]
    folder: Path
    outcomes: list[CellOutcome] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)  # one line per worker that died or failed


def sweep_worker(plan: WorkerPlan) -> list[CellOutcome]:
    """One worker process: take cells from the store until every cell of the plan is finished or held by a worker
    that is still alive (then wait for it, taking the cell over if that worker dies)."""
    from harness import offline

    offline.configure()  # keep Ultralytics / matplotlib offline in the fresh process, as the CLI does
    from harness.sweep import run_sweep

    return run_sweep(plan.spec, store=plan.store, out=plan.out, shard=plan.shard, retry_failed=plan.retry_failed,
                     stale_after=plan.lease, wait=True, poll=plan.poll)


def _submitit() -> Any:
    try:
        import submitit
    except ModuleNotFoundError:
        raise UserError("--executor local/slurm needs submitit: pip install 'prunebench[slurm]'") from None
    return submitit


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch_local(plan: WorkerPlan, workers: int, folder: Path, timeout_min: int | None = None) -> Launched:
    """Run `workers` local worker processes and wait for all of them."""
    submitit = _submitit()
    executor = submitit.LocalExecutor(folder=folder)
    gpus = _gpu_count()
    jobs = []
    for k in range(workers):
        # Parameters are read at each submit: one GPU per worker, round robin; none on a CPU-only machine.
        executor.update_parameters(timeout_min=timeout_min or LOCAL_TIMEOUT_MIN, gpus_per_node=1 if gpus else 0,
                                   visible_gpus=(k % gpus,) if gpus else ())
        jobs.append(executor.submit(sweep_worker, plan))
    done = Launched("local", [j.job_id for j in jobs], folder)
    for k, job in enumerate(jobs):
        try:
            done.outcomes.extend(job.result())
        except Exception as exc:  # noqa: BLE001 — a killed or crashed worker; the others finish its cells
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            done.worker_errors.append(f"worker {k} (job {job.job_id}) ended without a result: {first[:200]}; "
                                      f"log {job.paths.stderr}")
    return done


def launch_slurm(plan: WorkerPlan, workers: int, folder: Path, opts: SlurmOptions) -> Launched:
    """Queue `workers` workers as one SLURM job array; returns once sbatch accepted it."""
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]  # submitit runs workers via srun
    if missing:
        raise UserError(f"--executor slurm needs SLURM's {' and '.join(missing)} on the PATH (run it on a login "
                        "node), or use --executor local")
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {"timeout_min": opts.timeout_min or SLURM_TIMEOUT_MIN, "name": f"prunebench-{plan.spec.name}"}
    if opts.partition:
        params["slurm_partition"] = opts.partition
    if opts.gpus_per_task is not None:
        params["slurm_gpus_per_task"] = opts.gpus_per_task
    if opts.cpus_per_task is not None:
        params["cpus_per_task"] = opts.cpus_per_task
    executor.update_parameters(**params)
    with executor.batch():
        jobs = [executor.submit(sweep_worker, plan) for _ in range(workers)]
    return Launched("slurm", [j.job_id for j in jobs], folder)


def sweep_with_workers(spec: SweepSpec, cells: list[RunConfig], store: str, out: str | Path,
                       shard: tuple[int, int], retry_failed: bool, lease: float, executor: str, workers: int,
                       slurm: SlurmOptions, say: Callable[[str], None], warn: Callable[[str], None]) -> int:
    """`benchmark sweep --executor local|slurm --workers K`: launch the workers, and for local ones report every
    cell of the shard once they are done. Exit code: 0, 3 if a cell failed, 1 if cells are left unfinished."""
    from harness.db import describe, is_url
    from harness.results import ResultStore

    check_workers(executor, workers)
    store = store if is_url(store) else str(Path(store).resolve())  # workers may start in another folder
    out = Path(out).resolve()
    results = ResultStore(store)  # a bad URL or an unreachable server: one line now, not K worker failures
    plan = WorkerPlan(spec, store, str(out), shard, retry_failed, lease)
    folder = out / ".submitit"
    if executor == "slurm":
        done = launch_slurm(plan, workers, folder, slurm)
        say(f"queued {len(done.job_ids)} SLURM workers ({', '.join(done.job_ids)}); logs in {folder}")
        if not is_url(store):
            warn("note: a SQLite store is safe on one node only; workers on several nodes need --store "
                 "postgresql://...")
        say(f"progress: benchmark sweep ... --store {describe(store)} --dry-run")
        return 0
    warn(f"sweep {spec.name}: {workers} local workers (submitit LocalExecutor; logs in {folder})")
    done = launch_local(plan, workers, folder, slurm.timeout_min)
    for line in done.worker_errors:
        warn(f"warning: {line}")
    mine = [c.run_id() for k, c in enumerate(cells) if k % shard[1] == shard[0]]
    statuses = results.statuses(mine)
    ran = {o.run_id for o in done.outcomes if o.outcome == "ran"}
    counts: dict[str, int] = {}
    for run_id in mine:
        status = statuses.get(run_id) or "not run"
        say(f"{'ran' if run_id in ran else 'skipped':8} {status:10} {run_id}")
        counts[status] = counts.get(status, 0) + 1
    warn(f"sweep {spec.name}: {len(mine)} cells ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); "
         f"store {describe(store)}")
    if set(counts) - {"completed", "failed"}:
        return 1  # every worker ended and cells are left: the worker errors above say why
    return 3 if "failed" in counts else 0


def check_workers(executor: str, workers: int) -> None:
    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if executor == "inline" and workers != 1:
        raise UserError("--workers needs --executor local or slurm (the default runs the sweep in this process)")
