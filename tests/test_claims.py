"""Sweep claims (harness.sweep.Claim): every kind of left-over or hostile lock file is taken over in bounded time,
and a live, beating owner is never robbed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.sweep import MALFORMED_GRACE, Claim

ROOT = Path(__file__).resolve().parent.parent


def _lock(tmp_path: Path, content: str | bytes, age: float) -> Path:
    path = tmp_path / "run.lock"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def _me(**over) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "start": None, "time": 0, **over})


MALFORMED = [
    "", "{", "not json", "null", "[1, 2]", '"abc"', "42",
    _me(pid=-1), _me(pid=0), _me(pid="abc"), _me(pid=10**30), _me(pid=2**63), _me(pid=True), _me(pid=1.5),
    _me(pid=None), _me(host=None), _me(host=7), _me(start=[1]), "[" * 100_000, '{"pid": 1' + "0" * 5000 + "}",
]


@pytest.mark.parametrize("content", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_lock_taken_over_after_grace(tmp_path, content):
    # stale_after is an hour: only the grace period may let these go, and they must go
    _lock(tmp_path, content, age=MALFORMED_GRACE + 1)
    claim = Claim(tmp_path, "run", stale_after=3600)
    t0 = time.monotonic()
    assert claim.acquire()
    assert time.monotonic() - t0 < 1.0
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    claim.release()
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.parametrize("content", ["", _me(pid=-1), _me(pid="abc")])
def test_fresh_malformed_lock_is_respected(tmp_path, content):
    # created a moment ago: its owner may be about to write it (O_EXCL create, then write)
    _lock(tmp_path, content, age=0)
    assert not Claim(tmp_path, "run", stale_after=3600).acquire()


def test_non_utf8_and_directory_locks(tmp_path):
    _lock(tmp_path, b"\xff\xfe\x00garbage", age=MALFORMED_GRACE + 1)
    assert Claim(tmp_path, "run", stale_after=3600).acquire()
    (tmp_path / "other.lock").mkdir()  # cannot be a lock: no crash, just not acquirable
    assert not Claim(tmp_path, "other", stale_after=3600).acquire()


def test_dead_owner_on_this_host_taken_at_once(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _lock(tmp_path, _me(pid=int(done.stdout)), age=0)
    assert Claim(tmp_path, "run", stale_after=3600).acquire()


def test_other_host_goes_by_heartbeat(tmp_path):
    _lock(tmp_path, _me(host="elsewhere"), age=0.5)
    assert not Claim(tmp_path, "run", stale_after=2.0).acquire()
    _lock(tmp_path, _me(host="elsewhere"), age=3.0)
    assert Claim(tmp_path, "run", stale_after=2.0).acquire()


def test_release_keeps_a_lock_taken_over_by_another(tmp_path):
    mine = Claim(tmp_path, "run", stale_after=3600)
    assert mine.acquire()
    (tmp_path / "run.lock").write_text(_me(host="elsewhere"))  # we were stopped; another host took it over
    assert mine.heartbeat() is False
    mine.release()
    assert (tmp_path / "run.lock").exists()


HOLDER = """
import sys, time
from pathlib import Path
from harness.sweep import Claim
c = Claim(Path(sys.argv[1]), "run", stale_after=float(sys.argv[2]))
assert c.acquire()
print("held", flush=True)
while True:
    c.heartbeat()
    time.sleep(0.1)
"""


def test_stopped_owner_on_this_host_loses_the_claim(tmp_path):
    """A live pid proves nothing: SIGSTOPped, the owner stops beating and its claim goes stale after stale_after."""
    stale_after = 1.5
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), str(stale_after)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        other = Claim(tmp_path, "run", stale_after=stale_after)
        time.sleep(stale_after + 0.5)
        assert not other.acquire()  # beating: kept, although older than stale_after since it was created
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + stale_after + 5
        while not other.acquire():
            assert time.monotonic() < deadline, "a stopped owner blocked the claim"
            time.sleep(0.1)
        assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
