"""CLI options stated once: an option's default and help live in the config dataclass (or the function
signature) it sets, and the CLI reads them from the module's SOURCE, so that `lmlab --help` and `import
lmlab.cli` import no torch (most config modules import it at the top).

An option's value is None when it is not given (the config's own default, or the preset's value, then
applies: `config.set_fields`); its help is the field's attribute docstring plus the choices of a Literal
field; the default it shows is the dataclass's. Only constant expressions are evaluated (literals,
arithmetic, float()/int()/list(), module-level constants, `from X import` re-exports); anything else shows
no default. tests/test_cli.py checks every reference resolves and every default read equals the real one.
Example:
    max_steps: int = option("lmlab.lm.train:TrainConfig", "max_steps", shown="the preset's")
    ... cfg = set_fields(get_preset("lm", preset), {"max_steps": max_steps})
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
from typing import Any


@dataclasses.dataclass(frozen=True)
class SourceField:
    """One dataclass field (or function parameter) as written in the source."""

    default: Any
    """The default when it is a constant expression, else dataclasses.MISSING (also: no default)."""
    doc: str = ""
    """The attribute docstring, whitespace-normalised ("" for function parameters)."""
    choices: tuple = ()
    """The values of a `Literal[...]` annotation."""


UNRESOLVED: list[str] = []
"""`module:Name.field` references that `option` could not find in the source (the tests keep this empty)."""


@functools.cache
def source_fields(ref: str) -> dict[str, SourceField]:
    """Fields of the dataclass, or parameters of the function, `ref` = "package.module:Name", read from the
    module's source without importing it; `from X import Name` re-exports are followed. {} if not found."""
    module, name = ref.split(":")
    found = _find_definition(module, name)
    if found is None:
        return {}
    node, mod = found
    if isinstance(node, ast.ClassDef):
        return class_fields(node, mod)
    a = node.args  # type: ignore[attr-defined]
    pos = a.posonlyargs + a.args
    pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults)) + list(zip(a.kwonlyargs, a.kw_defaults))
    return {arg.arg: SourceField(_constant(d, mod)) for arg, d in pairs if d is not None}


def option(ref: str, name: str, *param_decls: str, help: str | None = None, note: str = "",
           shown: str | None = None, required: bool = False, doc_from: str | None = None, **kw: Any):
    """A typer option for field `name` of `ref` (see `source_fields`): default None = "not given" (or required),
    help = the field's docstring (or that of the same field of `doc_from`, or `help`) + `note` + the choices of a
    Literal field; the default shown is the field's (or `shown`, e.g. "the preset's"). Extra keywords go to
    typer.Option."""
    import typer

    f = source_fields(ref).get(name)
    if f is None:
        UNRESOLVED.append(f"{ref}.{name}")
        f = SourceField(dataclasses.MISSING)
    if doc_from is not None:
        d = source_fields(doc_from).get(name)
        if d is None:
            UNRESOLVED.append(f"{doc_from}.{name}")
        f = dataclasses.replace(f, doc=d.doc if d else "", choices=f.choices or (d.choices if d else ()))
    text = " ".join(t for t in (f.doc if help is None else help, note) if t)
    if f.choices and not all(str(c) in text for c in f.choices):
        text += f" One of: {' | '.join(map(str, f.choices))}."
    shown = None if required else shown if shown is not None else _show(f.default)
    if shown:
        text += f" [default: {shown}]"
    # typer renders help as rich markup: escape "[word...]" as rich.markup.escape does (rich is not imported here)
    text = re.sub(r"(\\*)(\[[a-z#/@][^[]*?])", lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    return typer.Option(... if required else None, *param_decls, help=text, show_default=False, **kw)


_KIND_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a value", "values")}


def parse_list(text: str | None, option: str, kind: type = str, *, minimum: float | None = None,
               maximum: float | None = None, min_open: bool = False, max_open: bool = False,
               choices: tuple | list | None = None, example: str | None = None) -> list | None:
    """The comma-separated values of `option` (e.g. "--steps") as `kind` (int, float or str), checked before any
    work starts. None when the option was not given (None); an empty list, a value of the wrong type, a value
    outside [minimum, maximum] (open ends with min_open/max_open) or not in `choices` is a ConfigError naming the
    option and the values it accepts. Whitespace around items is ignored; floats must be finite."""
    if text is None:
        return None
    items = [x.strip() for x in str(text).split(",")]
    if not any(items):
        _bad(option, text, "is empty", kind, minimum, maximum, min_open, max_open, choices, example, many=True)
    if not all(items):
        _bad(option, text, "has an empty item", kind, minimum, maximum, min_open, max_open, choices, example,
             many=True)
    return [_parse_one(x, text, option, kind, minimum, maximum, min_open, max_open, choices, example, True)
            for x in items]


def parse_number(text: str | None, option: str, kind: type = int, *, minimum: float | None = None,
                 maximum: float | None = None, min_open: bool = False, max_open: bool = False,
                 also: tuple = (), example: str | None = None) -> Any:
    """One value of `option` given as text, checked like `parse_list`'s items; a string in `also` (e.g. "all")
    is returned as it is. None when not given."""
    if text is None or text in also:
        return text
    return _parse_one(str(text).strip(), text, option, kind, minimum, maximum, min_open, max_open, None, example,
                      False, also)


def check_number(value: Any, option: str, *, minimum: float | None = None, maximum: float | None = None,
                 min_open: bool = False, max_open: bool = False) -> Any:
    """`value` (already typed, e.g. a typer int/float option) if it lies in the range, else a ConfigError naming
    `option` and the range. None passes (the option was not given)."""
    if value is not None and not _in_range(value, minimum, maximum, min_open, max_open):
        _bad(option, value, f"{value!r} is {_range_phrase(minimum, maximum, min_open, max_open, False)}",
             type(value), minimum, maximum, min_open, max_open, None, None, many=False)
    return value


def _parse_one(item: str, text: Any, option: str, kind: type, minimum, maximum, min_open, max_open, choices,
               example, many: bool, also: tuple = ()) -> Any:
    import math

    args = (kind, minimum, maximum, min_open, max_open, choices, example)
    try:
        v = kind(item)
    except ValueError:
        _bad(option, text, f"{item!r} is not {_KIND_NAMES.get(kind, ('a ' + kind.__name__,))[0]}", *args, many=many,
             also=also)
    if kind is float and not math.isfinite(v):
        _bad(option, text, f"{item!r} is not a finite number", *args, many=many, also=also)
    if choices is not None and v not in choices:
        _bad(option, text, f"{item!r} is not one of them", *args, many=many, also=also)
    if not _in_range(v, minimum, maximum, min_open, max_open):
        _bad(option, text, f"{item} is {_range_phrase(minimum, maximum, min_open, max_open, False)}", *args,
             many=many, also=also)
    return v


def _in_range(v, minimum, maximum, min_open, max_open) -> bool:
    if minimum is not None and (v <= minimum if min_open else v < minimum):
        return False
    return maximum is None or (v < maximum if max_open else v <= maximum)


def _range_phrase(minimum, maximum, min_open, max_open, accepted: bool) -> str:
    """"outside (0, 1]" / "not >= 1" (accepted=False), "in (0, 1]" / ">= 1" (accepted=True)."""
    lo, hi = _show_one(minimum) if minimum is not None else None, _show_one(maximum) if maximum is not None else None
    if lo is not None and hi is not None:
        return f"{'in' if accepted else 'outside'} {'(' if min_open else '['}{lo}, {hi}{')' if max_open else ']'}"
    bound = f"{'>' if min_open else '>='} {lo}" if lo is not None else f"{'<' if max_open else '<='} {hi}"
    return bound if accepted else f"not {bound}"


def _bad(option, text, problem, kind, minimum, maximum, min_open, max_open, choices, example, many: bool,
         also: tuple = ()):
    from lmlab.errors import ConfigError

    what = _KIND_NAMES.get(kind, ("a value", "values"))[1 if many else 0]
    accepted = f"comma-separated {what}" if many else what
    if choices is not None:
        accepted += f" from {' | '.join(map(str, choices))}"
    if minimum is not None or maximum is not None:
        accepted += f" {_range_phrase(minimum, maximum, min_open, max_open, True)}"
    if also:
        accepted += f" (or {' | '.join(also)})"
    if example is None:
        example = _example(kind, minimum, maximum, min_open, max_open, many)
    shown = f" {text!r}" if isinstance(text, str) else ""
    hint = f"{option} takes {accepted}" + (f", e.g. {option} {example}" if example else "")
    raise ConfigError(f"{option}{shown}{' ' if problem.startswith(('is ', 'has ')) else ': '}{problem}", hint)


def _example(kind, minimum, maximum, min_open, max_open, many: bool) -> str | None:
    """Values inside the range for a hint: "1,2" (int >= 1), "0.5,1" (float in (0, 1]), ..."""
    if kind is int:
        a = 1 if minimum is None else int(minimum) + (1 if min_open else 0)
        vals = [a, a + 1] if maximum is None or a + 1 <= maximum - (1 if max_open else 0) else [a]
    elif kind is float:
        if minimum is not None and maximum is not None:
            vals = [(minimum + maximum) / 2] + ([] if max_open else [maximum])
        elif minimum is not None:
            vals = [minimum + 1 if min_open else minimum, (minimum + 1) * 10]
        else:
            vals = [0.5, 1.0] if maximum is None or maximum >= 1 else [maximum - 1]
    else:
        return None
    return ",".join(map(_show_one, vals if many else vals[:1]))


def _show(v: Any) -> str | None:
    if v is dataclasses.MISSING or v is None or v == "":
        return None
    if isinstance(v, (list, tuple)):
        return ",".join(map(_show_one, v))
    return _show_one(v)


def _show_one(v: Any) -> str:
    r = repr(v) if isinstance(v, float) else str(v)
    return f"{v:.6g}".replace("e+0", "e").replace("e-0", "e-") if isinstance(v, float) and len(r) > 10 else r


def _module_file(module: str):
    import importlib.util
    from pathlib import Path

    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)  # the top package only: subpackages' __init__ may be heavy
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


@functools.cache
def _module_source(module: str) -> str | None:
    path = _module_file(module)
    return path.read_text() if path is not None else None


@functools.cache
def _module_tree(module: str) -> ast.Module:
    return ast.parse(_module_source(module) or "")


def _find_definition(module: str, name: str, depth: int = 0):
    """(ClassDef | FunctionDef, defining module) of `name` in `module`, following re-exports."""
    src = _module_source(module)
    if src is None or depth > 8:
        return None
    m = re.search(rf"^(?:async\s+)?(?:class|def)\s+{re.escape(name)}\b", src, re.MULTILINE)
    if m:  # parse only the definition (fast), the whole module if the cut is not valid on its own
        lines = src[m.start():].splitlines()
        end = next((i for i, ln in enumerate(lines[1:], 1)
                    if ln.strip() and not ln[0].isspace() and not ln.startswith(("#", ")"))), len(lines))
        try:
            return ast.parse("\n".join(lines[:end])).body[0], module
        except SyntaxError:
            pass
        for node in _module_tree(module).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
                return node, module
    origin = _import_origin(module, name)
    return _find_definition(*origin, depth + 1) if origin else None


def _import_origin(module: str, name: str) -> tuple[str, str] | None:
    """(module, name) that a module-level `from X import name` of `module` refers to."""
    src = _module_source(module) or ""
    for m in re.finditer(r"^from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", src, re.MULTILINE):
        for item in re.sub(r"#[^\n]*", "", m.group(3)).strip().strip("()").split(","):
            orig, _, alias = (" ".join(item.split())).partition(" as ")
            if (alias or orig) != name:
                continue
            level, parts = len(m.group(1)), module.split(".")
            if level:  # relative: from the module's package (the module itself when it is a package)
                parts = parts[: len(parts) - level + str(_module_file(module)).endswith("__init__.py")]
            else:
                parts = []
            return ".".join(parts + ([m.group(2)] if m.group(2) else [])), orig
    return None


def _constant(node: ast.expr | None, module: str | None, depth: int = 0) -> Any:
    """Value of a constant expression (literals, arithmetic, float()/int()/list(), module-level constants)."""
    if node is None:
        return dataclasses.MISSING
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    ev = functools.partial(_constant, module=module, depth=depth)
    ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b, ast.USub: lambda a: -a, ast.UAdd: lambda a: a}
    try:
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            left, right = ev(node.left), ev(node.right)
            if dataclasses.MISSING not in (left, right):
                return ops[type(node.op)](left, right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in ops:
            v = ev(node.operand)
            return v if v is dataclasses.MISSING else ops[type(node.op)](v)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("float", "int", "list") and len(node.args) == 1 and not node.keywords):
            v = ev(node.args[0])
            return v if v is dataclasses.MISSING else {"float": float, "int": int, "list": list}[node.func.id](v)
        elif isinstance(node, ast.Name) and module is not None and depth < 8:
            return _module_constant(module, node.id, depth + 1)
    except (ArithmeticError, TypeError, ValueError):
        pass
    return dataclasses.MISSING


def _module_constant(module: str, name: str, depth: int) -> Any:
    m = re.search(rf"^{re.escape(name)}\s*(?::[^=\n]*)?=(.*)$", _module_source(module) or "", re.MULTILINE)
    if m:  # a one-line assignment: parse just that line
        try:
            return _constant(ast.parse(m.group(1).strip(), mode="eval").body, module, depth)
        except SyntaxError:
            pass
        for node in _module_tree(module).body:
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return _constant(node.value, module, depth)  # type: ignore[union-attr]
    origin = _import_origin(module, name)
    return _module_constant(origin[0], origin[1], depth + 1) if origin and depth < 8 else dataclasses.MISSING


def class_fields(node: ast.ClassDef, module: str | None) -> dict[str, SourceField]:
    """Annotated fields of a dataclass body: default (when `module` is given), docstring, Literal choices."""
    body, out = node.body, {}
    for a, b in zip(body, body[1:] + [None]):  # type: ignore[operator]
        if not (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)):
            continue
        doc = ""
        if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
            doc = " ".join(b.value.value.split())
        out[a.target.id] = SourceField(_field_default(a.value, module) if module else dataclasses.MISSING, doc,
                                       _literal_choices(a.annotation))
    return out


def _field_default(value: ast.expr | None, module: str) -> Any:
    if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) == "field":
        kw = {k.arg: k.value for k in value.keywords}
        if "default" in kw:
            return _constant(kw["default"], module)
        factory = kw.get("default_factory")
        if isinstance(factory, ast.Lambda):
            return _constant(factory.body, module)
        if isinstance(factory, ast.Name) and factory.id in ("list", "dict", "tuple", "set"):
            return {"list": [], "dict": {}, "tuple": (), "set": set()}[factory.id]
        return dataclasses.MISSING
    return _constant(value, module)


def _literal_choices(ann: ast.expr) -> tuple:
    if isinstance(ann, ast.Subscript) and getattr(ann.value, "id", getattr(ann.value, "attr", "")) == "Literal":
        elts = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        try:
            return tuple(ast.literal_eval(e) for e in elts)
        except ValueError:
            return ()
    return ()


def parse_log(values: list[str] | None) -> list[str] | None:
    """The trackers of a repeatable, comma-separated `--log` (tensorboard, wandb), checked; None when not given."""
    from lmlab.runs.tracking import BACKENDS

    if not values:
        return None
    out: list[str] = []
    for v in values:
        out += [b for b in parse_list(v, "--log", str, choices=BACKENDS, example="tensorboard") if b not in out]
    return out
