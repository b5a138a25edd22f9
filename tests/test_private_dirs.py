"""The per-user state folder in a shared temp dir, and scratch folders left by killed runs."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness import offline


@pytest.fixture
def shared_tmp(tmp_path, monkeypatch):
    """A stand-in for /tmp, with PRUNEBENCH_STATE unset and no fallback chosen yet."""
    monkeypatch.delenv("PRUNEBENCH_STATE", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(offline, "_fallback", None)
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_state_dir_is_private(shared_tmp):
    path = offline.state_dir()
    assert path == shared_tmp / f"prunebench-{os.getuid()}" and path.is_dir() and _mode(path) == 0o700


def test_own_loose_state_dir_is_tightened(shared_tmp):
    path = shared_tmp / f"prunebench-{os.getuid()}"
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    assert offline.state_dir() == path and _mode(path) == 0o700


def test_symlinked_state_dir_is_not_used(shared_tmp, caplog):
    target = shared_tmp / "attacker"
    target.mkdir()
    (shared_tmp / f"prunebench-{os.getuid()}").symlink_to(target)
    with caplog.at_level("WARNING", logger="prunebench"):
        path = offline.state_dir()
    assert target not in (path, path.resolve()) and path.is_dir() and _mode(path) == 0o700
    assert offline.state_dir() == path  # one choice per process
    assert any("is a symlink" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder owned by another user")
def test_state_dir_of_another_user_is_not_used(shared_tmp, caplog):
    squat = shared_tmp / f"prunebench-{os.getuid()}"
    squat.mkdir()
    os.chown(squat, 54321, -1)
    with caplog.at_level("WARNING", logger="prunebench"):
        path = offline.state_dir()
    assert path != squat and path.is_dir() and os.lstat(path).st_uid == os.getuid()
    assert any("belongs to another user (uid 54321)" in r.getMessage() for r in caplog.records)


def test_scratch_dirs_of_dead_processes_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_STATE", str(tmp_path))
    host = socket.gethostname()
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    left = tmp_path / f"coco.{host}.{dead}.abc_12"
    live = tmp_path / f"coco.{host}.{os.getppid()}.xyz"
    remote = tmp_path / f"coco.other-host.example.{dead}.q1"
    other = tmp_path / f"lanes.{host}.{dead}.q2"
    for d in (left, live, remote, other):
        (d / "val").mkdir(parents=True)
    mine = offline.scratch_dir("coco")
    assert mine.is_dir() and mine.name.startswith(f"coco.{host}.{os.getpid()}.")
    assert not left.exists() and live.exists() and remote.exists() and other.exists()
