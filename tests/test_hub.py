"""Official weights by name (harness/hub.py): the download path against an HTTP server on 127.0.0.1 serving local
files (good, corrupt, missing, server down). Nothing here contacts the internet."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import inspect
import re
import socket
import threading
from pathlib import Path

import pytest
import torch

from harness import hub
from harness.errors import CheckpointError, UserError
from harness.runner import Run, RunConfig
from tests.test_runner import cli


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder the server serves, cache folder): files put in the first are at $PRUNEBENCH_WEIGHTS_URL/<name>."""
    root, cache = tmp_path / "served", tmp_path / "cache"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(hub.CACHE_ENV, str(cache))
    monkeypatch.setenv(hub.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    yield root, cache
    server.shutdown()
    server.server_close()


def torch_file(path: Path, n: int = 40_000) -> bytes:
    """A real torch.save archive above Ultralytics' 100 kB floor."""
    torch.save({"w": torch.arange(n, dtype=torch.float32)}, path)
    return path.read_bytes()


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_good_file_is_downloaded_once_and_cached(served, monkeypatch):
    root, cache = served
    data = torch_file(root / "yolov3-tinyu.pt")
    said: list[str] = []
    path = hub.resolve("yolov3-tinyu.pt", log=said.append)
    assert path == cache / "yolov3-tinyu.pt" and path.read_bytes() == data
    assert said == [f"downloading yolov3-tinyu.pt from {hub.url_of(hub.KNOWN['yolov3-tinyu.pt'])} into {path}"]
    assert cache_files(cache) == ["yolov3-tinyu.pt"]  # no temporary file left
    monkeypatch.setenv(hub.URL_ENV, "http://127.0.0.1:9/")  # nothing listens there: a second use is offline
    assert hub.resolve("yolov3-tinyu.pt", log=said.append) == path and len(said) == 1


def test_known_sha256_is_checked(served, monkeypatch):
    root, cache = served
    data = torch_file(root / "tusimple_18.pth")
    good = dataclasses.replace(hub.KNOWN["tusimple_18.pth"], sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(hub.KNOWN, "tusimple_18.pth", good)
    assert hub.resolve("tusimple_18.pth").read_bytes() == data

    (cache / "tusimple_18.pth").unlink()
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF  # one flipped byte: still a well-formed size, a different hash
    (root / "tusimple_18.pth").write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match=r"corrupt \(sha256 .* is not the expected") as exc:
        hub.resolve("tusimple_18.pth")
    assert "\n" not in str(exc.value) and cache_files(cache) == []


def test_corrupt_download_without_known_hash_is_deleted(served):
    root, cache = served
    data = torch_file(root / "full.pt")
    (root / "yolov3u.pt").write_bytes(data[: len(data) - 300])  # truncated: the zip's central directory is gone
    with pytest.raises(CheckpointError, match="yolov3u.pt .* is corrupt \\(not a complete PyTorch file\\)") as exc:
        hub.resolve("yolov3u.pt")
    assert "\n" not in str(exc.value) and cache_files(cache) == []

    (root / "yolov3-sppu.pt").write_bytes(b"<html>rate limited</html>")  # an error page served as the file
    with pytest.raises(CheckpointError, match="only 25 bytes"):
        hub.resolve("yolov3-sppu.pt")
    assert cache_files(cache) == []


def test_torchvision_names_use_the_enum_url_and_hash_prefix(served):
    source = hub.source_for("torchvision:ResNet18_Weights.IMAGENET1K_V1")
    assert source.url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert (source.name, source.sha256_prefix) == ("resnet18-f37072fd.pth", "f37072fd")
    root, cache = served
    torch_file(root / "resnet18-f37072fd.pth", n=10)  # a valid file, but not the one its name's hash names
    with pytest.raises(CheckpointError, match="does not start with f37072fd"):
        hub.resolve("torchvision:ResNet18_Weights.IMAGENET1K_V1")
    assert cache_files(cache) == []
    with pytest.raises(UserError, match="torchvision has no weights 'ResNet18_Weights.NOPE'"):
        hub.resolve("torchvision:ResNet18_Weights.NOPE")


def test_offline_error_names_the_cache_path(served, monkeypatch):
    _, cache = served
    with socket.socket() as s:  # a port nobody listens on: connection refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(hub.URL_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(UserError, match=re.escape(f"put it at {cache / 'tusimple_18.pth'}") + "$") as exc:
        hub.resolve("tusimple_18.pth")
    assert "\n" not in str(exc.value) and f"drive.google.com/file/d/{hub.UFLD_DRIVE_ID}" in str(exc.value)
    assert cache_files(cache) == []


def test_missing_file_on_the_server_is_one_line(served):
    with pytest.raises(UserError, match="HTTP Error 404") as exc:
        hub.resolve("yolov3u.pt")
    assert "\n" not in str(exc.value)


def test_local_paths_and_unknown_names(tmp_path):
    local = tmp_path / "yolov3-tinyu.pt"  # a local file wins over the name, as in Ultralytics
    local.write_bytes(b"x")
    assert hub.resolve(str(local)) == local and hub.resolve(None) is None
    with pytest.raises(CheckpointError, match="not a name this tool can fetch .*yolov3-tinyu.pt"):
        hub.resolve(str(tmp_path / "nope.pt"))


def test_runner_resolves_weights_before_loading(workdir, capsys):
    with pytest.raises(CheckpointError, match="nope.pt: no such file"):
        Run(RunConfig(task="digits", weights="nope.pt"))
    code, _, err = cli(["run", "--task", "digits", "--weights", "nope.pt"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --weights nope.pt")


def test_ultralytics_release_matches_its_downloader():
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

    release = inspect.signature(attempt_download_asset).parameters["release"].default
    assert hub.ULTRALYTICS_RELEASE.endswith(f"/{release}")
    assert {n for n in hub.KNOWN if n.endswith(".pt")} <= GITHUB_ASSETS_NAMES
