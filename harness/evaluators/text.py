"""Short, safe descriptions of offending input values for one-line error messages.

A plain `repr` is unsafe on hostile input: a 100k-element list makes a megabyte-long "one-line" error, a deeply nested
one raises RecursionError, and Python refuses to print an integer of more than 4,300 digits (ValueError). `describe`
bounds depth, element counts and length, and never raises.
"""

from __future__ import annotations

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxstring = _REPR.maxother = 40
_REPR.maxlong = 24


def describe(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to at most `limit` characters, with nesting and element counts bounded."""
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError, OverflowError):
        # A huge int (str() refuses > 4,300 digits) or a structure whose own __repr__ misbehaves.
        size = f" of {value.bit_length()} bits" if isinstance(value, int) else ""
        text = f"<{type(value).__name__}{size}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
