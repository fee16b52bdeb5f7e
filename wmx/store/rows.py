"""What both stores do the same way with rows, whatever their SQL: pages bounded by bytes as
well as rows, the refusal of rows from elsewhere that no store may hold, and the millisecond
times their tables keep. No SQL and no connection here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Optional

from wmx.model.changes import ROW_FIELDS
from wmx.model.clock import AHEAD_LIMIT_MS, HybridLogicalClock
from wmx.model.validation import InvalidElement, check_row
from wmx.repository.base import InvalidRequest

SCHEMA_VERSION = "1"
"""The element layout every store keeps (the ``meta`` table's ``schema_version``)."""
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


def refuse_inadmissible(clock: HybridLogicalClock, rows: Iterable[tuple]) -> None:
    """Refuse, before anything is written or observed, a version from elsewhere that this
    store must not hold (:mod:`wmx.model.validation`: once stored and spread, such a row broke
    every read of its kind on every repository) or whose stamp the clock must not adopt (too far
    ahead: :meth:`HybridLogicalClock.admits`). The error names the element."""
    try:
        for row in rows:
            check_row(row)
            if not clock.admits(row[_HLC]):
                raise InvalidElement(
                    f"{row[1]} {row[0]}: stamped more than {AHEAD_LIMIT_MS // 3_600_000} hours "
                    "ahead of this repository's clock (a peer's clock is wrong, or the row is "
                    "corrupt)")
    except InvalidElement as exc:
        raise InvalidRequest(f"Refused a replicated element: {exc}") from None


def now_ms() -> int:
    return int(time.time() * 1000)


def ms_to_datetime(value: Optional[int]) -> Optional[datetime]:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def datetime_to_ms(value: Optional[datetime]) -> Optional[int]:
    return None if value is None else int(value.timestamp() * 1000)
