"""Shared test setup: offline tool configs in a temp folder, quiet progress bars, deterministic CPU threads."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("PRUNEBENCH_PROGRESS", "0")
# One dense-model cache for the whole session: tests that pretrain the same digits model share it. The process that
# made it removes it at exit (pytest-xdist workers inherit the controller's, which outlives them).
if not os.environ.get("PRUNEBENCH_CACHE"):
    os.environ["PRUNEBENCH_CACHE"] = _SESSION_CACHE = tempfile.mkdtemp(prefix="prunebench-cache-")
    atexit.register(shutil.rmtree, _SESSION_CACHE, True)
from harness import offline  # noqa: E402

offline.configure()

# Under pytest-xdist (`make test`: `-n 2 --dist loadfile --no-loadscope-reorder`) each worker gets its share of the CPUs:
# torch's intra-op threads in the worker and OMP_NUM_THREADS for the subprocesses it starts (tests that need a thread
# count pass their own). Two workers each using every core oversubscribe a 2-core machine. Serial runs are unchanged.
# Each worker imports this file: its own PostgreSQL server (temp folder, socket and port of its own), tmp_path and
# tusimple_root; PRUNEBENCH_CACHE is the controller's (inherited), shared safely (cache files are written atomically).
# loadfile runs each module on one worker, one test after another: module fixtures (test_regress's minute-long CI
# sweep) run once, and tests of one module that start several processes on a lease timeline (test_queue's two
# 4-process sweeps) never overlap; files go out in collection order, so the longest ones do not all come last.
# Not `--dist loadgroup`: with pytest 9.2, pytest-xdist 3.8 silently ignores xdist_group marks (pytest-xdist #1386).
if os.environ.get("PYTEST_XDIST_WORKER"):
    _cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _threads = max(1, _cpus // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    import torch  # noqa: E402

    torch.set_num_threads(_threads)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a fresh folder: stores and run folders land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for modules of tiny tensors: avoids oversubscription stalls on busy shared CPUs
    (measured here: 0.12 s vs 2 s per small UFLD forward); the previous setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tusimple_root(tmp_path_factory):
    """A small synthetic TuSimple set (3 training, 2 test frames) converted as real data would be; read-only, shared."""
    from adapters.lanes.convert import convert_test, convert_train
    from adapters.lanes.synthetic import make_synthetic_tusimple

    out = tmp_path_factory.mktemp("tusimple")
    make_synthetic_tusimple(out, n_train=3, n_test=2, seed=3)
    convert_train(out)
    convert_test(out)
    return out


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU: without one they are skipped, saying so (benchmarks/gpu/h200_proof.py runs
    them with `-m cuda` on a GPU machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


# ---- a throwaway PostgreSQL server (Debian's `postgresql` package) for the store and queue tests ----------------------
def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """Start PostgreSQL in a temp folder (unix socket there, no TCP), as `nobody` when we are root (the server refuses
    root); yields a URL template with `{db}` for the database name. Stopped and deleted after the session."""
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql (Debian package `postgresql`; "
                    "`make test` installs it when run as root)")
    pytest.importorskip("psycopg", reason="the `postgres` extra (psycopg) is not installed")
    root = Path(tempfile.mkdtemp(prefix="prunebench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without `runuser`: cannot start PostgreSQL as another user")
        shutil.chown(root, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    with socket.socket() as s:  # the port names the socket file; a free TCP port keeps it unique on the host anyway
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"

    def pg(*args: str) -> None:
        subprocess.run(as_user + [str(bindir / args[0]), *args[1:]], check=True, capture_output=True, timeout=120)

    try:
        pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        pg("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
           f"-p {port} -k {root} -c listen_addresses= -c fsync=off -c synchronous_commit=off", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql://postgres@/{{db}}?host={root}&port={port}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's server (dropped after the test)."""
    import secrets

    import sqlalchemy as sa

    name = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(postgres_server.format(db="postgres").replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield postgres_server.format(db=name)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The results store of a test, once as a SQLite file and once as a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return request.getfixturevalue("postgres_url")
