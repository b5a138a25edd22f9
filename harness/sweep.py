"""Sweeps: a grid of runs (methods x rates x seeds) from CLI flags or an experiment YAML, resumable and shareable.

* Resumable: a cell whose run id is `completed` in the store is skipped; every other cell runs with
  `run(cfg, resume=True)`, so a sweep killed with `kill -9` continues from the last epoch checkpoint of the cell it was
  in and never redoes a finished cell (a record reaches the store only after the run finished).
* A failing cell (diverged, bad data, any exception) is recorded as `failed` in the store and the sweep goes on.
* The store is the queue: any number of worker processes, on any hosts sharing the store (PostgreSQL across nodes),
  pull cells from it. Each cell is claimed in the store with a lease and a heartbeat (harness/claims.py); a worker
  killed mid-cell loses its claim (at once to workers on its host, after the lease elsewhere) and the next worker
  resumes the cell from its checkpoint. `--shard i/n` splits the grid statically on top of that, for users who
  launch workers themselves; harness/executors.py launches them as local processes or SLURM jobs.

Experiment YAML (benchmarks/configs/*.yaml)::

    name: t1_cifar10_resnet18
    source: "SLR paper Table 1, row ResNet-18 CIFAR-10"
    task: cifar10
    model: resnet18
    methods: [slr, admm]
    rates: [8.71]
    seeds: [0]
    run:      {epochs: 40, optimizer: adam, lr: 0.01, batch_size: 128, retrain_epochs: 0, prune_pattern: ...}
    settings: {rho: 0.1, M: 300, r: 0.1, s0: 0.01, mode: paper}
    method_overrides: {admm: {settings: {rho: 0.01}}}
    reported: benchmarks/tables/paper_table1.csv   # what `benchmark regress` compares against
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.claims import DEFAULT_LEASE, Claim, ClaimQueue, host_id
from harness.config import DEFAULT_OUT, MethodSettings, RunConfig
from harness.errors import UserError
from harness.options import coerce
from harness.results import ResultStore
from harness.yamlio import load_yaml

# RunConfig fields an experiment may set under `run:` (the grid axes and output places are set elsewhere).
RUN_FIELDS = tuple(
    f.name for f in dataclasses.fields(RunConfig)
    if f.name not in RunConfig.GRID_FIELDS + ("settings", "store", "out")
)
SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(MethodSettings)) + ("slr_overrides",)
SPEC_KEYS = ("name", "description", "source", "task", "model", "methods", "rates", "seeds", "run", "settings",
             "method_overrides", "reported", "notes")


@dataclass
class SweepSpec:
    """A grid of runs: every method x rate x seed with shared run options and method settings."""

    task: str = "digits"
    model: str | None = None
    methods: list[str] = field(default_factory=lambda: ["slr", "admm", "magnitude"])
    rates: list[float | None] = field(default_factory=lambda: [None])
    seeds: list[int] = field(default_factory=lambda: [0])
    run: dict[str, Any] = field(default_factory=dict)  # RunConfig fields
    settings: dict[str, Any] = field(default_factory=dict)  # MethodSettings fields
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> {run: {}, settings: {}}
    name: str = "sweep"
    source: str | None = None
    reported: str | None = None

    def cells(self, store: str, out: str) -> list[RunConfig]:
        """The grid in a fixed order (rate, method, seed): the order `--shard` splits by."""
        from harness.tasks import get_task_class

        # Resolve the default model now: the run id must be the one `run()` computes, or resume would miss it.
        model = self.model or get_task_class(self.task).default_model
        from harness.runner import resolve, validate

        cells = []
        for rate in self.rates:
            for method in self.methods:
                over = self.method_overrides.get(method, {})
                run_opts = {**self.run, **(over.get("run") or {})}
                settings = {**self.settings, **(over.get("settings") or {})}
                for seed in self.seeds:
                    cfg = RunConfig.from_dict({**run_opts, "task": self.task, "model": model, "method": method,
                                               "rate": rate, "seed": seed, "settings": settings, "store": store,
                                               "out": out}, where="sweep" if self.name == "sweep" else f"sweep {self.name}")
                    resolve(cfg, validate(cfg))  # the run id of the experiment that will actually run
                    cells.append(cfg)
        return cells


def _check_keys(where: str, given: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def load_spec(path: str | Path) -> SweepSpec:
    """Read an experiment YAML, checking every key (a typo must not silently fall back to a default)."""
    path = Path(path)
    doc = load_yaml(path, "sweep config")
    if not isinstance(doc, dict):
        raise UserError(f"sweep config {path} must be a mapping (see harness/sweep.py for the format)")
    _check_keys(str(path), doc, SPEC_KEYS)
    for key in ("run", "settings", "method_overrides"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise UserError(f"{path}: {key}: must be a mapping of key: value")
    run = dict(doc.get("run") or {})
    _check_keys(f"{path} run:", run, RUN_FIELDS)
    settings = dict(doc.get("settings") or {})
    _check_keys(f"{path} settings:", settings, SETTINGS_FIELDS)
    overrides = dict(doc.get("method_overrides") or {})
    for method, over in overrides.items():
        _check_keys(f"{path} method_overrides.{method}:", over, ("run", "settings"))
        _check_keys(f"{path} method_overrides.{method}.run:", over.get("run") or {}, RUN_FIELDS)
        _check_keys(f"{path} method_overrides.{method}.settings:", over.get("settings") or {}, SETTINGS_FIELDS)
    # A prune config is named relative to the experiment file, so configs work from any working directory.
    for opts in [run] + [o.get("run") or {} for o in overrides.values()]:
        if opts.get("prune_config"):
            opts["prune_config"] = str((path.parent / opts["prune_config"]).resolve())
    if "task" not in doc:
        raise UserError(f"sweep config {path} must name a task")
    rates = doc.get("rates")
    return SweepSpec(
        task=str(doc["task"]), model=doc.get("model"),
        methods=coerce(list[str], doc.get("methods") or ["slr"], f"{path} methods"),
        rates=[None] if rates is None else coerce(list[float], rates, f"{path} rates"),
        seeds=coerce(list[int], doc.get("seeds") or [0], f"{path} seeds"),
        run=run, settings=settings, method_overrides=overrides, name=str(doc.get("name") or path.stem),
        source=doc.get("source"), reported=doc.get("reported"),
    )


def parse_list(text: str | None, cast: Callable[[str], Any], what: str) -> list[Any] | None:
    """'1.82,2.54' -> [1.82, 2.54]; None stays None."""
    if text is None:
        return None
    try:
        return [cast(x.strip()) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--{what} expects a comma-separated list, got {text!r}") from None
    # (typed lists from YAML go through harness.options.coerce)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' (0-based i) -> (i, n)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard expects i/n with 0 <= i < n (e.g. 0/2 and 1/2), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard expects i/n with 0 <= i < n (e.g. 0/2 and 1/2), got {text!r}")
    return i, n


# ---- running -------------------------------------------------------------------------------------------------------
@dataclass
class CellOutcome:
    run_id: str
    method: str
    rate: float | None
    seed: int
    outcome: str  # ran | skipped (completed before) | held (claimed by a live process) | other-shard
    status: str | None  # the record's status after this sweep: completed | failed | interrupted | None
    error: str | None = None
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


def failed_record(cfg: RunConfig, run_id: str, error: str) -> dict[str, Any]:
    """A schema-valid record for a cell that failed before or outside the runner's own bookkeeping."""
    import torch

    from harness import provenance
    from harness.record import RunRecord

    rec = RunRecord.failed(cfg, Path(cfg.out).resolve() / run_id, provenance.collect(torch.device("cpu"), cfg.seed),
                           error)
    rec.provenance["finished"] = provenance.now()
    return rec.to_dict()


def run_cell(cfg: RunConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """One cell: `run(cfg, resume=True)` under the sweep's claim; any exception becomes a failed record (the sweep
    goes on). A completed record is never replaced by a failure of a later attempt."""
    from harness.record import RunRecord
    from harness.runner import run

    run_id = cfg.run_id()
    try:
        return run(cfg, resume=True, log=log, claim=False)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 — a sweep must survive any single cell
        msg = f"{type(exc).__name__}: {exc}"
        log("error: " + msg + "\n" + traceback.format_exc())
        rec = failed_record(cfg, run_id, msg)
        try:
            RunRecord.from_dict(rec).write(Path(cfg.out) / run_id / "record.json")
            ResultStore(cfg.store).put(rec)
        except (UserError, OSError) as exc2:  # a completed record stays; the store may be unwritable
            log(f"note: failure not recorded: {exc2}")
        return rec


class _SweepState:
    """The bookkeeping of one sweep process over its shard: outcomes so far and the progress callbacks."""

    def __init__(self, store: ResultStore, total: int, on_event: Callable[..., None] | None,
                 on_log: Callable[[str, str], None] | None):
        self.store, self.total = store, total
        self.outcomes: dict[str, CellOutcome] = {}
        self.emit = on_event or (lambda *a: None)
        self.on_log = on_log

    def status(self, run_id: str) -> str | None:
        rec = self.store.get(run_id)
        return rec.get("status") if rec else None

    def done(self, outcome: CellOutcome) -> None:
        self.outcomes[outcome.run_id] = outcome
        self.emit("done", outcome, len(self.outcomes), self.total)

    def skipped(self, cfg: RunConfig, status: str | None) -> None:
        rec = self.store.get(cfg.run_id()) or {}
        prev = self.outcomes.get(cfg.run_id())
        self.done(prev if prev and prev.outcome == "ran" else CellOutcome(
            **_base(cfg), outcome="skipped", status=status, error=rec.get("error"), metrics=rec.get("metrics", {})))


def _base(cfg: RunConfig) -> dict[str, Any]:
    return dict(run_id=cfg.run_id(), method=cfg.method, rate=cfg.rate, seed=cfg.seed)


def _finished(status: str | None, retry_failed: bool) -> bool:
    return status == "completed" or (status == "failed" and not retry_failed)


def _run_claimed(cfg: RunConfig, state: _SweepState, out: str, claim: Claim) -> None:
    """Run one cell this process holds the claim of (heartbeating it), logging into its run folder's sweep.log."""
    run_id = cfg.run_id()
    state.emit("start", CellOutcome(**_base(cfg), outcome="running", status=None), len(state.outcomes), state.total)
    run_dir = Path(out) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(run_dir / "sweep.log", "a") as log_fh:
        def log(line: str) -> None:
            log_fh.write(line.rstrip("\n") + "\n")
            log_fh.flush()
            if state.on_log:
                state.on_log(run_id, line)

        # One such line per attempt at the cell: what tests and users count to see who ran it.
        log(f"--- sweep pid {os.getpid()} on {host_id()} at {time.ctime()}")
        with claim.beating(log=log):
            rec = run_cell(cfg, log)
    state.done(CellOutcome(**_base(cfg), outcome="ran", status=rec.get("status"), error=rec.get("error"),
                           seconds=time.perf_counter() - t0, metrics=rec.get("metrics", {})))


def run_sweep(
    spec: SweepSpec,
    store: str | Path = "prunebench.sqlite",
    out: str | Path = DEFAULT_OUT,
    shard: tuple[int, int] = (0, 1),
    retry_failed: bool = True,
    stale_after: float = DEFAULT_LEASE,
    wait: bool = True,
    poll: float = 2.0,
    on_event: Callable[[str, CellOutcome | None, int, int], None] | None = None,
    on_log: Callable[[str, str], None] | None = None,
) -> list[CellOutcome]:
    """Pull cells of this shard from the store's queue and run them until none is left. Returns one outcome per cell
    of the shard. Any number of these workers (processes, hosts) may share a store: each cell is claimed in the
    store (harness/claims.py) with a lease of `stale_after` seconds that a heartbeat extends.

    `wait`: when every remaining cell is held by another live worker, keep polling (every `poll` seconds) until they
    finish, taking over any whose lease expires or whose owner on this host died. Without it, such cells are reported
    as `held`. `on_event(kind, outcome, done, total)` drives the progress view (kind: start | done);
    `on_log(run_id, line)` receives the runner's log lines.
    """
    store, out = str(store), str(out)
    results = ResultStore(store)  # creates or upgrades the schema once, before workers race to
    i, n = shard
    mine = [c for k, c in enumerate(spec.cells(store, out)) if k % n == i]
    by_id = {c.run_id(): c for c in mine}
    queue = ClaimQueue(results, lease=stale_after)
    queue.enqueue(list(by_id))
    since = queue.now()  # failures recorded after this are another worker's result for this sweep, not to redo
    state = _SweepState(results, len(mine), on_event, on_log)
    statuses = results.statuses(list(by_id))
    pending = []
    for run_id, cfg in by_id.items():
        if _finished(statuses.get(run_id), retry_failed):
            state.skipped(cfg, statuses.get(run_id))
        else:
            pending.append(run_id)
    while pending:
        claim = queue.claim_next(pending, since)
        if claim is None:
            # Everything left is held by live workers, or finished by one of them since we last looked.
            statuses = results.statuses(pending)
            settled = queue.finished_since(pending, since) | {r for r in pending if statuses.get(r) == "completed"}
            for run_id in settled:
                state.skipped(by_id[run_id], statuses.get(run_id))
            pending = [r for r in pending if r not in settled]
            if pending and not wait:
                for run_id in pending:
                    state.outcomes[run_id] = CellOutcome(**_base(by_id[run_id]), outcome="held",
                                                         status=statuses.get(run_id),
                                                         error="claimed by another live process")
                break
            if pending:
                time.sleep(poll)
            continue
        cfg, ran = by_id[claim.run_id], False
        try:
            status = state.status(claim.run_id)  # another worker may have finished it before our claim
            if status == "completed":
                state.skipped(cfg, status)
            else:
                _run_claimed(cfg, state, out, claim)
                ran = True
        finally:
            claim.release(done=ran)  # interrupted or killed before a result: free for others to resume
        pending.remove(claim.run_id)
    order = {c.run_id(): k for k, c in enumerate(mine)}
    return sorted(state.outcomes.values(), key=lambda o: order.get(o.run_id, 0))
