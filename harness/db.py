"""The results database behind `ResultStore` and the sweep claims: one schema on SQLite or PostgreSQL (SQLAlchemy Core).

* `--store` is a file path (SQLite, the embedded default) or any SQLAlchemy URL (`postgresql://user@host:5432/db` for
  sweeps spread over several nodes: SQLite's WAL needs shared memory, and file locks over NFS are unreliable).
* The schema is versioned: the `schema_version` table holds the number of `MIGRATIONS` applied, and opening a store
  applies the missing ones in order, under a lock (SQLite: an immediate transaction; PostgreSQL: a transaction-scoped
  advisory lock), so workers that open a fresh store at once do not race. A SQLite store written before versioning
  (a `runs` table and nothing else) counts as version 1 and is upgraded in place.
* Contention is retried: SQLite's "database is locked/busy", PostgreSQL's serialization failures and deadlocks.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from harness.errors import UserError

_T = TypeVar("_T")

metadata = sa.MetaData()

# One row per run id: the searchable columns and the whole record JSON (the columns of the pre-SQLAlchemy store).
runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.Text, primary_key=True), sa.Column("status", sa.Text), sa.Column("task", sa.Text),
    sa.Column("model", sa.Text), sa.Column("method", sa.Text), sa.Column("mode", sa.Text),
    sa.Column("rate_requested", sa.Float), sa.Column("rate_paper", sa.Float), sa.Column("rate_conv", sa.Float),
    sa.Column("metric", sa.Text), sa.Column("dense", sa.Float), sa.Column("hardpruned", sa.Float),
    sa.Column("retrained", sa.Float), sa.Column("seed", sa.Integer), sa.Column("started", sa.Text),
    sa.Column("finished", sa.Text), sa.Column("schema_version", sa.Integer), sa.Column("record", sa.Text),
)

# One row per cell any sweep or run has queued or claimed. A claim is held while `token` is set and `expires` (database
# clock, epoch seconds) is in the future; `done` is when the last holder finished running it (database clock).
claims = sa.Table(
    "claims", metadata,
    sa.Column("run_id", sa.Text, primary_key=True), sa.Column("seq", sa.Integer, nullable=False, default=0),
    sa.Column("host", sa.Text), sa.Column("pid", sa.Integer), sa.Column("pstart", sa.Text),
    sa.Column("token", sa.Text), sa.Column("expires", sa.Float), sa.Column("done", sa.Float),
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))


def _m1_runs(conn: Connection) -> None:
    runs.create(conn, checkfirst=True)


def _m2_claims(conn: Connection) -> None:
    claims.create(conn, checkfirst=True)


# Applied in order; the store's version is how many have run. Append only: a released migration never changes.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_m1_runs, _m2_claims)
SCHEMA_VERSION = len(MIGRATIONS)

# PostgreSQL advisory-lock key that serialises migrations (any constant unique to this application).
_MIGRATION_LOCK = 0x7072756E  # "prun"


def is_url(store: str | Path) -> bool:
    return "://" in str(store)


def store_url(store: str | Path) -> str:
    """A SQLAlchemy URL for `--store`: URLs as given, anything else is a SQLite file path."""
    if is_url(store):
        return str(store)
    return f"sqlite:///{Path(store).resolve()}"


def describe(store: str | Path) -> str:
    """The store for messages: a path as given, a URL without its password."""
    if not is_url(store):
        return str(store)
    try:
        return sa.make_url(str(store)).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


_engines: dict[tuple[str, float, int], Engine] = {}
_engines_lock = threading.Lock()


def engine_for(store: str | Path, timeout: float = 60.0) -> Engine:
    """One engine per store, busy timeout and process: a forked worker must not reuse its parent's connections."""
    url = store_url(store)
    key = (url, timeout, os.getpid())
    with _engines_lock:
        if key not in _engines:
            _engines[key] = _make_engine(url, timeout)
        return _engines[key]


def _make_engine(url: str, timeout: float) -> Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise UserError(f"--store {url!r} is neither a file path nor a database URL "
                        "(e.g. postgresql://user@host:5432/prunebench)") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(f"--store {describe(url)}: prunebench stores results in SQLite or PostgreSQL only")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 (the `postgres` extra), not psycopg2
    try:
        if parsed.get_backend_name() == "sqlite":
            # NullPool: a SQLite connection is cheap, and pooled ones would hold the file open across forks.
            engine = sa.create_engine(parsed, connect_args={"timeout": timeout}, poolclass=NullPool)
            _sqlite_transactions(engine)
        else:
            args = {"connect_timeout": max(1, int(timeout))} if parsed.get_backend_name() == "postgresql" else {}
            engine = sa.create_engine(parsed, connect_args=args, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise UserError(f"--store {describe(url)} needs the database driver {exc.name!r}: "
                        "pip install 'prunebench[postgres]'") from None
    except sa.exc.ArgumentError as exc:
        raise UserError(f"--store {describe(url)}: {exc}") from None
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions, so writers can take `BEGIN IMMEDIATE` (the write
    lock up front: a read-then-write transaction cannot deadlock against another one upgrading its lock)."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")


@contextlib.contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: SQLite takes the write lock at BEGIN; PostgreSQL locks rows as they are read
    with FOR UPDATE."""
    with engine.connect() as conn:
        conn.execution_options(immediate=True)
        with conn.begin():
            yield conn


def db_now(conn: Connection) -> float:
    """The database's clock (epoch seconds), so leases mean the same on every node: PostgreSQL's server clock;
    SQLite's file is on this host, so this host's clock."""
    if conn.dialect.name == "postgresql":
        return float(conn.exec_driver_sql("SELECT extract(epoch FROM clock_timestamp())").scalar_one())
    return time.time()


# SQLite's words for contention; PostgreSQL's SQLSTATEs for serialization failure, deadlock, lock not available.
_BUSY_WORDS = ("locked", "busy")
_RETRY_SQLSTATES = ("40001", "40P01", "55P03")


def is_contention(exc: BaseException) -> bool:
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    if state in _RETRY_SQLSTATES:
        return True
    return isinstance(exc, sa.exc.OperationalError) and any(w in str(exc.orig).lower() for w in _BUSY_WORDS)


def retrying(op: Callable[[], _T], retries: int, backoff: float, on_exhausted: Callable[[Exception], Exception]) -> _T:
    """Run `op`, retrying contention `retries` times with exponential backoff from `backoff` seconds; then raise
    `on_exhausted(last error)`. Other errors propagate at once."""
    for attempt in range(retries + 1):
        try:
            return op()
        except sa.exc.DBAPIError as exc:
            if not is_contention(exc):
                raise
            if attempt == retries:
                raise on_exhausted(exc) from None
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def current_version(conn: Connection) -> int:
    """Migrations applied to this store: the `schema_version` row; a bare `runs` table (a store written before
    versioning) is version 1; an empty database is 0."""
    inspector = sa.inspect(conn)
    if inspector.has_table("schema_version"):
        return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)
    return 1 if inspector.has_table("runs") else 0


def migrate(conn: Connection) -> int:
    """Bring the schema to `SCHEMA_VERSION` inside the caller's write transaction; returns the version found.
    A store from a newer prunebench is refused rather than written with an older schema."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
    found = current_version(conn)
    if found > SCHEMA_VERSION:
        raise UserError(f"results store schema version {found} is newer than this prunebench's ({SCHEMA_VERSION}); "
                        "use the prunebench release that wrote it")
    for step in MIGRATIONS[found:]:
        step(conn)
    if found < SCHEMA_VERSION:
        schema_version.create(conn, checkfirst=True)
        conn.execute(schema_version.delete())
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    return found


_migrated: set[tuple[str, int]] = set()


def open_store(store: str | Path, timeout: float, retries: int, backoff: float) -> Engine:
    """The engine for `store` with its schema current (migrated once per process and store)."""
    engine = engine_for(store, timeout)
    key = (str(engine.url), os.getpid())
    if key in _migrated:
        return engine

    def run() -> None:
        with write_tx(engine) as conn:
            migrate(conn)

    retrying(run, retries, backoff, lambda exc: UserError(
        f"results store {describe(store)} stayed locked while opening it ({exc.orig})"))
    _migrated.add(key)
    return engine
