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
import tempfile
from pathlib import Path
from typing import Any, Iterator

from harness.errors import UserError

SCHEMA_VERSION = 1
DEFAULT_STORE = "prunebench.sqlite"

_COLUMNS = (
    "run_id TEXT PRIMARY KEY, status TEXT, task TEXT, model TEXT, method TEXT, mode TEXT, rate_requested REAL, "
    "rate_paper REAL, rate_conv REAL, metric TEXT, dense REAL, hardpruned REAL, retrained REAL, seed INTEGER, "
    "started TEXT, finished TEXT, schema_version INTEGER, record TEXT"
)


def write_json_atomic(path: str | Path, doc: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class ResultStore:
    """SQLite file with one row per run (WAL mode and a busy timeout: several processes may share it)."""

    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.execute(f"CREATE TABLE IF NOT EXISTS runs ({_COLUMNS})")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"results store {self.path} is not a prunebench SQLite store ({exc})") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60.0)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def put(self, record: dict[str, Any]) -> None:
        m = record.get("metrics", {})
        rates = record.get("compression", {}).get("achieved", {})
        row = (
            record["run_id"], record["status"], record["task"], record["model"], record["method"],
            record.get("config", {}).get("settings", {}).get("mode"), record.get("rate_requested"),
            rates.get("paper"), rates.get("conv"), record.get("metric"), m.get("dense"), m.get("hardpruned"),
            m.get("retrained"), record.get("config", {}).get("seed"), record["provenance"].get("started"),
            record["provenance"].get("finished"), record["schema_version"], json.dumps(record, default=_json_default),
        )
        with self._connect() as db:
            db.execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(row))})", row)

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


def load_records(source: str | Path) -> list[dict[str, Any]]:
    """Records from a store (.sqlite/.db), a JSON record, a JSON list of records, or a folder of run folders."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"results source {source} does not exist")
    if source.is_dir():
        out = []
        for p in sorted(source.rglob("record.json")):
            out.extend(load_records(p))
        return out
    if source.suffix in (".sqlite", ".db", ".sqlite3"):
        return list(ResultStore(source).records())
    try:
        doc = json.loads(source.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{source} is not valid JSON ({exc})") from None
    docs = doc if isinstance(doc, list) else [doc]
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise UserError(f"{source}: entry {i} is not a results record")
        check_version(d, f"{source} entry {i}")
    return docs
