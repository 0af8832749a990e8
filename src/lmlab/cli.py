"""`lmlab <stage> <verb>`: a thin typer shell over importable functions.

Each stage owns a `cli.py` defining a typer sub-app; this root only mounts them and turns UserError into
one clean line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

import lmlab
from lmlab.errors import UserError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="lmlab: train, harvest, meta-model, scale and evaluate language models.")


def _version(value: bool) -> None:
    if value:
        print(f"lmlab {lmlab.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    pass


def _mount() -> None:
    from lmlab.acts.cli import app as acts_app
    from lmlab.data.cli import app as data_app
    from lmlab.demo import demo_command
    from lmlab.evals.cli import app as eval_app
    from lmlab.filtering.cli import app as filter_app
    from lmlab.glp.cli import app as glp_app
    from lmlab.lm.cli import app as lm_app
    from lmlab.sae.cli import app as sae_app
    from lmlab.scaling.cli import app as scaling_app

    app.add_typer(data_app, name="data", help="Corpus, tokenizer and token shards.")
    app.add_typer(lm_app, name="lm", help="Train Llama-architecture LMs from scratch; export to HF; sample.")
    app.add_typer(acts_app, name="acts", help="Harvest residual-stream activations into a sharded store.")
    app.add_typer(glp_app, name="glp", help="Generative meta-models of activations (GLP).")
    app.add_typer(sae_app, name="sae", help="Sparse autoencoders (TopK / BatchTopK + AuxK) on activation stores.")
    app.add_typer(filter_app, name="filter",
                  help="Token-level data filtering: distilled classifier (biLM + probe) from SAE token labels.")
    app.add_typer(scaling_app, name="scaling",
                  help="Scaling laws: sweeps, fit, predict, allocate, critical batch, compute slowdown.")
    app.add_typer(eval_app, name="eval", help="Evaluations: HumanEval (sandboxed pass@k), few-shot (GPT-3 protocol).")
    app.command("demo")(demo_command)


_mount()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Bad input (a UserError, a usage error, a missing or unreadable file, a full disk) is one line
    `error: <message> — <hint>` on stderr and exit code 2; a bug (any other exception) keeps its traceback."""
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
