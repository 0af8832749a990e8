"""Config helpers shared by every stage: dataclass <-> JSON, preset registry, `--set key=value`
overrides, and `--dry-run` printing with each field's attribute docstring.

Convention (sparsify, torchtitan): one `@dataclass` per stage, a docstring under every field, presets are
plain functions returning a config; the resolved config is saved as JSON beside every artifact.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import textwrap
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from lmlab.errors import ConfigError

T = TypeVar("T")

_PRESETS: dict[str, dict[str, Callable[[], Any]]] = {}


def preset(stage: str, name: str | None = None):
    """Decorator: register a preset function `fn() -> Config` under `stage` (name defaults to fn's name)."""

    def wrap(fn):
        _PRESETS.setdefault(stage, {})[name or fn.__name__] = fn
        return fn

    return wrap


def presets(stage: str) -> list[str]:
    return sorted(_PRESETS.get(stage, {}))


def get_preset(stage: str, name: str):
    fns = _PRESETS.get(stage, {})
    if name not in fns:
        raise ConfigError(f"unknown {stage} preset '{name}'", f"choose one of: {', '.join(sorted(fns))}")
    return fns[name]()


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], d: dict) -> T:
    """Build dataclass `cls` from a dict, recursing into nested dataclasses; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}",
                          f"valid fields: {', '.join(sorted(names))}")
    kw = {}
    for k, v in d.items():
        t = hints[k]
        kw[k] = from_dict(t, v) if dataclasses.is_dataclass(t) and isinstance(v, dict) else v
    return cls(**kw)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2)


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Apply `key=value` (or `section.key=value`) strings; values parsed as JSON, else kept as strings."""
    d = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value", "write e.g. --set lr=3e-4")
        key, raw = item.split("=", 1)
        key = key.strip()
        _set_path(d, key, _typed(key, raw, _field_type(type(cfg), key), _get_path(d, key)))
    return from_dict(type(cfg), d)


def set_fields(cfg: T, values: dict[str, Any]) -> T:
    """`cfg` with every value that is not None set (keys may be dotted: "sandbox.timeout"). CLI options built
    with `option` are None when not given, so only the options a user typed change the config."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return cfg
    d = to_dict(cfg)
    for key, v in values.items():
        _set_path(d, key, v)
    return from_dict(type(cfg), d)


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not None (options not given fall back to the callee's defaults)."""
    return {k: v for k, v in values.items() if v is not None}


def _set_path(d: dict, key: str, value: Any) -> None:
    node, parts = d, key.split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise ConfigError(f"unknown config section '{p}' in '{key}'", "see --dry-run for the fields")
        node = node[p]
    if parts[-1] not in node:
        raise ConfigError(f"unknown config field '{key}'", f"fields: {', '.join(sorted(node))}")
    node[parts[-1]] = value


def _get_path(d: dict, key: str) -> Any:
    for p in key.split("."):
        d = d.get(p) if isinstance(d, dict) else None
    return d


def _field_type(cls: type, key: str) -> Any:
    """The annotation of dotted field `key` of dataclass `cls` (Any when there is no such field: _set_path then
    names the problem)."""
    t: Any = cls
    for p in key.split("."):
        hints = typing.get_type_hints(t) if dataclasses.is_dataclass(t) else {}
        if p not in hints:
            return Any
        t = hints[p]
    return t


class _Mismatch(Exception):
    pass


def _typed(key: str, raw: str, t: Any, current: Any) -> Any:
    """`--set key=raw` as a value of annotation `t`: JSON (else the raw text) checked and converted (an int is
    fine for a float field, an integral float for an int field, "a,b" for a list field); a mismatch is a one-line
    ConfigError naming the field, the type it takes and an example."""
    try:
        return _coerce(_parse_value(raw), raw, t)
    except _Mismatch:
        pass
    if current is None or isinstance(current, dict):
        example = _type_example(t)
    elif isinstance(current, (list, tuple)):
        example = ",".join(map(str, current)) if current else _type_example(t)
    else:
        example = str(current).lower() if isinstance(current, bool) else str(current)
    raise ConfigError(f"--set {key}={raw}: {key} takes {_describe_type(t)}",
                      f"e.g. --set {key}={example}" if example else "see --dry-run for the fields")


def _coerce(v: Any, raw: str | None, t: Any) -> Any:
    """`v` (parsed from `raw`, the user's text; None inside containers) as annotation `t`, or _Mismatch."""
    import types

    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is Any or t is object:
        return v
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        for a in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):  # str: the last resort
            try:
                return _coerce(v, raw, a)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if any(v == a and type(v) is type(a) for a in args):
            return v
        raise _Mismatch
    if t is type(None):
        if v is None:
            return None
        raise _Mismatch
    if t is bool:
        if isinstance(v, bool):
            return v
        raise _Mismatch
    if t is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise _Mismatch
    if t is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise _Mismatch
    if t is str:
        if isinstance(v, str):
            return v
        if raw is not None and v is not None:  # "--set name=123": the text as typed
            return raw
        raise _Mismatch
    if origin in (list, tuple, set, frozenset) or t in (list, tuple):
        if isinstance(v, str) and raw is not None:  # --set domains=general,medical
            items = [x.strip() for x in v.split(",")]
            if not all(items):
                raise _Mismatch
            v = [_parse_value(x) for x in items]
        elif not isinstance(v, list):
            if raw is None or v is None or isinstance(v, dict):
                raise _Mismatch
            v = [v]
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(v) != len(args):
                raise _Mismatch
            return tuple(_coerce(x, None, a) for x, a in zip(v, args))
        item_t = args[0] if args else Any
        out = [_coerce(x, None, item_t) for x in v]
        return tuple(out) if origin is tuple or t is tuple else out
    if origin is dict or t is dict or dataclasses.is_dataclass(t):
        if isinstance(v, dict):
            return v
        raise _Mismatch
    return v  # any other annotation (Path, ...): as parsed


def _describe_type(t: Any, plural: bool = False) -> str:
    import types

    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe_type(a, plural) for a in args if a is not type(None)]
        return " or ".join(parts + (["null"] if type(None) in args else []))
    if origin is typing.Literal:
        return "one of " + " | ".join(map(str, args))
    if origin in (list, tuple, set, frozenset):
        return f"a list of {_describe_type(args[0], True) if args else 'values'} (JSON [..] or comma-separated)"
    if dataclasses.is_dataclass(t):
        return "a section: set its fields one by one (section.field=value)"
    names = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
             float: ("a number", "numbers"), str: ("a string", "strings"), dict: ("a JSON object", "JSON objects")}
    return names.get(t, (getattr(t, "__name__", str(t)),) * 2)[plural]


def _type_example(t: Any) -> str:
    import types

    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        return _type_example(next((a for a in args if a is not type(None)), type(None)))
    if origin is typing.Literal:
        return str(args[0])
    if origin in (list, tuple, set, frozenset):
        one = _type_example(args[0]) if args else "a"
        return f"{one},{one}" if one else ""
    return {bool: "true", int: "1", float: "0.5", str: "text"}.get(t, "")


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        low = raw.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return raw


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right under each field)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    from lmlab.cli_options import class_fields

    return {k: f.doc for k, f in class_fields(tree.body[0], None).items() if f.doc}  # type: ignore[arg-type]


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Rows (name, value, doc) for --dry-run, recursing into nested dataclasses."""
    rows = []
    docs = field_docs(type(cfg))
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            rows += describe(v, prefix + f.name + ".")
        else:
            rows.append((prefix + f.name, v, docs.get(f.name, "")))
    return rows


def print_dry_run(cfg: Any, title: str = "resolved config") -> None:
    """Print the resolved config as a table (stderr) and as JSON (stdout)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in ("field", "value", "meaning"):
        table.add_column(col, overflow="fold")
    for name, value, doc in describe(cfg):
        table.add_row(name, json.dumps(value), doc)
    Console(stderr=True).print(table)
    print(to_json(cfg))


def check_literal(cfg: Any) -> None:
    """Validate every `Literal[...]` field of a dataclass (call from __post_init__)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        t = hints[f.name]
        if typing.get_origin(t) is typing.Literal:
            allowed = typing.get_args(t)
            v = getattr(cfg, f.name)
            if v not in allowed:
                raise ConfigError(f"{f.name}={v!r} is not allowed", f"choose one of {', '.join(map(repr, allowed))}")


__all__ = ["preset", "presets", "get_preset", "to_dict", "from_dict", "to_json", "apply_overrides", "set_fields",
           "given", "field_docs", "describe", "print_dry_run", "check_literal"]
