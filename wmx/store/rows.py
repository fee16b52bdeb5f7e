"""What both stores do the same way with rows, whatever their SQL: pages bounded by bytes as
well as rows, the refusal of rows from elsewhere that no store may hold, and the millisecond
times their tables keep. No SQL and no connection here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Optional

from wmx.model import codec
from wmx.model.changes import ROW_FIELDS
from wmx.model.clock import AHEAD_LIMIT_MS, HybridLogicalClock
from wmx.model.validation import InvalidElement, check_row
from wmx.repository.base import InvalidRequest

SCHEMA_VERSION = "2"
"""The element layout every store keeps (the ``meta`` table's ``schema_version``). Version 2
added the ``parent_job_id`` and ``row_no`` columns; a store opened with an older layout of
:data:`UPGRADABLE_VERSIONS` is brought up to date as it opens, and an older wmx refuses the
result rather than write rows without them."""
UPGRADABLE_VERSIONS = ("1",)
_INT64 = 2 ** 63
PAGE_BYTES = 16 * 1024 * 1024
"""A page stops early once its bodies and attachment bytes reach this size, so pages of large
attachments stay small in memory and on the wire."""
_BODY = ROW_FIELDS.index("body")
_HLC = ROW_FIELDS.index("hlc")


def bounded_page(rows: Iterable[tuple], limit: int, offset: int = 0
                 ) -> tuple[list[tuple], bool]:
    """Up to ``limit`` rows, fewer if they reach :data:`PAGE_BYTES`; and whether more may
    follow. ``offset`` is where the element columns start in each row."""
    taken: list[tuple] = []
    size = 0
    for row in rows:
        taken.append(row)
        size += len(row[offset + _BODY] or "") + len(row[offset + _BODY + 1] or b"")
        if len(taken) >= limit or size >= PAGE_BYTES:
            return taken, True
    return taken, False


def refuse_inadmissible(clock: HybridLogicalClock, rows: Iterable[tuple]) -> Optional[int]:
    """Refuse, before anything is written or observed, a version from elsewhere that this
    store must not hold (:mod:`wmx.model.validation`: once stored and spread, such a row broke
    every read of its kind on every repository) or whose stamp the clock must not adopt (too far
    ahead: :meth:`HybridLogicalClock.admits`). The error names the element. Returns the newest
    stamp (None for no row), the one the store's clock is to observe.

    The clock is asked once, for the newest stamp (it admits every older one too): the wall
    clock it reads costs more than the rest of a row's check."""
    newest: Optional[tuple] = None
    try:
        for row in rows:
            check_row(row)
            if newest is None or row[_HLC] > newest[_HLC]:
                newest = row
        if newest is not None and not clock.admits(newest[_HLC]):
            raise InvalidElement(
                f"{newest[1]} {newest[0]}: stamped more than {AHEAD_LIMIT_MS // 3_600_000} "
                "hours ahead of this repository's clock (a peer's clock is wrong, or the row "
                "is corrupt)")
    except InvalidElement as exc:
        raise InvalidRequest(f"Refused a replicated element: {exc}") from None
    return None if newest is None else newest[_HLC]


def now_ms() -> int:
    return int(time.time() * 1000)


def ms_to_datetime(value: Optional[int]) -> Optional[datetime]:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def datetime_to_ms(value: Optional[datetime]) -> Optional[int]:
    return None if value is None else int(value.timestamp() * 1000)


def parent_job_id(kind: str, body: Optional[str], deleted: Any) -> Optional[int]:
    """The ``parentJobId`` a live job's body names, which the stores keep in a column of its
    own to find child jobs by; None for anything else. Never fails: a body that is not JSON
    (or names no whole number) names no parent (whether such a row may be stored at all is
    decided elsewhere, by :func:`refuse_inadmissible`)."""
    if kind != "job" or deleted or not body:
        return None
    try:
        value = codec.loads(body).get("parentJobId")
    except (ValueError, TypeError, AttributeError):
        return None
    if type(value) is float and value.is_integer():
        value = int(value)
    return value if type(value) is int and -_INT64 <= value < _INT64 else None
