"""The results record (one per run) and the embedded SQLite store.

A record is a JSON document (schema in harness/schema/run_record.schema.json, version `SCHEMA_VERSION`): metrics
(dense / hard-pruned / retrained), per-epoch curves, per-layer sparsity, requested and achieved rates, the full
config and provenance. The store keeps one row per run id with the searchable columns and the whole JSON; writes are
atomic (SQLite transaction; JSON via temp file + rename) so concurrent sweep workers never clobber each other.
"""

from __future__ import annotations

import json
import os
import sqlite3
import secrets
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from harness.errors import UserError

_T = TypeVar("_T")

SCHEMA_VERSION = 1
DEFAULT_STORE = "prunebench.sqlite"

_COLUMNS = (
    "run_id TEXT PRIMARY KEY, status TEXT, task TEXT, model TEXT, method TEXT, mode TEXT, rate_requested REAL, "
    "rate_paper REAL, rate_conv REAL, metric TEXT, dense REAL, hardpruned REAL, retrained REAL, seed INTEGER, "
    "started TEXT, finished TEXT, schema_version INTEGER, record TEXT"
)


def write_json_atomic(path: str | Path, doc: Any) -> None:
    """Write `doc` as JSON via a uniquely named temp file + rename: readers see the old or the new file, never half.

    The temp file is created like any other file (mode 0666 minus the umask, so 0644 usually), not with mkstemp's
    0600: others sharing a results folder must be able to read the records.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_record(path: str | Path, record: dict[str, Any]) -> bool:
    """Write a run's record.json atomically, unless that would replace a `completed` record with one of another
    status (a failed retry or a Ctrl-C after the run had finished): then nothing is written and False is returned.
    The same rule as `ResultStore.put`, for the file the store can be rebuilt from."""
    path = Path(path)
    if record.get("status") != "completed" and _status_on_disk(path) == "completed":
        return False
    write_json_atomic(path, record)
    return True


def _status_on_disk(path: Path) -> str | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None  # missing or unreadable: nothing worth keeping
    return doc.get("status") if isinstance(doc, dict) else None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def check_version(record: dict[str, Any], source: str = "record") -> None:
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(
            f"{source} has results schema version {version!r}; this prunebench reads version {SCHEMA_VERSION} "
            "(re-run it with this version, or use the prunebench release that wrote it)"
        )


class StoreError(UserError):
    """The results store cannot be written (locked past every retry, read-only, full). The run's record.json is
    already on disk, so `reindex` can add it later."""


# SQLite reports contention as "database is locked" / "database table is locked" / "... is busy"; only these retry.
_BUSY_WORDS = ("locked", "busy")


class ResultStore:
    """SQLite file with one row per run (WAL mode and a busy timeout: several processes may share it).

    `put` retries a locked or busy store `retries` times with exponential backoff (from `backoff` seconds) on top of
    SQLite's own busy timeout (`timeout` seconds per attempt), then raises StoreError.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 0.1):
        self.path = Path(path)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        if self.path.is_dir():
            raise UserError(f"results store {self.path} is a directory, not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def create() -> None:
            with self._connect() as db:
                db.execute(f"CREATE TABLE IF NOT EXISTS runs ({_COLUMNS})")

        try:
            self._retrying(create)
        except sqlite3.DatabaseError as exc:
            raise UserError(f"results store {self.path} is not a prunebench SQLite store ({exc})") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.timeout)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _retrying(self, op: Callable[[], _T]) -> _T:
        """Run `op`, retrying it while SQLite says the store is locked or busy; StoreError after the last try."""
        for attempt in range(self.retries + 1):
            try:
                return op()
            except sqlite3.OperationalError as exc:
                if not any(w in str(exc).lower() for w in _BUSY_WORDS):
                    raise
                if attempt == self.retries:
                    raise StoreError(f"results store {self.path} stayed locked through {self.retries + 1} attempts "
                                     f"({exc}); every run's record.json is kept and can be re-indexed") from None
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def put(self, record: dict[str, Any]) -> bool:
        """Insert or replace the run's row; False (and nothing written) when that would replace a `completed` row
        with a record of another status: a finished result is never downgraded by a later failure or interrupt."""
        m = record.get("metrics", {})
        rates = record.get("compression", {}).get("achieved", {})
        row = (
            record["run_id"], record["status"], record["task"], record["model"], record["method"],
            record.get("config", {}).get("settings", {}).get("mode"), record.get("rate_requested"),
            rates.get("paper"), rates.get("conv"), record.get("metric"), m.get("dense"), m.get("hardpruned"),
            m.get("retrained"), record.get("config", {}).get("seed"), record["provenance"].get("started"),
            record["provenance"].get("finished"), record["schema_version"], json.dumps(record, default=_json_default),
        )

        def write() -> bool:
            db = self._connect()
            try:
                db.isolation_level = None  # explicit transaction: the status check and the write are one step
                db.execute("BEGIN IMMEDIATE")
                try:
                    old = db.execute("SELECT status FROM runs WHERE run_id = ?", (record["run_id"],)).fetchone()
                    if old and old[0] == "completed" and record["status"] != "completed":
                        db.execute("ROLLBACK")
                        return False
                    db.execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(row))})", row)
                    db.execute("COMMIT")
                    return True
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            finally:
                db.close()

        try:
            return self._retrying(write)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write run {record['run_id']} to results store {self.path} ({exc}); its "
                             "record.json is kept and can be re-indexed") from None

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def records(self, **where: Any) -> Iterator[dict[str, Any]]:
        clauses = " AND ".join(f"{k} = ?" for k in where)
        sql = "SELECT record FROM runs" + (f" WHERE {clauses}" if clauses else "") + " ORDER BY started"
        with self._connect() as db:
            rows = db.execute(sql, tuple(where.values())).fetchall()
        for (doc,) in rows:
            yield json.loads(doc)


@dataclass
class Reindexed:
    """What `reindex` did: run ids written to the store, run ids whose completed row was kept, unreadable files."""

    indexed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per record.json that is not a valid record


def reindex(out_dir: str | Path, store: ResultStore | str | Path) -> Reindexed:
    """Rebuild store rows from every `record.json` under `out_dir` (a run folder or a folder of them).

    The record file is written before the store row, so a run whose store write failed (locked, read-only, killed
    in between) is recovered from its folder. `put`'s rule holds: a completed row is not replaced by another status.
    """
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} is not a folder of run folders")
    done = Reindexed()
    for path in sorted(out_dir.rglob("record.json")):
        try:
            records = load_records(path)
        except UserError as exc:
            done.problems.append(str(exc))
            continue
        for rec in records:
            (done.indexed if store.put(rec) else done.kept).append(rec["run_id"])
    return done


@lru_cache(maxsize=1)
def _record_validator() -> Any:
    import jsonschema

    schema = json.loads((Path(__file__).parent / "schema" / "run_record.schema.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def check_record(record: Any, source: str) -> dict[str, Any]:
    """The record if it is a results record of this schema version; otherwise a one-line UserError."""
    if not isinstance(record, dict):
        raise UserError(f"{source} is not a results record (a JSON object), it is a {type(record).__name__}")
    check_version(record, source)
    import jsonschema

    error = jsonschema.exceptions.best_match(_record_validator().iter_errors(record))
    if error is not None:
        where = error.json_path
        what = " ".join(error.message.split())[:160]
        raise UserError(f"{source} is not a valid results record ({where}: {what})")
    return record


def _loads(text: str | bytes, source: str) -> Any:
    try:
        return json.loads(text)
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text (a results record is JSON)") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, > 4300-digit ints, nesting past the stack
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{source} is not valid JSON ({first})") from None


def _store_records(path: Path) -> list[dict[str, Any]]:
    try:
        rows = list(ResultStore(path).records())
    except sqlite3.Error as exc:
        raise UserError(f"results store {path} cannot be read ({exc})") from None
    except (TypeError, ValueError, RecursionError):  # a row whose record column is not JSON text
        raise UserError(f"results store {path} holds a row that is not a JSON record") from None
    return [check_record(r, f"{path} (run {r.get('run_id', '?') if isinstance(r, dict) else '?'})") for r in rows]


def load_records(source: str | Path) -> list[dict[str, Any]]:
    """Records from a store (.sqlite/.db), a JSON record, a JSON list of records, or a folder of run folders.

    Whatever the files hold, the result is a list of schema-valid records of this version or one UserError line.
    """
    source = Path(source)
    if not source.exists():
        raise UserError(f"results source {source} does not exist")
    if source.is_dir():
        out = []
        for p in sorted(source.rglob("record.json")):
            if p.is_dir():
                raise UserError(f"{p} is a directory, not a results record file")
            out.extend(load_records(p))
        return out
    if source.suffix in (".sqlite", ".db", ".sqlite3"):
        return _store_records(source)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read results source {source} ({exc.strerror or exc})") from None
    doc = _loads(raw, str(source))
    docs = doc if isinstance(doc, list) else [doc]
    return [check_record(d, f"{source} entry {i}") for i, d in enumerate(docs)]
