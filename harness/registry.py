"""One registry type for everything a user picks by name: tasks, methods, projections, schedules, export formats.

Entries are lazy `"module:object"` strings, imported on first use, so `benchmark run --task digits` never imports
Ultralytics. Outside packages add entries without editing prunebench through Python entry points
(`[project.entry-points."prunebench.tasks"] mytask = "mypkg.tasks:MyTask"`, likewise `prunebench.methods`), or at
run time with `REGISTRY.register(name, target)`. Every loaded object is checked against the registry's base class,
and a second registration of a taken name is an error unless it names the same target.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import re
from typing import Any, Generic, TypeVar

from harness.errors import UserError

T = TypeVar("T")

# A registered name becomes part of run ids and folder names: keep it to safe path characters.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Registry(Generic[T]):
    """name -> lazily imported object (a class, or any object) of one kind."""

    def __init__(self, kind: str, base: type | None = None, entry_point_group: str | None = None):
        self.kind = kind  # "task", "method", … (used in messages)
        self.base = base  # loaded classes must subclass it (None: no check)
        self.group = entry_point_group
        self._targets: dict[str, str | Any] = {}
        self._loaded: dict[str, Any] = {}
        self._entry_points_read = False

    # ---- registration ----------------------------------------------------------------------------------------------
    def register(self, name: str, target: str | Any) -> None:
        """Add `name` -> `"module:object"` (or the object itself). Re-registering the same target is a no-op."""
        if not NAME_RE.match(name):
            raise UserError(f"{self.kind} name {name!r} must be letters, digits, '.', '_' or '-'")
        old = self._targets.get(name)
        if old is not None and old != target:
            raise UserError(f"{self.kind} {name!r} is registered twice ({_show(old)} and {_show(target)}); "
                            "rename one of them")
        self._targets[name] = target

    def _read_entry_points(self) -> None:
        if self._entry_points_read or not self.group:
            return
        self._entry_points_read = True
        for ep in md.entry_points(group=self.group):
            self.register(ep.name, ep.value)

    # ---- lookup ----------------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def get(self, name: str) -> T:
        """The object registered as `name`; a one-line UserError listing the choices otherwise."""
        if name in self._loaded:
            return self._loaded[name]
        self._read_entry_points()
        if name not in self._targets:
            raise UserError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        obj = self._load(name, self._targets[name])
        self._loaded[name] = obj
        return obj

    def _load(self, name: str, target: str | Any) -> Any:
        if not isinstance(target, str):
            obj = target
        else:
            module_name, _, attr = target.partition(":")
            try:
                obj = importlib.import_module(module_name)
                for part in attr.split(".") if attr else ():
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as exc:
                raise UserError(f"{self.kind} {name!r} is not available in this install ({target}: {exc}); "
                                "reinstall prunebench or the package that provides it") from None
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise UserError(f"{self.kind} {name!r} ({_show(target)}) is not a subclass of {self.base.__name__}")
        return obj


def _show(target: str | Any) -> str:
    return target if isinstance(target, str) else getattr(target, "__qualname__", repr(target))
