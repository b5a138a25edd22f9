"""Official weights by name: `--weights yolov3-tinyu.pt`, `--weights torchvision:ResNet18_Weights.IMAGENET1K_V1`,
`--weights tusimple_18.pth` resolve to a file in one cache folder, downloaded once when online.

    resolve(value) -> Path | None

* A path to an existing file is used as it is (as Ultralytics' `attempt_download_asset` does).
* A known name is looked up in the cache folder, `$PRUNEBENCH_WEIGHTS` or `~/.cache/prunebench/weights`; if it is
  not there it is downloaded the way its own tools do (torch.hub's `download_url_to_file`, Ultralytics'
  `safe_download`): an HTTP GET, a progress bar, a temporary file in the cache folder renamed into place only once
  it is verified, so an interrupted or corrupt download never looks cached.
* Verification: the full sha256 where this project knows it; for torchvision the sha256 prefix in the file name
  (torch.hub's `check_hash` convention); otherwise what can be checked without a published hash: the size announced
  by the server, Ultralytics' size floor, and that the bytes are a complete torch archive (zip with its central
  directory, or the legacy pickle format).
* Offline, the error says exactly where to put the file by hand.

`$PRUNEBENCH_WEIGHTS_URL` replaces every source's base URL (a mirror; the tests' loopback server): the file is
fetched from `<base>/<file name>`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from harness.errors import CheckpointError, UserError
from harness.progress import progress_enabled

CACHE_ENV, URL_ENV = "PRUNEBENCH_WEIGHTS", "PRUNEBENCH_WEIGHTS_URL"
TORCHVISION_PREFIX = "torchvision:"
# The release Ultralytics 8.4.190's `attempt_download_asset` downloads its assets from (its `release` default).
ULTRALYTICS_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.4.0"
# UFLD's released TuSimple ResNet-18 model: the Google Drive file its README links (cfzd/Ultra-Fast-Lane-Detection,
# "Trained models"). Drive's direct endpoint with confirm=t skips the "cannot scan for viruses" page of big files.
UFLD_DRIVE_ID = "1WCYyur5ZaWczH15ecmeDowrW30xcLrCn"
TORCH_ZIP_MAGIC, TORCH_LEGACY_MAGIC = b"PK\x03\x04", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torch.hub.HASH_REGEX: resnet18-f37072fd.pth -> f37072fd
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where one weights file comes from and what its bytes must satisfy."""

    name: str  # the file name in the cache folder
    url: str
    sha256: str | None = None  # the full hash, where known
    sha256_prefix: str | None = None  # torchvision: the hash prefix in the file name
    min_bytes: int = 100_000  # Ultralytics' `safe_download(min_bytes=1e5)` floor: error pages are smaller
    manual: str = ""  # where a user gets the file by hand (the error message names it)


# Names this project resolves, with what is known about their bytes. Neither Ultralytics nor UFLD publishes a
# checksum for these files and none is recorded here, so they are checked by size and archive structure (above), and
# every run records the sha256 of the file it loaded (`provenance.weights_sha256`).
KNOWN: dict[str, Source] = {
    **{name: Source(name, f"{ULTRALYTICS_RELEASE}/{name}", manual=f"{ULTRALYTICS_RELEASE}/{name}")
       for name in ("yolov3u.pt", "yolov3-tinyu.pt", "yolov3-sppu.pt")},
    "tusimple_18.pth": Source(
        "tusimple_18.pth",
        f"https://drive.usercontent.google.com/download?id={UFLD_DRIVE_ID}&export=download&confirm=t",
        manual=f"https://drive.google.com/file/d/{UFLD_DRIVE_ID}/view"),
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "prunebench" / "weights").expanduser()


def torchvision_source(value: str) -> Source:
    """`torchvision:ResNet18_Weights.IMAGENET1K_V1` -> the enum's own url, its file name and hash prefix."""
    from torchvision.models import get_weight

    enum_name = value[len(TORCHVISION_PREFIX):]
    try:
        weights = get_weight(enum_name)
    except (ValueError, KeyError, AttributeError):
        raise UserError(f"--weights {value}: torchvision has no weights {enum_name!r}; write the enum and the "
                        "weight, e.g. torchvision:ResNet18_Weights.IMAGENET1K_V1") from None
    name = os.path.basename(weights.url)
    match = _HASH_IN_NAME.search(name)
    return Source(name, weights.url, sha256_prefix=match.group(1) if match else None, min_bytes=1, manual=weights.url)


def source_for(value: str) -> Source | None:
    """The Source a `--weights` value names, or None when it is not a name."""
    if value.startswith(TORCHVISION_PREFIX):
        return torchvision_source(value)
    return KNOWN.get(value)


def resolve(value: str | None, log: Callable[[str], None] = print) -> Path | None:
    """The local file for a `--weights` value (downloading a known name into the cache when needed; `log` says so,
    since the progress bar is off where long runs live: no terminal)."""
    if not value:
        return None
    path = Path(value).expanduser()
    if not value.startswith(TORCHVISION_PREFIX) and path.is_file():
        return path
    source = source_for(value)
    if source is None:
        raise CheckpointError(f"--weights {value}: no such file, and not a name this tool can fetch (names: "
                              f"{', '.join(KNOWN)}, or torchvision:<Enum>.<WEIGHT>)")
    dest = cache_dir() / source.name
    if not dest.is_file():
        log(f"downloading {source.name} from {url_of(source)} into {dest}")
        download(source, dest)
    return dest


def url_of(source: Source) -> str:
    base = os.environ.get(URL_ENV)
    return f"{base.rstrip('/')}/{source.name}" if base else source.url


def download(source: Source, dest: Path) -> None:
    """GET `source` into `dest` through a verified temporary file; nothing is left behind on failure."""
    url = url_of(source)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise UserError(f"cannot write the weights cache {dest.parent} ({exc.strerror}); set ${CACHE_ENV} to a "
                        "writable folder") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size, expected = _fetch(url, out, source.name)
        _verify(source, tmp, digest, size, expected, url)
        os.replace(tmp, dest)  # atomic: a concurrent run sees no file or the whole file
    except (urllib.error.URLError, OSError) as exc:  # HTTPError and timeouts are URLError / OSError
        reason = exc if isinstance(exc, urllib.error.HTTPError) else (getattr(exc, "reason", None) or exc)
        raise UserError(f"cannot download {source.name} from {url} ({reason}); offline? fetch {source.manual} "
                        f"yourself and put it at {dest}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _fetch(url: str, out: BinaryIO, label: str) -> tuple[str, int, int | None]:
    """Stream `url` into `out`; returns (sha256 hex, bytes written, Content-Length or None)."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "prunebench"})
    with urllib.request.urlopen(request, timeout=60) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if "text/html" in (response.headers.get("Content-Type") or ""):
            # Google Drive answers a quota or sign-in page with 200: that is not the file.
            raise urllib.error.URLError("the server sent a web page instead of the file")
        h, size = hashlib.sha256(), 0
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {label}",
                  disable=not progress_enabled()) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
                bar.update(len(chunk))
    return h.hexdigest(), size, expected


def _verify(source: Source, path: Path, digest: str, size: int, expected: int | None, url: str) -> None:
    """One-line CheckpointError (the temporary file is then deleted by the caller) unless the bytes check out."""
    problem = None
    if expected is not None and size != expected:
        problem = f"got {size} of {expected} bytes"
    elif source.sha256 is not None and digest != source.sha256:
        problem = f"sha256 {digest[:16]}... is not the expected {source.sha256[:16]}..."
    elif source.sha256_prefix is not None and not digest.startswith(source.sha256_prefix):
        problem = f"sha256 {digest[:16]}... does not start with {source.sha256_prefix}, the hash in its name"
    elif size < source.min_bytes:
        problem = f"only {size} bytes"
    elif not is_torch_file(path):
        problem = "not a complete PyTorch file"
    if problem:
        raise CheckpointError(f"download of {source.name} from {url} is corrupt ({problem}); deleted it, nothing "
                              "was cached: try again")


def is_torch_file(path: Path) -> bool:
    """A complete torch.save archive (zip with its central directory: a truncated file fails) or a legacy one."""
    with open(path, "rb") as fh:
        head = fh.read(len(TORCH_LEGACY_MAGIC))
    if head.startswith(TORCH_ZIP_MAGIC):
        return zipfile.is_zipfile(path)
    return head == TORCH_LEGACY_MAGIC
