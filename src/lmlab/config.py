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
        _set_path(d, key, _parse_value(raw))
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
