"""Progress of long work, as an observer the engine reports to and a front end may render.

The engine wraps its long loops in :func:`track`; by default nothing is shown (a library used
from a script or a server stays silent). A front end (the ``wmx`` command line) installs a
:class:`Renderer` with :func:`rendering` for the duration of one command. This module must
never import a user-interface library, print anything, or let a renderer's failure stop the
work it observes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Callable, Optional, Protocol, TypeVar

T = TypeVar("T")

log = logging.getLogger("wmx.progress")


class Task(Protocol):
    """One piece of work being shown: it moves forward, then ends."""

    def advance(self, amount: int) -> None: ...

    def end(self) -> None: ...


class Renderer(Protocol):
    """Shows tasks; ``total`` is None when the amount of work is not known in advance."""

    def start(self, description: str, total: Optional[int], unit: str) -> Task: ...


class _Silent:
    """The default: a task nobody watches."""

    def start(self, description: str, total: Optional[int], unit: str) -> Task:
        return self

    def advance(self, amount: int) -> None:
        """Nothing to show."""

    def end(self) -> None:
        """Nothing to close."""


_SILENT = _Silent()
_renderer: Renderer = _SILENT


@contextlib.contextmanager
def rendering(renderer: Renderer) -> Iterator[Renderer]:
    """Show the engine's progress through ``renderer`` while the block runs."""
    global _renderer
    previous, _renderer = _renderer, renderer
    try:
        yield renderer
    finally:
        _renderer = previous


def track(items: Iterable[T], description: str, *, total: Optional[int] = None,
          size: Callable[[T], int] = lambda _item: 1, unit: str = "rows") -> Iterator[T]:
    """Yield ``items`` unchanged, reporting ``size(item)`` units of work after each one.

    ``total`` is the expected sum of the sizes (None if unknown); a wrong estimate only makes
    the display wrong, never the work.
    """
    task = _start(description, total, unit)
    try:
        for item in items:
            yield item
            _safely(task.advance, size(item))
    finally:
        _safely(task.end)


class LogPage(Protocol):
    """A page of a change log: how far the log was read to produce it."""

    @property
    def last_seq(self) -> int: ...


P = TypeVar("P", bound=LogPage)


def _last_seq(page: LogPage) -> int:
    return page.last_seq


def track_log(pages: Iterable[P], description: str, *, start: int, end: int,
              position: Callable[[P], int] = _last_seq,
              unit: str = "changes") -> Iterator[P]:
    """Like :func:`track` for a change log read from ``start`` to ``end``: each page reports
    how far it read (``position(page)``, by default its ``last_seq``), so filtered-out
    entries count too and the bar ends at the head."""
    reached = start

    def moved(page: P) -> int:
        nonlocal reached
        step, reached = max(0, position(page) - reached), max(reached, position(page))
        return step

    yield from track(pages, description, total=max(0, end - start), size=moved, unit=unit)


def size_of(repository: object) -> Optional[int]:
    """A cheap count of a repository's elements, when its backend offers one (else None)."""
    count = getattr(repository, "element_count", None)
    if count is None:
        return None
    try:
        return int(count())
    except Exception:  # an estimate for a display must never stop a replicate
        log.debug("no element count for %r", repository, exc_info=True)
        return None


def _start(description: str, total: Optional[int], unit: str) -> Task:
    try:
        return _renderer.start(description, total, unit)
    except Exception:  # a broken display must never stop the work it shows
        log.debug("progress renderer failed to start %r", description, exc_info=True)
        return _SILENT


def _safely(call: Callable[..., None], *args: int) -> None:
    try:
        call(*args)
    except Exception:  # a broken display must never stop the work it shows
        log.debug("progress renderer failed", exc_info=True)
