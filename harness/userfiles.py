"""Reading users' text files (configs, label files, lists) with one-line errors that say what is wrong with the file.

Every reader of a user's text file goes through `read_text`, so the same mistakes get the same words: a path that
is missing ("does not exist"), a folder given for a file ("is a directory, not a file"), bytes that are not UTF-8
("is not UTF-8 text", with the offset of the first bad byte), or an unreadable file (the OS reason).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError


def read_text(path: str | Path, what: str, error: type[UserError] = UserError, hint: str = "") -> str:
    """The UTF-8 text of `path`; otherwise `error` naming `what` the file was meant to be (plus `hint`, if given)."""
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist{tail}") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory, not a file{tail}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path} ({exc.strerror or type(exc).__name__}){tail}") from None
    try:
        return raw.decode("utf-8-sig")  # a BOM from Windows editors is not part of the content
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}){tail}") \
            from None


def require_dir(path: str | Path, what: str, error: type[UserError] = UserError, hint: str = "") -> Path:
    """`path` if it is a folder; otherwise `error` saying whether it is missing or a file given for a folder."""
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if path.is_dir():
        return path
    if path.exists():
        raise error(f"{what} {path} is a file, not a folder{tail}")
    raise error(f"{what} {path} does not exist{tail}")
