"""`lmlab eval <task>`: each evaluation registers its command(s) on this sub-app."""

from __future__ import annotations

import typer

from lmlab.evals.fewshot.cli import contamination_cmd, fewshot_cmd
from lmlab.evals.humaneval.cli import humaneval_cmd

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("humaneval")(humaneval_cmd)
app.command("fewshot")(fewshot_cmd)
app.command("contamination")(contamination_cmd)
