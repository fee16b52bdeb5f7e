"""Reading a repository's change feed page by page, from a checkpoint.

Kept apart so both sync phases page the same way: the wall-clock lower bound applies to the
first page only (later pages continue from where the previous one stopped), and every page
reports how far the log was read so a checkpoint can follow it. A page that claims more
follows without moving past where it was asked to start is refused (a broken or hostile peer
would otherwise keep the run reading the same page for ever).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Optional

import attrs

from wmx.repository.base import ChangePage, Repository, RepositoryError


class FeedStalled(RepositoryError):
    """A feed page says more follows but does not advance: the peer's feed is broken."""


def change_pages(repository: Repository, since_seq: int, *, page_size: int,
                 origin: Optional[str] = None, exclude_origin: Optional[str] = None,
                 since_time: Optional[datetime] = None,
                 until_seq: Optional[int] = None) -> Iterator[ChangePage]:
    """Yield pages until the feed is exhausted (the last page has ``more == False``).

    With ``until_seq`` (the log head when the reader started) the feed ends once it has been
    read that far: versions written later travel next time, so writers faster than the
    reader cannot keep it reading for ever."""
    while True:
        page = repository.changes(since_seq, limit=page_size, origin=origin,
                                  exclude_origin=exclude_origin, since_time=since_time)
        # With since_time the page may start below since_seq; the next page is checked.
        if page.more and since_time is None and page.last_seq <= since_seq:
            raise FeedStalled(f"{repository.location} answered a change-feed page that says "
                              f"more follows but does not advance past position {since_seq}")
        if until_seq is not None and page.more and page.last_seq >= until_seq:
            page = attrs.evolve(page, more=False)
        yield page
        if not page.more:
            return
        since_seq, since_time = page.last_seq, None
