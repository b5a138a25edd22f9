"""The results record file and store: readable by others, retried when locked, never downgraded, re-indexable."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UserError
from harness.results import (SCHEMA_VERSION, ResultStore, StoreError, check_record, load_records, reindex,
                             write_json_atomic, write_record)


def make_record(run_id: str = "digits-cnn-slr-4x-s0-abc", status: str = "completed", top1: float = 97.5) -> dict:
    """The smallest record the schema accepts (harness/schema/run_record.schema.json)."""
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "status": status, "error": None, "task": "digits",
        "model": "cnn", "method": "slr", "metric": "top1", "higher_is_better": True, "rate_requested": 4.0,
        "metrics": {"dense": 99.0, "retrained": top1}, "metrics_full": {"retrained": {"top1": top1}},
        "compression": {}, "epochs": {}, "curves": {"train": [], "hardprune_checks": [], "retrain": []},
        "updates": [], "config": {"task": "digits", "method": "slr", "seed": 0, "settings": {"mode": "paper"}},
        "task_info": {}, "provenance": {"git": {}, "packages": {}, "python": "3", "host": "h", "device": {},
                                        "seed": 0, "started": "2026-12-01T00:00:00", "finished": None},
        "timing": {}, "artifacts": {},
    }


def test_make_record_is_valid():
    assert check_record(make_record(), "test") is not None


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_record_file_mode_follows_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "run" / "record.json", make_record())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run" / "record.json").stat().st_mode) == mode
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["record.json"]  # no temp file left


def test_completed_row_is_never_downgraded(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    assert store.put(make_record(status="failed"))
    assert store.put(make_record(status="completed", top1=90.0))
    for status in ("failed", "interrupted", "running"):
        assert store.put(make_record(status=status)) is False
    assert store.get("digits-cnn-slr-4x-s0-abc")["status"] == "completed"
    assert store.put(make_record(status="completed", top1=91.0))  # a newer completed result replaces it
    assert store.get("digits-cnn-slr-4x-s0-abc")["metrics"]["retrained"] == 91.0


def test_completed_record_file_is_never_downgraded(tmp_path):
    path = tmp_path / "run" / "record.json"
    assert write_record(path, make_record(status="failed"))
    assert write_record(path, make_record(status="completed", top1=90.0))
    assert write_record(path, make_record(status="interrupted")) is False
    assert load_records(path)[0]["status"] == "completed"
    assert write_record(path, make_record(status="completed", top1=91.0))
    assert load_records(path)[0]["metrics"]["retrained"] == 91.0
    path.write_text("{broken")  # an unreadable file holds nothing worth keeping
    assert write_record(path, make_record(status="failed"))


def _lock_store(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("BEGIN EXCLUSIVE")
    return db


def test_put_retries_a_locked_store_then_succeeds(tmp_path):
    path = tmp_path / "s.sqlite"
    store = ResultStore(path, timeout=0.01, retries=6, backoff=0.05)
    holder = _lock_store(path)
    threading.Timer(0.3, holder.rollback).start()  # the other writer finishes after a while
    assert store.put(make_record())
    assert store.get("digits-cnn-slr-4x-s0-abc")["status"] == "completed"


def test_put_on_a_store_locked_for_good_is_a_clear_error(tmp_path):
    path = tmp_path / "s.sqlite"
    store = ResultStore(path, timeout=0.01, retries=2, backoff=0.01)
    holder = _lock_store(path)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="stayed locked through 3 attempts") as err:
            store.put(make_record())
        assert time.monotonic() - t0 < 5 and "\n" not in str(err.value) and "re-indexed" in str(err.value)
    finally:
        holder.rollback()


def test_reindex_rebuilds_rows_from_run_folders(tmp_path):
    out = tmp_path / "runs"
    a, b, c = (make_record(f"run-{k}") for k in "abc")
    b["status"] = "failed"
    for rec in (a, b, c):
        write_json_atomic(out / rec["run_id"] / "record.json", rec)
    (out / "junk").mkdir()
    (out / "junk" / "record.json").write_text("{not json")
    store = ResultStore(tmp_path / "s.sqlite")
    store.put(make_record("run-c", status="completed", top1=50.0))
    c["status"] = "interrupted"  # a later interrupted re-run must not replace the completed row
    write_json_atomic(out / "run-c" / "record.json", c)
    done = reindex(out, store)
    assert sorted(done.indexed) == ["run-a", "run-b"] and done.kept == ["run-c"]
    assert len(done.problems) == 1 and "junk" in done.problems[0] and "not valid JSON" in done.problems[0]
    assert {r["run_id"]: r["status"] for r in store.records()} == {"run-a": "completed", "run-b": "failed",
                                                                     "run-c": "completed"}
    with pytest.raises(UserError, match="not a folder"):
        reindex(tmp_path / "s.sqlite", store)


def test_store_that_is_a_directory(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        ResultStore(tmp_path)


def _fake_store(path: Path, record_value: Any) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, started TEXT, record TEXT)")
        db.execute("INSERT INTO runs VALUES ('x', '', ?)", (record_value,))
    db.close()


@pytest.mark.parametrize("value", [None, "{", b"\xff\xfe", "[1, 2]", '{"schema_version": 1}', "1" * 5000])
def test_hostile_store_rows_are_one_line_errors(tmp_path, value):
    path = tmp_path / "s.sqlite"
    _fake_store(path, value)
    with pytest.raises(UserError) as err:
        load_records(path)
    assert "\n" not in str(err.value)


def test_record_readers_name_directories_and_encodings(tmp_path):
    (tmp_path / "r.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UserError, match="not UTF-8"):
        load_records(tmp_path / "r.json")
    (tmp_path / "runs" / "x" / "record.json").mkdir(parents=True)
    with pytest.raises(UserError, match="is a directory"):
        load_records(tmp_path / "runs")


# ---- property-based: whatever a results file holds, the readers end in records or one UserError line -------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


def _read(source: Path) -> list[dict]:
    """load_records must return valid records or raise a one-line UserError; anything else fails the test."""
    try:
        records = load_records(source)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return []
    assert all(isinstance(r, dict) and check_record(r, "reread") is r for r in records)
    return records


def _mutate(record: dict, path: list[str], value: Any, delete: bool) -> dict:
    doc = record
    for key in path[:-1]:
        if not isinstance(doc.get(key), dict):
            return record
        doc = doc[key]
    if delete:
        doc.pop(path[-1], None)
    else:
        doc[path[-1]] = value
    return record


KEY_PATHS = [["run_id"], ["status"], ["schema_version"], ["metrics"], ["metrics", "retrained"], ["curves"],
             ["curves", "train"], ["config"], ["config", "seed"], ["provenance"], ["provenance", "started"],
             ["metrics_full", "retrained"], ["artifacts"], ["timing"], ["updates"], ["model"]]


@PROPERTY
@given(doc=json_values)
def test_any_json_file(tmp_path, doc):
    import json

    path = tmp_path / "records.json"
    path.write_text(json.dumps(doc))
    _read(path)


@PROPERTY
@given(raw=st.binary(max_size=200))
def test_any_bytes_file(tmp_path, raw):
    path = tmp_path / "records.json"
    path.write_bytes(raw)
    _read(path)


@PROPERTY
@given(key=st.sampled_from(KEY_PATHS), value=json_values, delete=st.booleans(), as_list=st.booleans())
def test_records_with_any_field_changed(tmp_path, key, value, delete, as_list):
    import json

    doc = _mutate(make_record(), key, value, delete)
    path = tmp_path / "records.json"
    path.write_text(json.dumps([doc, make_record("other")] if as_list else doc))
    records = _read(path)
    assert len(records) in (0, 2 if as_list else 1)


@PROPERTY
@given(rows=st.lists(st.none() | st.text(max_size=30) | st.binary(max_size=30) | st.integers(-2**63, 2**63 - 1)
                     | json_values.map(lambda v: __import__("json").dumps(v)), min_size=1, max_size=4))
def test_any_store_rows(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("store") / "s.sqlite"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, started TEXT, record)")
        db.executemany("INSERT INTO runs VALUES (?, '', ?)", [(str(i), v) for i, v in enumerate(rows)])
    db.close()
    _read(path)


@PROPERTY
@given(files=st.lists(st.tuples(st.sampled_from(["a", "b/c", "d/e/f"]), st.binary(max_size=60) | json_values.map(
    lambda v: __import__("json").dumps(v).encode())), max_size=4))
def test_any_folder_of_run_folders(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("runs")
    for folder, content in files:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "record.json").write_bytes(content)
    _read(root)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
                                  "1" * 5000, "NaN", '{"schema_version": 1e999}'])
def test_pathological_json(tmp_path, text):
    (tmp_path / "r.json").write_text(text)
    assert _read(tmp_path / "r.json") == []


# ---- one schema on SQLite and PostgreSQL, versioned --------------------------------------------------------------
# The DDL prunebench wrote before the store moved to SQLAlchemy (harness/results.py at edbcd2e): such a store must open.
OLD_SQLITE_DDL = (
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, status TEXT, task TEXT, model TEXT, method TEXT, mode TEXT, "
    "rate_requested REAL, rate_paper REAL, rate_conv REAL, metric TEXT, dense REAL, hardpruned REAL, retrained REAL, "
    "seed INTEGER, started TEXT, finished TEXT, schema_version INTEGER, record TEXT)"
)


def test_a_store_from_before_versioning_is_upgraded_in_place(tmp_path):
    import json

    from harness import db

    path = tmp_path / "old.sqlite"
    old = make_record("old-run")
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_SQLITE_DDL)
        conn.execute("INSERT INTO runs VALUES (?, 'completed', 'digits', 'cnn', 'slr', 'paper', 4.0, NULL, NULL, "
                     "'top1', 99.0, NULL, 97.5, 0, '2026-12-01T00:00:00', NULL, 1, ?)", ("old-run", json.dumps(old)))
    conn.close()
    store = ResultStore(path)
    assert store.get("old-run") == old
    assert store.put(make_record("new-run"))
    assert [r["run_id"] for r in load_records(path)] == ["old-run", "new-run"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(db.SCHEMA_VERSION,)]
        assert conn.execute("SELECT count(*) FROM claims").fetchone() == (0,)
    conn.close()


def test_a_store_from_a_newer_prunebench_is_refused(tmp_path):
    from harness import db

    path = tmp_path / "new.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (?)", (db.SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(UserError, match="newer than this prunebench"):
        ResultStore(path)


def test_both_databases_keep_the_rules(store_url):
    """put/get/records and the never-downgrade rule on SQLite and PostgreSQL; load_records reads a URL too."""
    store = ResultStore(store_url)
    assert store.put(make_record(status="completed", top1=90.0))
    assert store.put(make_record(status="failed")) is False
    assert store.put(make_record("other", status="failed"))
    assert {r["run_id"]: r["status"] for r in store.records()} == {"digits-cnn-slr-4x-s0-abc": "completed",
                                                                     "other": "failed"}
    assert [r["run_id"] for r in store.records(status="failed")] == ["other"]
    assert store.statuses(["other", "missing"]) == {"other": "failed"}
    assert len(load_records(store_url)) == 2


def test_an_unreachable_database_is_one_line(tmp_path):
    with pytest.raises(UserError) as err:
        ResultStore(f"postgresql://nobody@/x?host={tmp_path}&port=1", timeout=1)
    assert "cannot be opened" in str(err.value) and "\n" not in str(err.value)
