"""The hybrid logical clock that stamps every write.

A stamp is one integer: wall-clock milliseconds shifted left 16 bits plus a logical counter.
Stamps from one node only ever increase, and a node that receives a stamp from elsewhere moves
its own clock past it, so causality is preserved even when machine clocks disagree by hours.
A received stamp is observed only if it is no further ahead than :data:`AHEAD_LIMIT_MS` of
this node's own position (its wall clock or its clock, whichever is later): otherwise one corrupt
or hostile stamp would carry every clock of the cluster to the top of the range, where none can
issue a greater stamp and every later write fails. Nodes hours apart stay well inside the limit.
This module must never read the clock of another machine.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Callable

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1

MAX_STAMP = (1 << 62) - 1
"""The highest stamp a repository stores or the wire carries (its wall part is in the year
4199). A stamp beyond it is corrupt or hostile on its face. A clock comes nowhere near it: it
observes stamps at most :data:`AHEAD_LIMIT_MS` ahead of itself, so only some 800,000 hostile
pushes in a row, each a day further, could carry it there."""

AHEAD_LIMIT_MS = 24 * 3600 * 1000
"""How far ahead of a node a stamp it observes may be. Being relative, not a fixed ceiling, it
keeps a clock able to issue a stamp strictly greater than any it observed: a ceiling near
:data:`MAX_STAMP` would only move the point where a pushed clock gets stuck."""

WallClock = Callable[[], float]
"""Returns seconds since the epoch, like :func:`time.time` (injectable for clock-skew tests)."""


def is_valid_stamp(stamp: object) -> bool:
    """An ``int`` (not a ``bool``) from 0 to :data:`MAX_STAMP`."""
    return type(stamp) is int and 0 <= stamp <= MAX_STAMP


def stamp_from_millis(millis: int, counter: int = 0) -> int:
    return (millis << COUNTER_BITS) | counter


def stamp_millis(stamp: int) -> int:
    """The wall-clock part of a stamp, in epoch milliseconds."""
    return stamp >> COUNTER_BITS


def stamp_datetime(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp_millis(stamp) / 1000, tz=timezone.utc)


def stamp_from_datetime(moment: datetime) -> int:
    """The smallest stamp at or after ``moment`` (an aware datetime)."""
    return stamp_from_millis(int(moment.timestamp() * 1000))


class HybridLogicalClock:
    """Monotonic stamps that absorb stamps seen from other nodes (thread-safe)."""

    def __init__(self, last: int = 0, wall: WallClock = time.time) -> None:
        self._last = last
        self._wall = wall
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        """A stamp greater than every stamp issued or observed so far."""
        with self._lock:
            physical = stamp_from_millis(int(self._wall() * 1000))
            self._last = max(physical, self._last + 1)
            return self._last

    def admits(self, remote: int) -> bool:
        """Whether ``remote`` may be observed: a valid stamp at most :data:`AHEAD_LIMIT_MS`
        ahead of this node's wall clock or its clock, whichever is later (a node whose wall
        clock is stopped still follows its peers by the logical part)."""
        if not is_valid_stamp(remote):
            return False
        here = max(stamp_from_millis(int(self._wall() * 1000)), self._last)
        return remote <= here + stamp_from_millis(AHEAD_LIMIT_MS)

    def observe(self, remote: int) -> None:
        """Move past a stamp received from another node, so later local writes follow it."""
        with self._lock:
            if remote > self._last:
                self._last = remote
