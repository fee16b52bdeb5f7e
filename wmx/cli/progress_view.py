"""The terminal view of :mod:`wmx.progress`: one ``rich`` bar per task, with the count, the
total (when the engine knows it), the rate and the time left.

Shown only on a terminal: with -q, --json or output to a pipe or file nothing is drawn. rich
is imported only when a bar is about to be drawn; without it (``pip install wmx[cli]``) the
work goes on silently. This module must never change what a command does or prints on
standard output beyond the bars themselves.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, Optional

from wmx import progress


def wanted(*, quiet: bool, as_json: bool) -> bool:
    """Bars only for a person watching a terminal."""
    return not quiet and not as_json and sys.stdout.isatty() and sys.stderr.isatty()


class _RichTask:
    def __init__(self, bars: Any, task_id: Any, total: Optional[int]) -> None:
        self._bars, self._id, self._total, self._done = bars, task_id, total, 0

    def advance(self, amount: int) -> None:
        self._done += amount
        self._bars.update(self._id, completed=self._done, done=self._done)

    def end(self) -> None:
        """A task whose size was unknown, overestimated or nothing ends as a full bar; the
        count column still says what was done."""
        if self._total is None or self._done != self._total or not self._done:
            self._bars.update(self._id, total=max(self._done, 1), completed=max(self._done, 1))
        self._bars.stop_task(self._id)


class RichRenderer:
    """Draws the bars of one command; started at the first task, stopped with the command."""

    def __init__(self) -> None:
        self._bars: Optional[Any] = None

    def start(self, description: str, total: Optional[int], unit: str) -> progress.Task:
        bars = self._ensure_started()
        task_id = bars.add_task(description, total=total, unit=unit, done=0, expected=total)
        return _RichTask(bars, task_id, total)

    def _ensure_started(self) -> Any:
        if self._bars is None:
            from rich.progress import Progress

            self._bars = Progress(*_columns(), redirect_stdout=True, redirect_stderr=True)
            self._bars.start()
        return self._bars

    def stop(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


def _columns() -> list[Any]:
    """Description, bar, percentage, count of total, rate, elapsed, time left."""
    from rich.progress import (
        BarColumn,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class CountColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            done, expected = task.fields["done"], task.fields["expected"]
            of = "" if expected is None else f"/{expected:,}"
            return Text(f"{done:,}{of} {task.fields['unit']}")

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            elapsed = task.elapsed or 0.0
            if elapsed <= 0:
                return Text("")
            return Text(f"{task.fields['done'] / elapsed:,.0f} {task.fields['unit']}/s")

    return [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), CountColumn(),
            RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]


@contextlib.contextmanager
def showing(*, quiet: bool, as_json: bool) -> Iterator[None]:
    """Render the engine's progress for one command, when a person is watching."""
    if not wanted(quiet=quiet, as_json=as_json):
        yield
        return
    try:
        import rich  # noqa: F401 - only to know whether bars can be drawn
    except ImportError:
        yield
        return
    renderer = RichRenderer()
    try:
        with progress.rendering(renderer):
            yield
    finally:
        renderer.stop()
