"""Claims on run ids, held in the results store: the store is the sweep's work queue (SQLite or PostgreSQL).

A claim is a row of the `claims` table (harness/db.py) naming its owner (host, pid, process start time, a random
token) and a lease: `expires`, on the database's clock. The owner extends the lease with a heartbeat thread while the
cell runs. Another process may take a claim over when
* the lease expired (a killed, stopped or hung owner on any host: a live pid is no proof of progress);
* the owner is on this host and gone (pid dead, or reused by a process with another start time): at once;
* the row cannot be an owner's (no host, no or a non-positive pid, an empty token, no expiry): at once, because a claim
  row is written in one transaction and is never seen half-written.

Taking a claim is one conditional UPDATE (whoever's UPDATE matches first wins; PostgreSQL re-checks the condition
after waiting for a concurrent writer's row lock, SQLite runs it in a `BEGIN IMMEDIATE` transaction). Workers pulling
the next free cell of a sweep select it with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so they never queue behind each
other's choice; on SQLite the immediate transaction serialises the choice.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from harness import db
from harness.errors import UserError
from harness.procs import PID_MAX, pid_alive, proc_start
from harness.results import ResultStore

DEFAULT_LEASE = 900.0  # seconds a claim survives without a heartbeat (the sweep's --stale-after)
_c = db.claims.c


def host_id() -> str:
    """This host as claims name it: the hostname, plus the pid namespace where there is one, so two containers that
    share a hostname (host networking) never judge each other's pids."""
    try:
        return f"{socket.gethostname()}:pidns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def _free(now: float) -> sa.ColumnElement[bool]:
    """Rows nobody holds: released, expired, or not an owner's row at all."""
    return sa.or_(_c.token.is_(None), _c.token == "", _c.expires.is_(None), _c.expires < now, _c.host.is_(None),
                  _c.host == "", _c.pid.is_(None), _c.pid <= 0, _c.pid >= PID_MAX)


def _gone_here(row: Any, host: str) -> bool:
    """The owner of a held row ran on this host and is no longer the process that took the claim."""
    if row.host != host or row.pid is None or not 0 < row.pid < PID_MAX:
        return False
    if not pid_alive(row.pid):
        return True
    start = proc_start(row.pid)
    return bool(row.pstart and start and start != row.pstart)  # the pid was reused by another process


def _in_write_tx(store: ResultStore, op: Callable[[Connection], bool]) -> bool:
    """`op` in a write transaction, retried while the database reports contention."""
    def run() -> bool:
        with db.write_tx(store.engine) as conn:
            return op(conn)

    return store._retrying(run)


def _insert(conn: Connection) -> Any:
    return (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(db.claims)


class Claim:
    """An exclusive claim on one run id, shared through the results store by every process using it.

    `store` is a ResultStore, a SQLite path or a database URL; `lease` (alias `stale_after`) is how long the claim
    lives without a heartbeat.
    """

    def __init__(self, store: ResultStore | str | Path, run_id: str, lease: float = DEFAULT_LEASE,
                 stale_after: float | None = None):
        self.store = store if isinstance(store, ResultStore) else ResultStore(store)
        self.run_id = run_id
        self.lease = float(stale_after if stale_after is not None else lease)
        self.host = host_id()
        self.pid = os.getpid()
        self.token = secrets.token_hex(16)
        self.held = False

    # ---- owner identity ---------------------------------------------------------------------------------------------
    def _owner(self, now: float) -> dict[str, Any]:
        return dict(host=self.host, pid=self.pid, pstart=proc_start(self.pid), token=self.token,
                    expires=now + self.lease)

    # ---- the claim API ----------------------------------------------------------------------------------------------
    def acquire(self) -> bool:
        """True if this process now holds the claim; False if a live owner holds it."""

        def take(conn: Connection) -> bool:
            conn.execute(_insert(conn).values(run_id=self.run_id, seq=0).on_conflict_do_nothing())
            now = db.db_now(conn)
            if self._take(conn, _free(now), now):
                return True
            row = conn.execute(sa.select(db.claims).where(_c.run_id == self.run_id)).first()
            return row is not None and _gone_here(row, self.host) and self._take(conn, _c.token == row.token, now)

        self.held = _in_write_tx(self.store, take)
        return self.held

    def _take(self, conn: Connection, condition: sa.ColumnElement[bool], now: float) -> bool:
        done = conn.execute(sa.update(db.claims).where(_c.run_id == self.run_id, condition)
                            .values(**self._owner(now)))
        return done.rowcount == 1

    def holder(self) -> dict[str, Any] | None:
        """The owner's {"pid", "host", "start", "expires"}; None when nobody holds the claim (never taken, released or
        expired); {"malformed": ...} for a row that cannot be an owner's."""
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(db.claims).where(_c.run_id == self.run_id)).first()
            now = db.db_now(conn)
        if row is None or row.token is None or (row.expires is not None and row.expires < now):
            return None
        if not (row.token and row.host and row.pid is not None and 0 < row.pid < PID_MAX and row.expires is not None):
            return {"malformed": f"host={row.host!r} pid={row.pid!r} expires={row.expires!r}"}
        return {"pid": row.pid, "host": row.host, "start": row.pstart, "expires": row.expires}

    def heartbeat(self) -> bool:
        """Extend the lease while we still own the claim; False once it was taken over (we were stopped or cut off
        past the lease)."""
        if not self.held:
            return False

        def beat(conn: Connection) -> bool:
            now = db.db_now(conn)
            return conn.execute(sa.update(db.claims).where(_c.run_id == self.run_id, _c.token == self.token)
                                .values(expires=now + self.lease)).rowcount == 1

        return _in_write_tx(self.store, beat)

    def release(self, done: bool = False) -> None:
        """Give the claim up (only if still ours). `done`: this holder ran the cell to a result, so sweeps that
        started before now treat the cell as finished for them rather than running a failed cell again."""
        if not self.held:
            return

        def free(conn: Connection) -> bool:
            values: dict[str, Any] = dict(host=None, pid=None, pstart=None, token=None, expires=None)
            if done:
                values["done"] = db.db_now(conn)
            conn.execute(sa.update(db.claims).where(_c.run_id == self.run_id, _c.token == self.token).values(**values))
            return True

        _in_write_tx(self.store, free)
        self.held = False

    @contextlib.contextmanager
    def beating(self, every: float | None = None, log: Callable[[str], None] | None = None) -> Iterator[None]:
        """Heartbeat the claim from a thread while the block runs (every lease/4 seconds by default)."""
        stop = threading.Event()
        every = every if every is not None else max(0.2, self.lease / 4)

        def beat() -> None:
            warned = False
            while not stop.wait(every):
                try:
                    mine = self.heartbeat()
                except (sa.exc.SQLAlchemyError, UserError) as exc:  # the store is unreachable: try next beat
                    if log:
                        log(f"warning: heartbeat of {self.run_id} failed ({' '.join(str(exc).split())[:200]})")
                    continue
                if not mine and not warned and log:
                    warned = True
                    log(f"warning: the claim on {self.run_id} was taken over by another worker (this one was "
                        "stopped past its lease); both may now run it, and its record keeps the completed result")

        thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{self.run_id}")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5.0)


class ClaimQueue:
    """The cells of a sweep as a work queue in the store: workers pull the next free cell until none is left."""

    def __init__(self, store: ResultStore, lease: float = DEFAULT_LEASE):
        self.store, self.lease = store, lease
        self.host = host_id()

    def now(self) -> float:
        with self.store.engine.connect() as conn:
            return db.db_now(conn)

    def enqueue(self, run_ids: list[str]) -> None:
        """A claims row per cell (kept if it exists), in grid order: the order workers take them."""
        if not run_ids:
            return

        def add(conn: Connection) -> bool:
            conn.execute(_insert(conn).values([{"run_id": r, "seq": k} for k, r in enumerate(run_ids)])
                         .on_conflict_do_nothing())
            return True

        _in_write_tx(self.store, add)

    def reap(self, run_ids: list[str]) -> int:
        """Free the claims among `run_ids` whose owner ran on this host and is gone (killed, crashed): they need
        not wait for their lease. Conditional on the owner's token, so a claim re-taken meanwhile stays."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(db.claims).where(_c.run_id.in_(run_ids), _c.host == self.host,
                                                           _c.token.is_not(None))).all()
        dead = [r for r in rows if _gone_here(r, self.host)]
        for row in dead:
            _in_write_tx(self.store, lambda conn, r=row: conn.execute(
                sa.update(db.claims).where(_c.run_id == r.run_id, _c.token == r.token).values(expires=None)
            ).rowcount == 1)
        return len(dead)

    def claim_next(self, run_ids: list[str], since: float) -> Claim | None:
        """Claim the first free cell among `run_ids` (grid order) that no worker ran to a result since `since`;
        None when every such cell is held by a live owner."""
        self.reap(run_ids)
        claim = Claim(self.store, "", self.lease)

        def take(conn: Connection) -> bool:
            now = db.db_now(conn)
            pick = (sa.select(_c.run_id)
                    .where(_c.run_id.in_(run_ids), _free(now), sa.or_(_c.done.is_(None), _c.done < since))
                    .order_by(_c.seq, _c.run_id).limit(1).with_for_update(skip_locked=True))
            run_id = conn.execute(pick).scalar()
            if run_id is None:
                return False
            claim.run_id = run_id
            return claim._take(conn, _free(now), now)

        claim.held = _in_write_tx(self.store, take)
        return claim if claim.held else None

    def finished_since(self, run_ids: list[str], since: float) -> set[str]:
        """Cells some worker ran to a result after `since` (that worker's result stands for this sweep)."""
        with self.store.engine.connect() as conn:
            return set(conn.execute(sa.select(_c.run_id).where(_c.run_id.in_(run_ids), _c.done >= since)).scalars())
