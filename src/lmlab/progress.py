"""Progress bars (rich, on stderr), one module for every stage: a training bar fed by metrics rows, a counter
advanced one item at a time, and an iterable wrapper. Each is a no-op when disabled (non-zero ranks, --json
runs, tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator


def _console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def train_bar(enabled: bool, total: int, start: int, label: str = "train"):
    """Yield update(step, row): a bar at `start` of `total` steps showing the row's loss, throughput
    ("tokens_per_sec": tokens or activations per second) and MFU."""
    if not enabled:
        yield lambda done, row: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cols = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn()]
    with Progress(*cols, transient=False, console=_console()) as p:
        task = p.add_task(label, total=total, completed=start, info="")

        def update(done: int, row: dict) -> None:
            p.update(task, completed=done, info=f"loss {row['loss']:.3f} · {row['tokens_per_sec']:,.0f} tok/s"
                                                 f" · MFU {100 * row['mfu']:.1f}%")

        yield update


@contextlib.contextmanager
def counter(enabled: bool, total: int, label: str):
    """Yield advance(): a transient bar of `total` items, advanced by one per call."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_console()) as p:
        task = p.add_task(label, total=total)
        yield lambda: p.advance(task)


def track(items: Iterable, enabled: bool, label: str) -> Iterator | Iterable:
    """Iterate `items` behind a transient bar (the items are listed first to know the total)."""
    if not enabled:
        return items
    from rich.progress import track as rich_track

    return rich_track(list(items), description=label, console=_console(), transient=True)
