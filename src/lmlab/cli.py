"""`lmlab <stage> <verb>`: a thin typer shell over importable functions.

Each stage owns a `cli.py` defining a typer sub-app; this root only mounts them and turns UserError into
one clean line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

import lmlab
from lmlab.errors import UserError

_root = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                    help="lmlab: train, harvest, meta-model, scale and evaluate language models.")


def _version(value: bool) -> None:
    if value:
        print(f"lmlab {lmlab.__version__}")
        raise typer.Exit()


@_root.callback()
def _root_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")) -> None:
    pass


# stage name -> (module, attribute, help), in `lmlab --help` order. "demo" is a command, not a sub-app.
STAGES = {
    "data": ("lmlab.data.cli", "app", "Corpus, tokenizer and token shards."),
    "lm": ("lmlab.lm.cli", "app", "Train Llama-architecture LMs from scratch; export to HF; sample."),
    "acts": ("lmlab.acts.cli", "app", "Harvest residual-stream activations into a sharded store."),
    "glp": ("lmlab.glp.cli", "app", "Generative meta-models of activations (GLP)."),
    "sae": ("lmlab.sae.cli", "app", "Sparse autoencoders (TopK / BatchTopK + AuxK) on activation stores."),
    "filter": ("lmlab.filtering.cli", "app",
               "Token-level data filtering: distilled classifier (biLM + probe) from SAE token labels."),
    "scaling": ("lmlab.scaling.cli", "app",
                "Scaling laws: sweeps, fit, predict, allocate, critical batch, compute slowdown."),
    "eval": ("lmlab.evals.cli", "app", "Evaluations: HumanEval (sandboxed pass@k), few-shot (GPT-3 protocol)."),
    "demo": ("lmlab.demo", "demo_command", ""),
}
_mounted: list[str] = []


def _mount(names=None) -> typer.Typer:
    """Add the named stages (default: all) to the root app, once each. Each stage's CLI module builds its
    options when imported (~10 ms apiece, and typer turns every command into a click command on each run), so
    `lmlab eval humaneval ...` mounts only `eval`; `lmlab --help`, an unknown command or `lmlab.cli.app`
    mount everything."""
    import importlib

    for name in STAGES if names is None else names:
        if name in _mounted:
            continue
        module, attr, help_text = STAGES[name]
        obj = getattr(importlib.import_module(module), attr)
        if name == "demo":
            _root.command("demo")(obj)
        else:
            _root.add_typer(obj, name=name, help=help_text)
        _mounted.append(name)
    return _root


def __getattr__(name: str):
    # `from lmlab.cli import app` (tests, embedding): the root with every stage mounted (PEP 562)
    if name == "app":
        return _mount()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stage_of(argv: list[str]) -> str | None:
    """The stage a command line names (its first word that is not an option), if it is one of STAGES."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in STAGES else None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Bad input (a UserError, a usage error, a missing or unreadable file, a full disk) is one line
    `error: <message> — <hint>` on stderr and exit code 2; a bug (any other exception) keeps its traceback."""
    stage = _stage_of(sys.argv[1:] if argv is None else list(argv))
    app = _mount(None if stage is None else [stage])
    try:
        rc = app(args=argv, standalone_mode=False)  # click returns (not raises) Exit codes in this mode
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except UserError as e:
        _fail(str(e))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `lmlab ... | head`: the reader left; nothing to report
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as e:
        # recent typer vendors click (typer._click): find its classes in typer's own class hierarchy
        usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
        click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
        if type(e).__name__ == "NoArgsIsHelpError":  # `lmlab lm`: the help text is the answer
            e.show()  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        if isinstance(e, usage_error):
            ctx = e.ctx  # type: ignore[attr-defined]
            _fail(f"{_one_line(e.format_message()).rstrip('.')} — see '{ctx.command_path if ctx else 'lmlab'} --help'",
                  e.exit_code)  # type: ignore[attr-defined]
        if isinstance(e, click_error):
            _fail(_one_line(e.format_message()), e.exit_code)  # type: ignore[attr-defined]
        if isinstance(e, OSError) and (line := _os_error_line(e)):
            _fail(line)
        raise


def _fail(line: str, code: int = 2) -> None:
    print(f"error: {line}", file=sys.stderr)
    sys.exit(code)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error_line(e: OSError) -> str | None:
    """One line for an OSError that comes from the user's environment (a missing or unreadable path, a full or
    read-only disk); its traceback goes to a file the line names, in case it was a bug after all. None for other
    OSErrors (they keep their traceback)."""
    import errno
    import tempfile
    import traceback

    hints = {errno.ENOENT: "check the path", errno.ENOTDIR: "check the path", errno.EISDIR: "pass a file",
             errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
             errno.ENOSPC: "free disk space", errno.EROFS: "write somewhere writable", errno.EIO: "check the disk"}
    if getattr(errno, "EDQUOT", None) is not None:
        hints[errno.EDQUOT] = "free disk space (quota)"
    if e.errno not in hints:
        return None
    where = f": {e.filename}" if e.filename is not None else ""
    detail = ""
    try:
        with tempfile.NamedTemporaryFile("w", prefix="lmlab-error-", suffix=".txt", delete=False) as f:
            traceback.print_exception(e, file=f)
        detail = f" (traceback: {f.name})"
    except OSError:
        pass
    return f"{e.strerror or _one_line(str(e))}{where} — {hints[e.errno]}{detail}"
