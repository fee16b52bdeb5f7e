"""What the SQL of one database spells differently from another's: placeholders, column types,
how a statement names a set of GUIDs, how text sorts by bytes, how a staged copy gets its key.

Text only: no connection, no error handling, no rule. The statements themselves are written
once, with ``?`` placeholders, in :mod:`wmx.store.sql`; each store module holds its dialect.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import attrs


@attrs.frozen
class Dialect:
    """The spelling of one database. ``guid_chunk`` is how many GUIDs one ``IN (?, …)`` list
    may hold (SQLite limits a statement's parameters); ``None`` names them all as one array
    parameter (``= ANY(?)``)."""

    integer: str
    """The 64-bit integer column type."""
    flag: str
    """The type of a 0/1 column."""
    binary: str
    """The type of attachment bytes."""
    row_number: str
    """The type of ``elements.row_no``, the snapshot cursor."""
    next_row_number: str
    """The value an INSERT gives ``row_no``: numbered once, when an element is first stored."""
    serial_key: str
    """A primary key the database numbers itself (the conflict log's)."""
    staged_key: str
    """The statement that gives a staged copy, swapped in, its GUID key."""
    byte_order: str = ""
    """What makes ``ORDER BY guid`` sort by bytes, as the other store does."""
    nulls_first: str = ""
    """What sorts NULLs first in an ascending ``ORDER BY``, as SQLite does by itself (and
    SQLite before 3.30 cannot say)."""
    translate_placeholders: bool = False
    """Whether the driver wants ``%s`` for ``?`` (and ``%%`` for ``%``)."""
    guid_chunk: Optional[int] = None

    def sql(self, statement: str) -> str:
        """``statement`` (written with ``?``) as this database's driver takes it."""
        return _percent_style(statement) if self.translate_placeholders else statement

    def guid_sets(self, guids: Sequence[str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """A ``WHERE`` fragment naming GUIDs, with its arguments, for each set the statement
        must be run for (none when there are no GUIDs)."""
        if self.guid_chunk is None:
            if guids:
                yield "guid = ANY(?)", (list(guids),)
            return
        for start in range(0, len(guids), self.guid_chunk):
            chunk = tuple(guids[start:start + self.guid_chunk])
            yield f"guid IN ({','.join('?' * len(chunk))})", chunk


@functools.lru_cache(maxsize=1024)
def _percent_style(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")
