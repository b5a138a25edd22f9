"""Typed settings from one source: dataclass fields declare type, default, help and bounds once.

Everything a user sets by name goes through here: the `benchmark run` / `sweep` flags (generated from the fields, see
`add_arguments`), sweep YAML keys, `--opt key=value` task options and `--method-opt` method options. Values arrive as
strings (CLI) or YAML scalars and are coerced to the field's type; out-of-bounds values, unknown keys and wrong types
are one-line `UserError`s that list what is valid.

Field metadata (all optional), made with `setting(...)`:
    help      one sentence for --help
    flag      the CLI flag when it is not --field-name (e.g. "--M")
    choices   allowed values (or a callable returning them: registries are read lazily)
    lo / gt   inclusive / exclusive lower bound for numbers (NaN and inf are always rejected)
    parse     a callable str|Any -> value for types with a custom text form (e.g. "288x800")
    cli       False: not a CLI flag (set by the program, or by a dedicated option)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import MISSING, Field, field
from typing import Any, Callable

from harness.errors import UserError


def setting(default: Any = MISSING, *, help: str = "", flag: str | None = None, choices: Any = None,
            lo: float | None = None, gt: float | None = None, parse: Callable[[Any], Any] | None = None,
            cli: bool = True, default_factory: Any = MISSING) -> Any:
    """A dataclass field with the metadata above."""
    meta = {"help": help, "flag": flag, "choices": choices, "lo": lo, "gt": gt, "parse": parse, "cli": cli}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def fields_of(cls: type) -> dict[str, Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def choices_of(f: Field) -> list[Any] | None:
    c = f.metadata.get("choices")
    return list(c()) if callable(c) else (list(c) if c is not None else None)


# ---- coercion ------------------------------------------------------------------------------------------------------
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)) and len(args) == 1:
            return args[0], True
    return tp, False


def coerce(tp: Any, value: Any, where: str) -> Any:
    """`value` (a string from the command line, or a YAML/JSON scalar) as type `tp`; UserError naming `where`."""
    tp, optional = _strip_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise UserError(f"{where} needs a value")
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
                return value.lower() in _TRUE
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            text = str(value).strip()
            if len(text) > 30:  # int("9" * 5000) is slow and no setting needs it
                raise ValueError
            return int(float(text)) if isinstance(value, float) else int(text)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin in (list, tuple):
            items = _as_list(value)
            args = typing.get_args(tp)
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(items) != len(args):
                    raise ValueError
                return tuple(coerce(a, v, where) for a, v in zip(args, items))
            inner = args[0] if args else Any
            out = [coerce(inner, v, where) for v in items]
            return tuple(out) if origin is tuple else out
        if origin is dict or tp is dict:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if tp is Any:
            return _auto(value)
    except (ValueError, TypeError, json.JSONDecodeError):
        pass
    else:
        if not isinstance(tp, type) or isinstance(value, tp):
            return value
    raise UserError(f"{where} expects {_type_name(tp)}, got {_show(value)}")


def _as_list(value: Any) -> list[Any]:
    """A YAML/JSON list, or a comma-separated string ("4,10,20")."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = json.loads(text)
            if not isinstance(parsed, list):
                raise ValueError
            return parsed
        return [x.strip() for x in text.split(",") if x.strip()]
    raise ValueError


def _auto(value: Any) -> Any:
    """An untyped `--opt` value: JSON if it parses (numbers, true/false, lists), else the string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _type_name(tp: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text", dict: "a mapping"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis) or "values"
        return f"a list of {inner} (e.g. 1,2 or [1, 2])"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_bounds(f: Field, value: Any, where: str) -> None:
    """Bounds and choices of one field's (coerced) value."""
    if value is None:
        return
    choices = choices_of(f)
    if choices is not None and value not in choices:
        raise UserError(f"unknown {where} {_show(value)}; choose one of: {', '.join(map(str, choices))}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where} must be a finite number, got {value}")
    lo, gt = f.metadata.get("lo"), f.metadata.get("gt")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise UserError(f"{where} must be >= {lo:g}, got {value:g}")
        if gt is not None and value <= gt:
            raise UserError(f"{where} must be > {gt:g}, got {value:g}")


def convert(cls: type, name: str, value: Any, where: str) -> Any:
    """Coerce and check one field of dataclass `cls` (custom `parse` first)."""
    f = fields_of(cls)[name]
    parse = f.metadata.get("parse")
    if parse is not None and value is not None:
        try:
            value = parse(value)
        except (ValueError, TypeError):
            raise UserError(f"{where}: cannot read {_show(value)} ({f.metadata.get('help') or name})") from None
    else:
        value = coerce(field_type(cls, name), value, where)
    check_bounds(f, value, where)
    return value


def build(cls: type, values: dict[str, Any], where: str, extra: Callable[[str, Any], Any] | None = None,
          flags: bool = False) -> Any:
    """An instance of dataclass `cls` from raw `values` (unknown keys: error listing the valid ones, unless
    `extra(key, value)` accepts them; its results go into the field named `extra` if the class has one).
    `flags`: values came from the command line, so messages name them as flags (--warmup-iters)."""
    known = fields_of(cls)
    kwargs: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in values.items():
        if key in known and key != "extra":
            kwargs[key] = convert(cls, key, value, flag_for(known[key]) if flags else f"{where} {key}")
        elif key == "extra" and "extra" in known and isinstance(value, dict) and extra is not None:
            extras.update({k: extra(k, v) for k, v in value.items()})  # a typed config read back
        elif extra is not None:
            extras[key] = extra(key, value)
        else:
            valid = ", ".join(n for n in known if n != "extra") or "(none)"
            raise UserError(f"{where}: unknown key {key!r}; valid: {valid}")
    if extras:
        kwargs["extra"] = extras
    return cls(**kwargs)


def check_all(obj: Any) -> None:
    """Bounds and choices of every field of a dataclass instance built in Python (bypassing `convert`)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        if isinstance(value, int) and field_type(type(obj), f.name) in (float, typing.Optional[float]):
            value = float(value)
        check_bounds(f, value, flag_for(f))


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'} (values stay text: the target dataclass types them)."""
    out: dict[str, str] = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """name, type, default and help of every field: for `benchmark tasks` and docs."""
    out = []
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
        out.append({"name": f.name, "type": _type_name(field_type(cls, f.name)), "default": default,
                    "help": f.metadata.get("help", "")})
    return out


# ---- argparse from dataclasses -------------------------------------------------------------------------------------
def flag_for(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type, *, skip: tuple[str, ...] = (),
                  no_defaults: bool = False, group: str | None = None) -> list[str]:
    """One argparse option per CLI field of `cls` (type coercion happens later, in `convert`).

    `no_defaults`: every option defaults to None so only what the user typed overrides a config file (sweep).
    Returns the destinations added.
    """
    target = parser.add_argument_group(group) if group else parser
    dests = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True) or f.name == "extra":
            continue
        tp, _ = _strip_optional(field_type(cls, f.name))
        default = None if no_defaults or f.default is MISSING else f.default
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        if choices is not None and not callable(choices):
            help_text += f" [{' | '.join(map(str, choices))}]"
        if default is not None and tp is not bool:
            help_text += f" (default: {default})"
        dest = f"{cls.__name__}.{f.name}"
        if tp is bool:
            target.add_argument(flag_for(f), dest=dest, default=default, help=help_text,
                                action=argparse.BooleanOptionalAction)
        else:
            target.add_argument(flag_for(f), dest=dest, default=default, help=help_text, metavar=_metavar(tp))
        dests.append(dest)
    return dests


def _metavar(tp: Any) -> str:
    return {int: "N", float: "X", str: "TEXT"}.get(tp, "VALUE")


def values_from(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The raw values argparse collected for `cls`'s fields (None: not given)."""
    prefix = cls.__name__ + "."
    return {k[len(prefix):]: v for k, v in vars(ns).items() if k.startswith(prefix) and v is not None}
