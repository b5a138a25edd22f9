"""Reading and validating TuSimple JSON-lines files and records, packed into arrays for `scoring`.

Everything here is about input, not about the metric: parsing (orjson, blank lines skipped), the record checks that
name file, line and field in a one-line `DataError`, the join of predictions to the GT by `raw_file`, and the bounds
that keep memory proportional to a real submission (`MAX_FILE_BYTES`, `MAX_RECORDS`, `MAX_GT_LANES`).

Deliberate differences from the official reader, all on input it rejects or mis-handles: duplicate `raw_file`s (the
official silently double-counts or drops them), non-finite numbers, booleans, integers beyond 2**53 (where int64 and
float64 arithmetic part ways), empty `h_samples` (the official divides by zero) and GT lanes whose length differs from
`h_samples` are rejected even on images the official would short-circuit; so are files and GT records beyond the
bounds below, which no TuSimple set comes near.
"""

from __future__ import annotations

import array
import json
import math
from dataclasses import dataclass
from itertools import chain
from numbers import Real
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from harness.errors import DataError
from harness.evaluators.text import describe

_MAX_ABS_VALUE = 2.0**53  # beyond this float64 (ours) and int64 (official) arithmetic differ
_PAD = -100.0  # fills rows past a shorter image's own h_samples; scoring masks those rows out

# Resource bounds. The TuSimple test GT is ~5 MB with 2,782 records of at most 5 lanes, and a prediction file of
# UFLD's 4 lanes is about the same size; these bounds leave a wide margin yet keep parsing (roughly 10-20 bytes of
# Python objects per byte of JSON) and scoring (GT lanes x predicted lanes pairs per image) to a few GB at worst.
MAX_FILE_BYTES = 256 * 2**20
MAX_RECORDS = 200_000
# Official scoring pairs every GT lane with every predicted lane of an image, so memory grows with lanes^2; the
# official has no bound of its own. Predicted lanes need none: an image with more than len(gt) + 2 of them scores
# zero before any pair is formed (official rule), so GT lanes bound the pairs at MAX_GT_LANES * (MAX_GT_LANES + 2).
MAX_GT_LANES = 16

Where = Callable[[int], str]

def _reject_constant(name: str) -> float:
    """`json.loads` hook: the stdlib accepts NaN/Infinity, which are not JSON and have no meaning as pixels."""
    raise ValueError(f"non-finite number {name} is not valid JSON")


# One decoder for all lines: `json.loads(..., parse_constant=...)` would build a new decoder per line.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_stdlib(line: bytes) -> Any:
    return _DECODER.decode(line.decode("utf-8"))


try:  # orjson parses TuSimple's number-heavy lines ~2-3x faster than the stdlib and, like RFC 8259, rejects NaN
    import orjson

    _decode = orjson.loads
    _DECODE_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _decode = _decode_stdlib
    # RecursionError: the stdlib decoder on deeply nested arrays (orjson stops at depth 1024 with its own error).
    _DECODE_ERRORS = (ValueError, UnicodeDecodeError, RecursionError)


def _read_bounded(path: Path, kind: str) -> bytes:
    """The file's bytes, or `DataError` when it is missing, not a file, or larger than `MAX_FILE_BYTES`."""
    if not path.is_file():
        raise DataError(f"{kind} file {path} " + ("is not a file" if path.exists() else "does not exist"))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(f"{kind} file {path} has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a TuSimple "
                        "evaluation reads (MAX_FILE_BYTES in harness/evaluators/tusimple/reading.py)")
    return path.read_bytes()


def read_jsonl(path: str | Path, kind: str) -> tuple[list[dict], list[int], list[bool]]:
    """Parse a JSON-lines file into objects, their 1-based line numbers and whether each line may hold a boolean.

    The boolean flag is a cheap textual pre-check ("true"/"false" appear nowhere in most lines), so the per-value
    boolean scan only runs on the few records where JSON could have produced one.
    """
    path = Path(path)
    data = _read_bounded(path, kind)
    records: list[dict] = []
    linenos: list[int] = []
    # Most files hold no boolean at all: one scan of the whole file spares a scan per line.
    any_bool = b"true" in data or b"false" in data
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line or line.isspace():
            continue  # a blank line (often a trailing one) carries no record
        if len(records) == MAX_RECORDS:
            raise DataError(f"{path}, line {lineno}: more than {MAX_RECORDS:,} records, the most a TuSimple "
                            "evaluation reads (MAX_RECORDS in harness/evaluators/tusimple/reading.py)")
        try:
            obj = _decode(line)
        except _DECODE_ERRORS as exc:
            raise DataError(f"{path}, line {lineno}: malformed JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        records.append(obj)
        linenos.append(lineno)
    maybe_bool = [b"true" in line or b"false" in line for line in data.split(b"\n") if line and not line.isspace()] \
        if any_bool else [False] * len(records)
    return records, linenos, maybe_bool


def _is_number(v: Any) -> bool:
    """True for a finite real number that is not a boolean and fits float64 exactly (see `_MAX_ABS_VALUE`)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real):
        return False
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return False
    return math.isfinite(f) and abs(f) < _MAX_ABS_VALUE


def _raw_file(rec: dict, where: str) -> str:
    raw = rec.get("raw_file")
    if not isinstance(raw, str) or not raw:
        raise DataError(f"{where}: field 'raw_file' is {describe(raw)}; it must be a non-empty string")
    return raw


_SEQ_TYPES = (list, tuple)


def _lane_lists(rec: dict, where: str) -> tuple[list, list[int]]:
    """The `lanes` field as a list of sequences (lists from JSON or arrays from an in-memory writer) and their lengths.

    JSON lanes are lists of lists, so the common case is one type check per lane in a comprehension; anything else
    is looked at lane by lane to name the offending one.
    """
    lanes = rec["lanes"]
    if isinstance(lanes, np.ndarray):
        if lanes.ndim != 2 and lanes.size:
            raise DataError(f"{where}: field 'lanes' is a {lanes.ndim}-D array; it must be a list of lanes")
        lanes = list(lanes)
    elif not isinstance(lanes, _SEQ_TYPES):
        raise DataError(f"{where}: field 'lanes' is {describe(lanes)}; it must be a list of lanes (lists of x)")
    if all([type(lane) is list for lane in lanes]):
        return lanes, [len(lane) for lane in lanes]
    for j, lane in enumerate(lanes):
        if not isinstance(lane, (list, tuple, np.ndarray)) or (isinstance(lane, np.ndarray) and lane.ndim != 1):
            raise DataError(f"{where}: field 'lanes'[{j}] is {describe(lane)}; each lane must be a list of x values")
    return list(lanes), [len(lane) for lane in lanes]


def _plain_lanes(lanes: list, n: int) -> bool:
    """True when every lane is a list (not a subclass) of n values: the common case the record checks skip."""
    return all([type(lane) is list and len(lane) == n for lane in lanes])


def _first_len(lanes: list) -> int:
    """Length of the first lane when it is a list, 0 without lanes, else -1 (which no lane length matches)."""
    if not lanes:
        return 0
    return len(lanes[0]) if type(lanes[0]) is list else -1


def _check_number_field(rec: dict, key: str, where: str) -> float:
    v = rec[key]
    if not _is_number(v):
        raise DataError(f"{where}: field '{key}' is {describe(v)}; it must be a finite number")
    return float(v)


def _numbers_to_array(
    values: list, records: Sequence[dict], lanes_of: Sequence[Sequence], where: Where, field: str,
    bool_suspects: Sequence[bool] | None,
) -> np.ndarray:
    """Convert the flattened values of `field` of all records to float64, raising `DataError` at the first bad one.

    The fast path is one `np.array` call over the whole file; only if it finds a non-numeric dtype, a non-finite or
    too large value, or a possible boolean (which numpy would silently turn into 0/1) are the records walked one value
    at a time to name the offending line and position. `lanes_of[i]` is the list of value lists of record i (one
    list for `h_samples`); `bool_suspects[i]` says whether record i may hold a boolean (None: check every record).
    """

    def locate(only: Iterable[int]) -> None:
        for i in only:
            for j, seq in enumerate(lanes_of[i]):
                for k, v in enumerate(seq):
                    if not _is_number(v):
                        pos = f"'{field}'[{j}][{k}]" if field == "lanes" else f"'{field}'[{k}]"
                        raise DataError(f"{where(i)}: field {pos} is {describe(v)}; it must be a finite number")

    arr = _int_array(values)
    if arr is None:  # not all Python/numpy integers (floats, or something that is no number): numpy sorts them out
        try:
            arr = np.array(values) if values else np.zeros(0)
        except (ValueError, TypeError, OverflowError):
            arr = None
    # Bounds rather than np.abs: abs of the int64 minimum overflows to itself and would pass the check.
    if arr is None or arr.dtype.kind not in "iuf" or (
        arr.size and not (arr.max() < _MAX_ABS_VALUE and arr.min() > -_MAX_ABS_VALUE)
    ):
        locate(range(len(records)))
        raise DataError(f"{where(0)}: field '{field}' holds values that are not finite numbers")  # not reached
    if bool_suspects is None:
        # In-memory records: numpy turns True/False mixed with numbers into 1/0, so look at the value types (of every
        # record: `values` may hold only one copy of lists that compare equal, and [True] == [1]).
        types = set(map(type, chain.from_iterable(chain.from_iterable(lanes_of))))
        if any(issubclass(t, (bool, np.bool_)) for t in types):
            locate(range(len(records)))
    elif any(bool_suspects):
        locate([i for i, s in enumerate(bool_suspects) if s])
    return arr.astype(np.float64, copy=False)


def _int_array(values: list) -> np.ndarray | None:
    """`values` as int64 if every one is an integer that fits (booleans too: callers check those apart), else None.

    TuSimple files hold integer pixels, and `array.array("q", ...)` converts a list of ints about twice as fast as
    `np.array`, which first has to discover the type of every element; it refuses floats, strings, None, lists and
    ints beyond int64 with TypeError/OverflowError, which sends the caller to the general `np.array` path.
    """
    try:
        return np.frombuffer(array.array("q", values), dtype=np.int64)
    except (TypeError, OverflowError):
        return None


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends_excl = np.cumsum(counts) - counts
    return np.repeat(np.asarray(starts, dtype=np.int64) - ends_excl, counts) + np.arange(total)


def _pad_lanes(flat: np.ndarray, lane_rows: np.ndarray, r_max: int) -> np.ndarray:
    """Lay the flattened lanes out as a (n_lanes, r_max) array; rows past a lane's own length hold `_PAD`.

    TuSimple mixes 48- and 56-row images, so lanes are not all one length; the common uniform case is a reshape.
    """
    n = len(lane_rows)
    if n == 0:
        return np.zeros((0, r_max))
    if np.all(lane_rows == r_max):
        return flat.reshape(n, r_max)
    out = np.full((n, r_max), _PAD)
    lane = np.repeat(np.arange(n), lane_rows)
    col = ranges(np.zeros(n, dtype=np.int64), lane_rows)
    out[lane, col] = flat
    return out


@dataclass
class GT:
    """Validated GT records packed into arrays, in GT-file order."""

    raw_files: list[str]
    index: dict[str, int]  # raw_file -> position
    rows: np.ndarray  # (n_images,) number of h_samples per image
    y: np.ndarray  # (n_images, r_max) h_samples, padded
    lane_counts: np.ndarray  # (n_images,) number of GT lanes
    lane_start: np.ndarray  # (n_images,) first row of `x` holding the image's lanes
    x: np.ndarray  # (n_lanes, r_max) lane x values, padded


@dataclass
class Pred:
    """Validated prediction records, in prediction-file order, joined to the GT."""

    gt_pos: np.ndarray  # (n_images,) position of the matching GT image
    run_time: np.ndarray  # (n_images,) float64
    lane_counts: np.ndarray  # (n_images,)
    lane_start: np.ndarray  # (n_images,) first row of `x` holding the image's lanes
    x: np.ndarray  # (n_lanes, r_max of the GT) lane x values, padded


def _checked_identity(
    rec: Any, i: int, where: Where, index: dict[str, int], required: tuple[str, ...], missing_hint: str
) -> tuple[str, str]:
    """(location, raw_file) of record `i` once it is an object with the `required` fields and a new raw_file."""
    w = where(i)
    if not isinstance(rec, dict):
        raise DataError(f"{w}: expected a JSON object, got {type(rec).__name__}")
    for key in required:
        if key not in rec:
            raise DataError(f"{w}: field '{key}' is missing ({missing_hint})")
    raw = _raw_file(rec, w)
    if raw in index:
        raise DataError(f"{w}: field 'raw_file' {describe(raw)} duplicates {where(index[raw])}")
    return w, raw


def _checked_gt_record(rec: Any, i: int, where: Where, index: dict[str, int]) -> tuple[str, list, list]:
    """(raw_file, h_samples, lanes) of GT record `i` after every check, or `DataError` naming the field."""
    w, raw = _checked_identity(rec, i, where, index, ("raw_file", "lanes", "h_samples"),
                               "ground truth needs raw_file, lanes, h_samples")
    h = rec["h_samples"]
    if isinstance(h, np.ndarray):
        h = h.tolist()
    if not isinstance(h, (list, tuple)) or not h:
        raise DataError(f"{w}: field 'h_samples' is {describe(h)}; it must be a non-empty list of y values")
    lanes, lens = _lane_lists(rec, w)
    if lens.count(len(h)) != len(lens):
        j = next(j for j, n in enumerate(lens) if n != len(h))
        raise DataError(
            f"{w}: field 'lanes'[{j}] has {lens[j]} values but 'h_samples' has {len(h)}; "
            "each lane needs one x per h_sample"
        )
    return raw, h, lanes


def pack_gt(records: Sequence[dict], where: Where, bool_suspects: Sequence[bool] | None) -> GT:
    """Validate GT records (`raw_file`, `h_samples`, `lanes`) and pack them; raise `DataError` at the first problem."""
    if not records:
        raise DataError(f"{where(-1)}: no ground-truth records; the official evaluator divides by their number")
    raw_files: list[str] = []
    index: dict[str, int] = {}
    h_lists: list[list] = []
    lanes_per: list[list] = []
    # Nearly every image of a set has the same h_samples: only distinct lists (by ==, so equal values) are converted.
    h_distinct: list[list] = []
    h_which: list[int] = []
    prev_h: Any = None
    for i, rec in enumerate(records):
        raw, h, lanes = (rec.get("raw_file"), rec.get("h_samples"), rec.get("lanes")) if type(rec) is dict else (
            None, None, None)
        # Fast path for what JSON gives: a new non-empty str raw_file, a non-empty h_samples list and a list of lanes
        # that are lists of len(h_samples). It accepts a subset of what the full checks accept, with the same result;
        # anything else goes through them to be accepted or named in an error.
        if not (
            type(raw) is str and raw and raw not in index and type(h) is list and h and type(lanes) is list
            and _plain_lanes(lanes, len(h))
        ):
            raw, h, lanes = _checked_gt_record(rec, i, where, index)
        index[raw] = i
        raw_files.append(raw)
        h_lists.append(h)
        lanes_per.append(lanes)
        if h is not prev_h and h != prev_h:
            h_distinct.append(h)
            prev_h = h
        h_which.append(len(h_distinct) - 1)
    lane_counts = np.fromiter((len(ls) for ls in lanes_per), dtype=np.int64, count=len(lanes_per))
    crowded = np.flatnonzero(lane_counts > MAX_GT_LANES)
    if len(crowded):
        i = int(crowded[0])
        raise DataError(f"{where(i)}: field 'lanes' has {lane_counts[i]} lanes, more than the {MAX_GT_LANES} a "
                        "ground-truth image may have (TuSimple labels at most 5; scoring pairs every GT lane with "
                        "every predicted lane, so memory grows with their product)")
    # A bad value in any h_samples list is also in the distinct list equal to it; `locate` then walks every record.
    y_flat = _numbers_to_array(
        list(chain.from_iterable(h_distinct)), records, [[h] for h in h_lists], where, "h_samples", bool_suspects
    )
    x_flat = _numbers_to_array(
        list(chain.from_iterable(chain.from_iterable(lanes_per))), records, lanes_per, where, "lanes", bool_suspects
    )
    distinct_rows = np.fromiter((len(h) for h in h_distinct), dtype=np.int64, count=len(h_distinct))
    which = np.asarray(h_which, dtype=np.int64)
    rows = distinct_rows[which]
    r_max = int(rows.max())
    return GT(
        raw_files=raw_files,
        index=index,
        rows=rows,
        y=_pad_lanes(y_flat, distinct_rows, r_max)[which],
        lane_counts=lane_counts,
        lane_start=np.cumsum(lane_counts) - lane_counts,
        x=_pad_lanes(x_flat, np.repeat(rows, lane_counts), r_max),
    )


def _checked_pred_record(rec: Any, i: int, where: Where, index: dict[str, int]) -> tuple[str, float, list]:
    """(raw_file, run_time, lanes) of prediction record `i` after every check, or `DataError` naming the field."""
    w, raw = _checked_identity(rec, i, where, index, ("raw_file", "lanes", "run_time"),
                               "raw_file or lanes or run_time not in some predictions")
    run_time = _check_number_field(rec, "run_time", w)
    lanes, lens = _lane_lists(rec, w)
    h = rec.get("h_samples")
    expected = len(h) if isinstance(h, (list, tuple, np.ndarray)) else (lens[0] if lens else 0)
    if lens.count(expected) != len(lens):
        j = next(j for j, n in enumerate(lens) if n != expected)
        other = "'h_samples'" if isinstance(h, (list, tuple, np.ndarray)) else "'lanes'[0]"
        raise DataError(f"{w}: field 'lanes'[{j}] has {lens[j]} values but {other} has {expected}")
    return raw, run_time, lanes


def _check_pred_records(
    records: Sequence[dict], where: Where
) -> tuple[list[str], dict[str, int], list[list], list[float]]:
    """Per-record checks of predictions that need no GT: required fields, types, duplicates, lane lengths.

    Required are `raw_file`, `lanes` and `run_time` (as official; `h_samples` is optional because the official
    evaluator uses the GT's). When `h_samples` is present every lane must have as many values, since a writer whose
    two fields disagree is broken even if the lanes happen to fit the GT.
    """
    raw_files: list[str] = []
    index: dict[str, int] = {}
    lanes_per: list[list] = []
    run_times: list[float] = []
    for i, rec in enumerate(records):
        raw, rt, lanes, h = (rec.get("raw_file"), rec.get("run_time"), rec.get("lanes"), rec.get("h_samples")) \
            if type(rec) is dict else (None, None, None, None)
        # Fast path (see `pack_gt`): a new str raw_file, an int or float run_time within +-2**53 (NaN and infinities
        # fail the comparisons; bool is neither type), a list of lanes that are lists of one length, len(h_samples)
        # when that is a list, else (absent or null) the first lane's. Anything else takes the full checks.
        if (
            type(raw) is str and raw and raw not in index and (type(rt) is int or type(rt) is float)
            and -_MAX_ABS_VALUE < rt < _MAX_ABS_VALUE and type(lanes) is list
            and (type(h) is list or h is None)
            and _plain_lanes(lanes, len(h) if h is not None else _first_len(lanes))
        ):
            rt = float(rt)
        else:
            raw, rt, lanes = _checked_pred_record(rec, i, where, index)
        index[raw] = i
        raw_files.append(raw)
        run_times.append(rt)
        lanes_per.append(lanes)
    return raw_files, index, lanes_per, run_times


def pack_pred(
    records: Sequence[dict], where: Where, bool_suspects: Sequence[bool] | None, gt: GT, gt_where: Where,
    pred_name: str, gt_name: str,
) -> Pred:
    """Validate predictions, join them to the GT by `raw_file` and pack them; raise `DataError` on any problem."""
    raw_files, index, lanes_per, run_times = _check_pred_records(records, where)
    unknown = [i for i, raw in enumerate(raw_files) if raw not in gt.index]
    if unknown:
        first = ", ".join(describe(raw_files[i]) for i in unknown[:3])
        raise DataError(
            f"{where(unknown[0])}: field 'raw_file': {len(unknown)} prediction(s) name images that are not in "
            f"{gt_name} (first: {first}); official: 'Some raw_file from your predictions do not exist in the test "
            "tasks.'"
        )
    missing = [g for g, raw in enumerate(gt.raw_files) if raw not in index]
    if missing:
        first = ", ".join(describe(gt.raw_files[g]) for g in missing[:3])
        raise DataError(
            f"{pred_name}: {len(missing)} of {len(gt.raw_files)} ground-truth images have no prediction "
            f"(first: {first}; first at {gt_where(missing[0])}); official: 'We do not get the predictions of all "
            "the test tasks'"
        )
    gt_pos = np.fromiter((gt.index[raw] for raw in raw_files), dtype=np.int64, count=len(raw_files))
    rows = gt.rows[gt_pos]
    lane_counts = np.fromiter((len(ls) for ls in lanes_per), dtype=np.int64, count=len(lanes_per))
    # Official `bench`: every predicted lane must have one value per GT h_sample, checked before anything else.
    for i in np.flatnonzero(lane_counts > 0).tolist():
        got = len(lanes_per[i][0])
        if got != rows[i]:
            raise DataError(
                f"{where(i)}: field 'lanes'[0] has {got} values but the ground truth ({gt_where(int(gt_pos[i]))}) "
                f"has {int(rows[i])} h_samples (official: 'Format of lanes error.')"
            )
    x_flat = _numbers_to_array(
        list(chain.from_iterable(chain.from_iterable(lanes_per))), records, lanes_per, where, "lanes", bool_suspects
    )
    return Pred(
        gt_pos=gt_pos,
        run_time=np.asarray(run_times, dtype=np.float64),
        lane_counts=lane_counts,
        lane_start=np.cumsum(lane_counts) - lane_counts,
        x=_pad_lanes(x_flat, np.repeat(rows, lane_counts), gt.y.shape[1]),
    )


def record_where(kind: str, records: Sequence[Any]) -> Where:
    """Location text for in-memory records: position plus raw_file when readable."""

    def where(i: int) -> str:
        if i < 0:
            return f"{kind} records"
        rec = records[i]
        raw = rec.get("raw_file") if isinstance(rec, dict) else None
        return f"{kind} record {i}" + (f" (raw_file {describe(raw)})" if isinstance(raw, str) else "")

    return where


def file_where(path: str | Path, linenos: list[int]) -> Where:
    return lambda i: f"{path}" if i < 0 else f"{path}, line {linenos[i]}"


def load_gt_file(path: str | Path) -> list[dict]:
    """Read and validate a TuSimple GT JSON-lines file (e.g. `test_label.json`); raises `DataError` on bad input."""
    records, linenos, suspects = read_jsonl(path, "ground-truth")
    pack_gt(records, file_where(path, linenos), suspects)
    return records


def load_prediction_file(path: str | Path) -> list[dict]:
    """Read and validate a prediction JSON-lines file (one object per image); raises `DataError` on bad input.

    Checks what can be checked without the GT: fields, types, duplicates and lane lengths; `eval_files` also checks
    the join with the GT.
    """
    records, linenos, suspects = read_jsonl(path, "prediction")
    where = file_where(path, linenos)
    _, _, lanes_per, _ = _check_pred_records(records, where)
    _numbers_to_array(
        list(chain.from_iterable(chain.from_iterable(lanes_per))), records, lanes_per, where, "lanes", suspects
    )
    return records
