"""Reading users' YAML files with one-line errors (prune configs, sweep configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError


def load_yaml(path: str | Path, what: str) -> Any:
    """Parse `path`; a missing file or bad YAML is a UserError naming `what` the file was meant to be."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
