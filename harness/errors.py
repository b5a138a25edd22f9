"""User-facing errors.

A `UserError` is a mistake the user can fix (bad flag, missing file, wrong layout). The CLI prints its message on
one line and exits non-zero without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; the message must say what to do."""

    exit_code = 2


class DataError(UserError):
    """A dataset is missing or laid out wrongly. Name the missing file and the data script that makes it."""


class CheckpointError(UserError):
    """A checkpoint is unreadable or does not match the model (list missing / unexpected keys)."""


class JobInterrupted(UserError):
    """Another process of a data-parallel job stopped (killed, out of memory): this one cannot go on alone. The run's
    record says so and `--resume` continues from the last checkpoint."""

    exit_code = 1


class TrainingDiverged(Exception):
    """The loss became NaN/inf. The runner stops, keeps what was computed and marks the run failed."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch = epoch
        self.step = step


def format_key_mismatch(missing: list[str], unexpected: list[str], limit: int = 8) -> str:
    """One-line summary of a state-dict mismatch, listing the first few keys of each kind."""

    def show(keys: list[str]) -> str:
        head = ", ".join(keys[:limit])
        return head + (f", … (+{len(keys) - limit} more)" if len(keys) > limit else "")

    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {show(unexpected)}")
    return "; ".join(parts)
