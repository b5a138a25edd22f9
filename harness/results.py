"""The results record (one per run) and the results store (SQLite by default, PostgreSQL for clusters; harness/db.py).

A record is a JSON document (schema in harness/schema/run_record.schema.json, version `SCHEMA_VERSION`): metrics
(dense / hard-pruned / retrained), per-epoch curves, per-layer sparsity, requested and achieved rates, the full
config and provenance. The store keeps one row per run id with the searchable columns and the whole JSON; writes are
atomic (one upsert statement; JSON via temp file + rename) so concurrent sweep workers never clobber each other.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from harness import db
from harness.errors import UserError

_T = TypeVar("_T")

SCHEMA_VERSION = 1
DEFAULT_STORE = "prunebench.sqlite"


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
    """The results store cannot be written (locked past every retry, read-only, full, unreachable). The run's
    record.json is already on disk, so `reindex` can add it later."""


class ResultStore:
    """One row per run, in a SQLite file (`path`, WAL mode, busy timeout) or any SQLAlchemy database URL
    (PostgreSQL for several nodes); the schema and its migrations are in harness/db.py.

    `put` retries a locked or busy store `retries` times with exponential backoff (from `backoff` seconds) on top of
    the driver's own busy timeout (`timeout` seconds per attempt), then raises StoreError.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 0.1):
        self.url_given = db.is_url(path)
        self.path: str | Path = str(path) if self.url_given else Path(path)
        self.name = db.describe(path)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        if not self.url_given:
            if self.path.is_dir():  # type: ignore[union-attr]
                raise UserError(f"results store {self.path} is a directory, not a file")
            self.path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        try:
            self.engine = db.open_store(self.path, timeout, retries, backoff)
        except sa.exc.OperationalError as exc:  # unreachable server, bad credentials, unreadable file
            raise UserError(f"results store {self.name} cannot be opened ({_first_line(exc)})") from None
        except sa.exc.DatabaseError as exc:
            kind = "a database URL prunebench can use" if self.url_given else "a prunebench SQLite store"
            raise UserError(f"results store {self.name} is not {kind} ({_first_line(exc)})") from None
        except sa.exc.SQLAlchemyError as exc:
            raise UserError(f"results store {self.name} cannot be opened ({_first_line(exc)})") from None

    def _retrying(self, op: Callable[[], _T]) -> _T:
        """Run `op`, retrying it while the database reports contention; StoreError after the last try."""
        return db.retrying(op, self.retries, self.backoff, lambda exc: StoreError(
            f"results store {self.name} stayed locked through {self.retries + 1} attempts ({_first_line(exc)}); "
            "every run's record.json is kept and can be re-indexed"))

    def put(self, record: dict[str, Any]) -> bool:
        """Insert or replace the run's row; False (and nothing written) when that would replace a `completed` row
        with a record of another status: a finished result is never downgraded by a later failure or interrupt."""
        m = record.get("metrics", {})
        rates = record.get("compression", {}).get("achieved", {})
        row = dict(
            run_id=record["run_id"], status=record["status"], task=record["task"], model=record["model"],
            method=record["method"], mode=record.get("config", {}).get("settings", {}).get("mode"),
            rate_requested=record.get("rate_requested"), rate_paper=rates.get("paper"), rate_conv=rates.get("conv"),
            metric=record.get("metric"), dense=m.get("dense"), hardpruned=m.get("hardpruned"),
            retrained=m.get("retrained"), seed=record.get("config", {}).get("seed"),
            started=record["provenance"].get("started"), finished=record["provenance"].get("finished"),
            schema_version=record["schema_version"], record=json.dumps(record, default=_json_default),
        )
        # One upsert statement: the never-downgrade check and the write are atomic on both databases.
        insert = (sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert)(db.runs).values(**row)
        keep_completed = sa.or_(db.runs.c.status.is_distinct_from("completed"),
                                insert.excluded.status == "completed")
        stmt = insert.on_conflict_do_update(index_elements=[db.runs.c.run_id],
                                            set_={k: insert.excluded[k] for k in row if k != "run_id"},
                                            where=keep_completed).returning(db.runs.c.run_id)

        def write() -> bool:
            with db.write_tx(self.engine) as conn:  # a row comes back only if it was inserted or replaced
                return conn.execute(stmt).first() is not None

        try:
            return self._retrying(write)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot write run {record['run_id']} to results store {self.name} "
                             f"({_first_line(exc)}); its record.json is kept and can be re-indexed") from None

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            doc = conn.execute(sa.select(db.runs.c.record).where(db.runs.c.run_id == run_id)).scalar()
        return json.loads(doc) if doc is not None else None

    def statuses(self, run_ids: list[str]) -> dict[str, str | None]:
        """The status of each run id that has a row (one query, for sweeps polling many cells)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.runs.c.run_id, db.runs.c.status)
                                .where(db.runs.c.run_id.in_(run_ids))).all()
        return {r: s for r, s in rows}

    def records(self, **where: Any) -> Iterator[dict[str, Any]]:
        query = sa.select(db.runs.c.record).order_by(db.runs.c.started)
        for key, value in where.items():
            query = query.where(db.runs.c[key] == value)
        with self.engine.connect() as conn:
            docs = conn.execute(query).scalars().all()
        for doc in docs:
            yield json.loads(doc)


def _first_line(exc: BaseException) -> str:
    """A driver error in one line: the database's own message, not SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]


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


def _store_records(path: str | Path) -> list[dict[str, Any]]:
    try:
        rows = list(ResultStore(path).records())
    except sa.exc.SQLAlchemyError as exc:
        raise UserError(f"results store {db.describe(path)} cannot be read ({_first_line(exc)})") from None
    except (TypeError, ValueError, RecursionError):  # a row whose record column is not JSON text
        raise UserError(f"results store {path} holds a row that is not a JSON record") from None
    return [check_record(r, f"{path} (run {r.get('run_id', '?') if isinstance(r, dict) else '?'})") for r in rows]


def load_records(source: str | Path) -> list[dict[str, Any]]:
    """Records from a store (.sqlite/.db), a JSON record, a JSON list of records, or a folder of run folders.

    Whatever the files hold, the result is a list of schema-valid records of this version or one UserError line.
    A database URL (postgresql://...) is read as a store.
    """
    if db.is_url(source):
        return _store_records(str(source))
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
