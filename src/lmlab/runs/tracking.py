"""Experiment tracking beside metrics.jsonl: TensorBoard and Weights & Biases, both optional.

A trainer opens one `Tracker` from its config's `log` list (["tensorboard", "wandb"], [] = none) after
`start_run`, logs each metrics.jsonl row to it (`log(step, row)`; eval rows under "eval/"), and closes it when
the run ends or dies. metrics.jsonl stays the record the rest of lmlab reads; trackers are views of it.
    tensorboard   torch.utils.tensorboard.SummaryWriter into RUN/tb/; scalars "train/<key>", "eval/<key>";
                  the resolved config as text ("config"). A resumed run appends to the same folder with
                  purge_step = the checkpoint's step + 1, so the re-run steps replace the old ones (as metrics.jsonl).
    wandb         wandb.init(dir=RUN, mode="offline" unless WANDB_MODE says otherwise, config=resolved config);
                  the run id is kept in RUN/wandb-id.txt so a resume continues the same wandb run.
Only rank 0 tracks under torchrun (other ranks get a tracker that does nothing). A backend whose package is
missing is a one-line ConfigError naming the extra to install, raised by `check` before the run writes anything.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

BACKENDS = ("tensorboard", "wandb")
INSTALL = "pip install 'lmlab[tracking]'"
_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check(backends: list[str] | tuple[str, ...]) -> list[str]:
    """The backends, validated: unknown names and missing packages are one-line ConfigErrors."""
    import importlib

    from lmlab.errors import ConfigError

    for b in backends:
        if b not in BACKENDS:
            raise ConfigError(f"unknown tracker {b!r} in log",
                              f"choose from {', '.join(BACKENDS)} (e.g. --log tensorboard)")
    for b in backends:
        try:
            importlib.import_module(_MODULES[b])
        except ImportError:
            raise ConfigError(f"--log {b} needs the {_MODULES[b]} package, which is not installed",
                              f"{INSTALL} (or drop --log {b})") from None
    return list(backends)


def flat_scalars(row: dict, prefix: str) -> dict[str, float]:
    """{"<prefix>/<key>": value} for the finite numbers of a metrics row (nested dicts as "<prefix>/<a>/<b>";
    "step" and non-numbers are left out)."""
    out: dict[str, float] = {}
    for k, v in row.items():
        if k == "step":
            continue
        if isinstance(v, dict):
            out.update(flat_scalars(v, f"{prefix}/{k}"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}/{k}"] = float(v)
    return out


class Tracker:
    """The trackers of one run (none on non-main ranks). Use as a context manager, or call close()."""

    def __init__(self, out: str | Path, backends: list[str], config: dict, start_step: int = 0,
                 name: str | None = None):
        from lmlab import dist

        self.out, self.tb, self.wb = Path(out), None, None
        backends = check(backends) if dist.is_main() else []
        if "tensorboard" in backends:
            self.tb = _open_tensorboard(self.out, config, start_step)
        if "wandb" in backends:
            self.wb = _open_wandb(self.out, config, name or self.out.resolve().name)

    def log(self, step: int, row: dict, prefix: str = "train") -> None:
        """Scalars of one metrics row at `step` (eval rows: log(step, ev, "eval"))."""
        scalars = flat_scalars(row, prefix)
        if self.tb is not None:
            for tag, v in scalars.items():
                self.tb.add_scalar(tag, v, global_step=step)
        if self.wb is not None and scalars:
            self.wb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wb is not None:
            self.wb.finish()
            self.wb = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_tensorboard(out: Path, config: dict, start_step: int):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(out / "tb"), purge_step=start_step + 1 if start_step else None)
    w.add_text("config", "```json\n" + json.dumps(config, indent=2) + "\n```", global_step=start_step)
    w.flush()
    return w


def _open_wandb(out: Path, config: dict, name: str):
    import secrets

    import wandb

    id_file = out / "wandb-id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
    id_file.write_text(run_id + "\n")
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "lmlab"), name=name, id=run_id, resume="allow",
                      dir=str(out), config=config, mode=os.environ.get("WANDB_MODE", "offline"),
                      settings=wandb.Settings(console="off", silent=True))
