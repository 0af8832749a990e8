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
    from lmlab.glp.cli import app as glp_app
    from lmlab.lm.cli import app as lm_app
    from lmlab.scaling.cli import app as scaling_app

    app.add_typer(data_app, name="data", help="Corpus, tokenizer and token shards.")
    app.add_typer(lm_app, name="lm", help="Train Llama-architecture LMs from scratch; export to HF; sample.")
    app.add_typer(acts_app, name="acts", help="Harvest residual-stream activations into a sharded store.")
    app.add_typer(glp_app, name="glp", help="Generative meta-models of activations (GLP).")
    app.add_typer(scaling_app, name="scaling",
                  help="Scaling laws: sweeps, fit, predict, allocate, critical batch, compute slowdown.")
    app.add_typer(eval_app, name="eval", help="Evaluations: HumanEval (sandboxed pass@k), few-shot (GPT-3 protocol).")
    app.command("demo")(demo_command)


_mount()


def main(argv: list[str] | None = None) -> None:
    try:
        rc = app(args=argv, standalone_mode=False)  # click returns (not raises) Exit codes in this mode
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # click usage errors carry their own exit code and message
        # recent typer vendors click (typer._click): find ClickException in typer's own class hierarchy
        click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
        if isinstance(e, click_error):
            e.show()
            sys.exit(e.exit_code)
        raise
