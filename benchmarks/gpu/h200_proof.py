#!/usr/bin/env python3
"""The GPU proof in one resumable, self-timing command: CUDA tests, the engine's GPU goals, a small lane table.

Steps (each in its own subprocess, each bounded by what is left of --budget-s):

  cuda_tests  `pytest -m cuda tests/test_cuda.py` (projection, SLR/ADMM updates, bf16/fp16 training that keeps masks
              exact, a YOLOv3-tiny AMP run), JUnit XML in the output folder;
  engine      `benchmarks/perf/bench_engine.py --device cuda --amp`: SLR/ADMM step vs plain step (CIFAR ResNet-18,
              batch 128, bf16; goal <= 1.02x) and the projection of all prunable weights of ResNet-50 (goal <= 1 ms)
              and of the 61M-parameter UFLD model (goal <= 2 ms), CUDA events, torch.profiler tables on a miss;
  ddp         `benchmarks/perf/bench_ddp.py` at 1 rank, when that script exists (else recorded as skipped);
  lane_table  synthetic TuSimple at the real 288x800 input: measures UFLD-18 training throughput on a small set
              first (one real `benchmark run`), sizes frames / epochs so the rest fits the budget, then runs dense
              UFLD-18 and SLR vs ADMM at 4.21x / 16.85x / 77.67x with equal budgets (`--mode paper`, and `reference`
              too when it fits) through `benchmarks/gpu/ufld_synthetic_table.py`, and writes the Markdown table.

A finished step leaves a marker in --work; run the same command again (same --work) and it skips what is done.
Outputs (reports, JSON, JUnit XML, summary.json, summary.md) go to --out; data, stores and checkpoints stay in
--work, which must not be inside --out on the GPU machine (UFLD checkpoints are GBs).

On the H200 machine (its python3 has torch 2.11 + CUDA 13; run `bash benchmarks/gpu/prepare_wheels.sh` here first,
then carry [".whl"]), the one command is:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && python3 benchmarks/gpu/h200_proof.py --out $OUT/h200

Expected split of the default 480 s: CUDA tests ~60 s, engine ~60 s, lane table the rest (calibration ~40 s).
`--smoke` runs every step tiny on a CPU (the tests do this) to prove the plumbing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (ROOT, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import ufld_synthetic_table as lanes  # noqa: E402  (the lane table's data / sweep / table functions)

from harness.results import load_records  # noqa: E402

PY = sys.executable
FINAL_RESERVE_S = 10.0  # kept back for the table, the summary and copying outputs
LANE_MIN_S = 150.0  # below this the lane table is not attempted (nothing meaningful fits)


# ---- budget, markers, subprocesses --------------------------------------------------------------------------------
@dataclass
class Context:
    out: Path
    work: Path
    smoke: bool
    start: float
    budget_s: float
    env: dict[str, str]

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    @property
    def files(self) -> Path:
        """Step outputs are written here and copied to --out after each step (a rerun's skipped steps keep theirs)."""
        return self.work / "out"

    @property
    def tag(self) -> str:
        return "smoke" if self.smoke else "h200"


class StepFailed(Exception):
    """A step could not produce its result (the message says why); no marker is written, a rerun retries it."""


def run_cmd(ctx: Context, cmd: list[str], timeout: float, log: Path) -> int:
    """Run `cmd` from the repository root, its output streamed to our stdout and to `log`; a timeout kills its
    process group (data-loader workers included) and is a StepFailed."""
    timeout = max(1.0, timeout)
    print("+", shlex.join(cmd), f"(timeout {timeout:.0f} s)", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ctx.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)

        def pump() -> None:  # the device tool returns the tail of what we print: stream it as it comes
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                fh.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise StepFailed(f"timed out after {timeout:.0f} s: {shlex.join(cmd[:4])} ...") from None
        finally:
            reader.join(timeout=5)
    return rc


def git_sha() -> str | None:
    """HEAD of this checkout, or .whl/GIT_SHA written by prepare_wheels.sh when the tree travelled without .git."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        if res.returncode == 0:
            return res.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    stamp = ROOT / ".whl" / "GIT_SHA"
    return stamp.read_text().strip() if stamp.is_file() else None


def environment(ctx: Context) -> dict[str, Any]:
    """Versions and device, read in a subprocess so this process never holds a CUDA context."""
    probe = ("import json, platform, torch, torchvision; c = torch.cuda.is_available(); print(json.dumps({"
             "'python': platform.python_version(), 'torch': torch.__version__, 'torchvision': torchvision.__version__,"
             " 'cuda': torch.version.cuda, 'cuda_available': c, 'gpu': torch.cuda.get_device_name(0) if c else None,"
             " 'cpus': __import__('os').cpu_count()}))")
    res = subprocess.run([PY, "-c", probe], capture_output=True, text=True, env=ctx.env, timeout=120)
    info: dict[str, Any] = json.loads(res.stdout) if res.returncode == 0 else {"probe_error": res.stderr[-500:]}
    info["git_sha"] = ctx.env.get("PRUNEBENCH_GIT_SHA")
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        (ctx.files / "nvidia-smi.txt").write_text(smi.stdout + smi.stderr)
    return info


# ---- step a: CUDA tests -------------------------------------------------------------------------------------------
def step_cuda_tests(ctx: Context, timeout: float) -> dict[str, Any]:
    xml = ctx.files / "cuda_tests.xml"
    rc = run_cmd(ctx, [PY, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider",
                       f"--junitxml={xml}"], timeout, ctx.files / "cuda_tests.log")
    if not xml.is_file():
        raise StepFailed(f"pytest exited {rc} without a JUnit report")
    suites = ET.parse(xml).getroot()
    suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}  # type: ignore[union-attr]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    summary = (f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
               f"{counts['skipped']} skipped of {counts['tests']}")
    if counts["tests"] == 0 or rc not in (0, 1):
        raise StepFailed(f"pytest exited {rc}: {summary}")
    return {"status": "ok" if rc == 0 else "failed", "summary": summary, **counts, "files": [xml.name]}


# ---- step b: engine targets ---------------------------------------------------------------------------------------
def step_engine(ctx: Context, timeout: float) -> dict[str, Any]:
    md, js = ctx.files / f"engine_{ctx.tag}.md", ctx.files / f"engine_{ctx.tag}.json"
    if ctx.smoke:
        size = ["--device", "cpu", "--step-model", "resnet20", "--batch", "2", "--image-size", "8", "--steps", "1", "--warmup", "1", "--rounds",
                "1", "--proj-reps", "1", "--proj-models", "resnet20", "--profile", "always", "--profile-reps", "1",
                "--profile-rows", "5"]
    else:
        size = ["--device", "cuda", "--amp", "--batch", "128", "--steps", "100", "--rounds", "3", "--proj-reps", "20"]
    rc = run_cmd(ctx, [PY, "benchmarks/perf/bench_engine.py", *size, "--out", str(md), "--json", str(js)], timeout,
                 ctx.files / "engine.log")
    if rc != 0 or not js.is_file():
        raise StepFailed(f"bench_engine.py exited {rc}")
    res = json.loads(js.read_text())
    goals = [f"{g['goal']}: {g['value']:.3f} {g['unit']} (limit {g['limit']}; "
             f"{'n/a' if g['met'] is None else ('met' if g['met'] else 'MISSED')})" for g in res["goals"]]
    missed = [g["goal"] for g in res["goals"] if g["met"] is False]
    return {"status": "ok", "summary": "; ".join(goals), "goals": res["goals"], "missed": missed,
            "profiled": res["profiled"], "files": [md.name, js.name]}


# ---- step d: DDP at one rank --------------------------------------------------------------------------------------
def step_ddp(ctx: Context, timeout: float) -> dict[str, Any]:
    script = ROOT / "benchmarks" / "perf" / "bench_ddp.py"
    if not script.is_file():
        return {"status": "skipped", "summary": "skipped: benchmarks/perf/bench_ddp.py not present"}
    md = ctx.files / f"ddp_1rank_{ctx.tag}.md"
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", str(script), "--out", str(md)]
    if ctx.smoke:
        cmd += ["--smoke"]
    rc = run_cmd(ctx, cmd, timeout, ctx.files / "ddp.log")
    if rc != 0:
        raise StepFailed(f"bench_ddp.py at 1 rank exited {rc}")
    return {"status": "ok", "summary": f"1 rank: {md.name}", "files": [md.name]}


# ---- step c: lane table -------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    """What one real UFLD run on a small set measured: the basis for sizing the table."""

    img_per_s: float  # steady-state training throughput (last epoch, data loading included)
    gen_frames_per_s: float  # synthetic frames written and converted per second
    run_overhead_s: float  # one run's time outside its training epochs (start, build, evaluations, saving)


def lane_base(ctx: Context) -> lanes.TablePlan:
    """The fixed part of the lane plan: smoke size on CPU, the official input on the GPU."""
    if ctx.smoke:
        return dataclasses.replace(lanes.SMOKE)
    return lanes.TablePlan(batch_size=32, amp="bf16", workers=min(12, os.cpu_count() or 1), checkpoint_every=0)


def calibrate(ctx: Context, base: lanes.TablePlan, timeout: float) -> Calibration:
    """Generate a small set, then one real `benchmark run` (dense 1 epoch, 2 masked-retrain epochs) on it."""
    cal = ctx.work / "lane_calibration"
    # smoke: the table's own tiny set serves as the calibration set (generating frames is the slow part on a CPU)
    data = lanes.work_paths(ctx.work / "lane_table")[0] if ctx.smoke else cal / "data"
    n_train, n_test = (base.train, base.test) if ctx.smoke else (640, 32)
    t0 = time.monotonic()
    lanes.make_data(data, n_train, n_test, timeout=timeout)
    gen_rate = (n_train + n_test) / max(1e-3, time.monotonic() - t0)
    cmd = [PY, "-m", "harness.cli", "run", "--task", "tusimple", "--model", "ufld_resnet18", "--method", "magnitude",
           "--rate", "4.21", "--data", str(data), "--pretrain-epochs", "1", "--epochs", "0",
           "--retrain-epochs", "2", "--batch-size", str(base.batch_size), "--workers", str(base.workers),
           "--store", str(cal / "store.sqlite"), "--out", str(cal / "runs"), "--checkpoint-every", "0"]
    cmd += ["--amp", base.amp] if base.amp != "none" else []
    for opt in base.opts:
        cmd += ["--opt", opt]
    cmd += ["--max-steps", str(base.max_steps)] if base.max_steps else []
    # The table's dense-model cache: in smoke (same data, same pretraining) the sweep then reuses this dense model.
    env_cache = {**ctx.env, **lanes.cache_env(ctx.work / "lane_table")}
    t1 = time.monotonic()
    print("+", shlex.join(cmd), flush=True)
    res = subprocess.run(cmd, cwd=ROOT, env=env_cache, capture_output=True, text=True,
                         timeout=max(1.0, timeout - (t1 - t0)))
    wall = time.monotonic() - t1
    (ctx.files / "lane_calibration.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise StepFailed(f"calibration run exited {res.returncode}: {res.stderr.strip().splitlines()[-1:]}")
    done = [r for r in load_records(cal / "store.sqlite") if r.get("status") == "completed"]
    if not done:
        raise StepFailed("the calibration run left no completed record")
    epochs = done[-1]["curves"]["retrain"]
    steps = min(math.ceil(n_train / base.batch_size), base.max_steps or 10**9)
    frames = min(n_train, steps * base.batch_size)
    epoch_s = max(1e-3, epochs[-1]["seconds"])
    # Three epochs ran (1 dense + 2 retrain); the rest of the wall time is per-run overhead.
    return Calibration(img_per_s=frames / epoch_s, gen_frames_per_s=gen_rate,
                       run_overhead_s=max(0.0, wall - 3 * epoch_s))


def lane_seconds(plan: lanes.TablePlan, cal: Calibration) -> float:
    """Predicted wall time of data generation + dense training + every cell, evaluations counted as training."""
    cells = plan.cells()
    evals_per_cell = 3 + plan.epochs // max(1, plan.check_every) + plan.retrain_epochs  # dense, checks, pruned, retrain
    train_imgs = plan.train * (plan.pretrain_epochs + cells * (plan.epochs + plan.retrain_epochs))
    eval_imgs = plan.test * cells * evals_per_cell
    sweeps = len(plan.modes.split(","))
    return ((plan.train + plan.test) / cal.gen_frames_per_s + (train_imgs + eval_imgs) / cal.img_per_s
            + (cells + sweeps) * cal.run_overhead_s)


# Preferred first: both modes; then the paper's mode only; then fewer epochs. (pretrain, method, retrain, check)
LANE_SHAPES = (("paper,reference", 15, 6, 2, 3), ("paper", 15, 6, 2, 3), ("paper", 8, 3, 1, 3))
FRAMES = (400, 3000)  # training frames: the fewest worth a table, the most worth generating


def size_lane_plan(base: lanes.TablePlan, cal: Calibration, seconds: float) -> lanes.TablePlan | None:
    """The first shape in LANE_SHAPES that fits `seconds` with at least FRAMES[0] frames, with as many frames as fit
    (test frames a sixth of them, 64-500); None when none fits."""
    for modes, pre, ep, re, ce in LANE_SHAPES:
        shape = dataclasses.replace(base, modes=modes, pretrain_epochs=pre, epochs=ep, retrain_epochs=re,
                                    check_every=ce)
        best = None
        lo, hi = FRAMES
        while lo <= hi:  # the largest frame count that fits (time grows with frames)
            mid = (lo + hi) // 2
            plan = dataclasses.replace(shape, train=mid, test=min(500, max(64, mid // 6)))
            if lane_seconds(plan, cal) <= seconds:
                best, lo = plan, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best
    return None


def step_lane_table(ctx: Context, timeout: float) -> dict[str, Any]:
    if timeout < (5.0 if ctx.smoke else LANE_MIN_S):
        return {"status": "failed", "summary": f"not attempted: {timeout:.0f} s of budget left"}
    end = time.monotonic() + timeout
    saved = ctx.work / "lane_plan.json"
    if saved.is_file():  # a rerun resumes the plan sized the first time (its data and finished cells stay valid)
        state = json.loads(saved.read_text())
        cal, plan = Calibration(**state["calibration"]), lanes.TablePlan(**state["plan"])
        print(f"lane table: resuming the plan in {saved}", flush=True)
    else:
        base = lane_base(ctx)
        cal = calibrate(ctx, base, timeout)
        if ctx.smoke:
            plan = base  # smoke: the sizing arithmetic runs (lane_seconds) but the tiny plan is kept
        else:
            sized = size_lane_plan(base, cal, end - time.monotonic())
            if sized is None:
                raise StepFailed(f"no lane table fits the {end - time.monotonic():.0f} s left at "
                                 f"{cal.img_per_s:.0f} img/s; rerun with a larger --budget-s")
            plan = sized
        saved.write_text(json.dumps({"calibration": dataclasses.asdict(cal), "plan": dataclasses.asdict(plan)}))
    predicted = lane_seconds(plan, cal)
    print(f"lane table: calibration {dataclasses.asdict(cal)}; plan {dataclasses.asdict(plan)}; "
          f"predicted {predicted:.0f} s", flush=True)
    table_work = ctx.work / "lane_table"
    sub_timeout = end - time.monotonic()
    status, note = "ok", ""
    try:
        lanes.make_data(lanes.work_paths(table_work)[0], plan.train, plan.test, timeout=sub_timeout)
        lanes.run_sweeps(plan, table_work, timeout=max(1.0, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        status, note = "partial", "the sweep ran out of budget; the table holds the finished runs"
    except subprocess.CalledProcessError as exc:
        status, note = "partial", f"the sweep exited {exc.returncode}"
    md = ctx.files / f"ufld_synthetic_table_{ctx.tag}.md"
    if not lanes.work_paths(table_work)[1].is_file():
        raise StepFailed(f"{note}: no run finished, so there is no table")
    try:
        lanes.write_table(table_work, md, lanes.plan_command(plan, table_work, md.name))
    except SystemExit as exc:  # no completed run at all
        raise StepFailed(f"{note or 'no table'}: {exc}") from None
    # "partial" leaves no marker: a rerun resumes the sweep (its finished cells are skipped) and rewrites the table
    return {"status": status, "summary": f"{plan.cells()} runs planned at {plan.train} frames, predicted "
            f"{predicted:.0f} s; {note or 'done'}", "calibration": dataclasses.asdict(cal),
            "plan": dataclasses.asdict(plan), "predicted_s": predicted, "files": [md.name]}


# ---- driver -------------------------------------------------------------------------------------------------------
# name, function, the most seconds it may take, the seconds it leaves for the steps after it
STEPS: tuple[tuple[str, Callable[[Context, float], dict[str, Any]], float, float], ...] = (
    ("cuda_tests", step_cuda_tests, 150.0, LANE_MIN_S + 60.0),
    ("engine", step_engine, 150.0, LANE_MIN_S),
    ("ddp", step_ddp, 60.0, LANE_MIN_S),
    ("lane_table", step_lane_table, float("inf"), 0.0),
)


def marker(ctx: Context, name: str) -> Path:
    return ctx.work / "markers" / f"{name}.json"


def run_step(ctx: Context, name: str, fn, cap: float, leave: float) -> dict[str, Any]:
    done = marker(ctx, name)
    if done.is_file():
        result = json.loads(done.read_text())
        print(f"== {name}: done in an earlier run ({result['status']}), skipped", flush=True)
        return {**result, "resumed": True}
    left = ctx.left() - FINAL_RESERVE_S
    timeout = min(cap, left - (0.0 if ctx.smoke else leave))  # smoke: no room is kept for a real lane table
    print(f"== {name} (up to {timeout:.0f} s; {left:.0f} s of budget left)", flush=True)
    t = time.monotonic()
    try:
        result = fn(ctx, timeout)
    except StepFailed as exc:
        result = {"status": "failed", "summary": str(exc)}
    except subprocess.TimeoutExpired as exc:
        result = {"status": "failed", "summary": f"timed out: {exc}"}
    except Exception as exc:  # noqa: BLE001 - one broken step must not cost the GPU time of the others
        result = {"status": "failed", "summary": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = round(time.monotonic() - t, 1)
    if result["status"] in ("ok", "skipped"):
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(result, indent=2))
    sync_out(ctx)
    print(f"== {name}: {result['status']} in {result['seconds']:.0f} s: {result['summary']}", flush=True)
    return result


def sync_out(ctx: Context) -> None:
    """Copy the step outputs to --out (after every step, so a kill still leaves what finished)."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    for f in ctx.files.iterdir():
        if f.is_file():
            shutil.copy2(f, ctx.out / f.name)


def write_summary(ctx: Context, env_info: dict[str, Any], results: dict[str, dict[str, Any]], argv: list[str]) -> str:
    table = f"ufld_synthetic_table_{ctx.tag}.md"
    lines = [
        f"# GPU proof ({'smoke, CPU' if ctx.smoke else 'H200'})",
        "",
        f"- command: `{shlex.join(argv)}`",
        f"- environment: {json.dumps(env_info)}",
        f"- wall: {time.monotonic() - ctx.start:.0f} s of a {ctx.budget_s:.0f} s budget",
        "",
        "| step | status | seconds | summary |",
        "|---|---|---|---|",
        *(f"| {n} | {r['status']}{' (earlier run)' if r.get('resumed') else ''} | {r.get('seconds', 0):.0f} | "
          f"{r['summary']} |" for n, r in results.items()),
        "",
        "Next: copy to benchmarks/results/ and commit: "
        + ", ".join(f for r in results.values() for f in r.get("files", []) if f.endswith(".md"))
        + (f" (the lane table as {table})." if (ctx.files / table).is_file() else "."),
        "A failed or unfinished step: run the same command again within the machine's warm period; finished steps "
        "are skipped.",
        "",
    ]
    text = "\n".join(lines)
    (ctx.files / "summary.md").write_text(text)
    (ctx.files / "summary.json").write_text(json.dumps(
        {"command": argv, "environment": env_info, "budget_s": ctx.budget_s, "steps": results}, indent=2))
    sync_out(ctx)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for every report (summary.json, summary.md, ...)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "prunebench_h200",
                    help="folder for data, stores, checkpoints and the step markers (keep it outside --out)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for all steps (seconds)")
    ap.add_argument("--smoke", action="store_true", help="every step tiny, on CPU (plumbing check)")
    ap.add_argument("--only", default=None, help="comma-separated subset of steps: " + ", ".join(s[0] for s in STEPS))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out, work = a.out.expanduser().resolve(), a.work.expanduser().resolve()
    if work == out or out in work.parents:
        raise SystemExit("error: --work must not be inside --out (the lane table's checkpoints would be copied back)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PRUNEBENCH_PROGRESS": "0"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    sha = git_sha()
    if sha:
        env.setdefault("PRUNEBENCH_GIT_SHA", sha)
    ctx = Context(out=out, work=work, smoke=a.smoke, start=time.monotonic(), budget_s=a.budget_s, env=env)
    ctx.files.mkdir(parents=True, exist_ok=True)
    env_info = environment(ctx)
    print(f"environment: {json.dumps(env_info)}", flush=True)
    only = set(a.only.split(",")) if a.only else None
    results = {name: run_step(ctx, name, fn, cap, leave) for name, fn, cap, leave in STEPS
               if only is None or name in only}
    print(write_summary(ctx, env_info, results, [Path(PY).name, *sys.argv]), flush=True)
    return 0 if all(r["status"] in ("ok", "skipped") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
