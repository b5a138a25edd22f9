"""Claims in the results store (harness.claims, re-exported as harness.sweep.Claim), on SQLite and PostgreSQL:
every kind of left-over or hostile claim row is taken over in bounded time, and a live, beating owner is never
robbed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import db
from harness.claims import ClaimQueue, host_id
from harness.procs import proc_start
from harness.results import ResultStore
from harness.sweep import Claim

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600.0


def _plant(store: str, **row) -> None:
    """Write a claims row as some other (possibly broken or hostile) process left it."""
    engine = ResultStore(store).engine
    values = {"run_id": "run", "seq": 0, "host": host_id(), "pid": os.getpid(), "pstart": None,
              "token": "theirs", "expires": time.time() + HOUR, **row}
    with engine.begin() as conn:
        conn.execute(db.claims.delete().where(db.claims.c.run_id == values["run_id"]))
        conn.execute(db.claims.insert().values(**values))


def _held_by_me(store: str) -> bool:
    return Claim(store, "run").holder() == {"pid": os.getpid(), "host": host_id(),
                                            "start": proc_start(os.getpid()), "expires": pytest.approx(
                                                time.time() + HOUR, abs=120)}


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


MALFORMED = [dict(host=None), dict(host=""), dict(pid=None), dict(pid=-1), dict(pid=0), dict(pid=2**30),
             dict(token=""), dict(expires=None)]


@pytest.mark.parametrize("row", MALFORMED, ids=[next(iter(r.items())).__repr__() for r in MALFORMED])
def test_malformed_claim_rows_are_taken_over_at_once(store_url, row):
    # the lease is an hour away: only the row's own brokenness may let it go, and it must go at once (a claim row
    # is written in one transaction, so unlike a lock file it is never seen half-written)
    _plant(store_url, **row)
    claim = Claim(store_url, "run", lease=HOUR)
    t0 = time.monotonic()
    assert claim.acquire()
    assert time.monotonic() - t0 < 5.0
    assert _held_by_me(store_url)
    claim.release()
    assert Claim(store_url, "run").holder() is None


def test_claim_is_exclusive_until_released(store_url):
    a = Claim(store_url, "run", lease=HOUR)
    assert a.acquire() and a.heartbeat()
    b = Claim(store_url, "run", lease=HOUR)
    assert not b.acquire()  # held by this live process (another claim object, another token)
    assert b.holder()["pid"] == os.getpid()
    a.release()
    assert b.acquire()


def test_dead_owner_on_this_host_is_taken_at_once(store_url):
    _plant(store_url, pid=_dead_pid())
    assert Claim(store_url, "run", lease=HOUR).acquire()


def test_reused_pid_is_taken_at_once(store_url):
    _plant(store_url, pstart="1")  # our pid, but the process that claimed it started at another time
    assert Claim(store_url, "run", lease=HOUR).acquire()


def test_other_host_goes_by_its_lease(store_url):
    _plant(store_url, host="elsewhere", pid=1, expires=time.time() + 30)
    assert not Claim(store_url, "run").acquire()
    _plant(store_url, host="elsewhere", pid=1, expires=time.time() - 1)
    assert Claim(store_url, "run").acquire()


def test_release_keeps_a_claim_taken_over_by_another(store_url):
    mine = Claim(store_url, "run", lease=HOUR)
    assert mine.acquire()
    _plant(store_url, host="elsewhere", pid=1, token="new owner")  # we were stopped; another host took it over
    assert mine.heartbeat() is False
    mine.release()
    assert Claim(store_url, "run").holder()["host"] == "elsewhere"


def test_queue_hands_each_cell_to_one_worker_and_reaps_the_dead(store_url):
    store = ResultStore(store_url)
    queue = ClaimQueue(store, lease=HOUR)
    cells = ["c0", "c1", "c2"]
    queue.enqueue(cells)
    since = queue.now()
    taken = [queue.claim_next(cells, since) for _ in range(3)]
    assert [c.run_id for c in taken] == cells  # grid order, each cell once
    assert queue.claim_next(cells, since) is None
    _plant(store_url, run_id="c1", pid=_dead_pid())  # c1's worker was killed with SIGKILL
    again = queue.claim_next(cells, since)
    assert again is not None and again.run_id == "c1"
    again.release(done=True)
    taken[0].release()  # released without a result (interrupted): free again
    assert queue.claim_next(cells, since).run_id == "c0"
    assert queue.finished_since(cells, since) == {"c1"}
    assert queue.claim_next(["c1"], since) is None  # ran to a result during this sweep: not run again by it


HOLDER = """
import sys, time
from harness.sweep import Claim
c = Claim(sys.argv[1], "run", lease=float(sys.argv[2]))
assert c.acquire()
with c.beating():
    print("held", flush=True)
    time.sleep(3600)
"""


def test_stopped_owner_on_this_host_loses_the_claim(store_url):
    """A live pid proves nothing: SIGSTOPped, the owner stops beating and its lease runs out."""
    lease = 1.5
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, store_url, str(lease)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        other = Claim(store_url, "run", lease=lease)
        time.sleep(lease + 0.5)
        assert not other.acquire()  # beating: kept, although its first lease has run out
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + lease + 10
        while not other.acquire():
            assert time.monotonic() < deadline, "a stopped owner blocked the claim"
            time.sleep(0.1)
        assert other.holder()["pid"] == os.getpid()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_rows_without_an_owner_read_as_free(tmp_path):
    store = str(tmp_path / "s.sqlite")
    _plant(store, token=None)
    assert Claim(store, "run").holder() is None
    with ResultStore(store).engine.begin() as conn:  # a fresh store's schema is current
        assert conn.execute(sa.select(db.schema_version.c.version)).scalar() == db.SCHEMA_VERSION
