"""The interface the apply algorithm (:mod:`wmx.store.apply`) needs from a store, inside one
write transaction. Each method is one question or one write; every one of them sees the writes
the same transaction made before it.

Implemented once, by :class:`wmx.store.sql.SqlApplyTarget`, for SQLite and PostgreSQL alike;
the rules that decide what to write never live in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Protocol

import attrs

from wmx.model.changes import Change
from wmx.repository.base import ConflictRecord


@attrs.frozen(slots=True)
class StoredVersion:
    """The version of an element a store holds, and where it stands in the store's change log
    (a version written after the position a peer last heard of is new to that peer)."""

    change: Change
    seq: int


class ApplyTarget(Protocol):
    """One store, inside one write transaction, as the apply algorithm sees it."""

    @property
    def node_id(self) -> str:
        """This store's node id: the origin of the versions it writes itself."""
        ...

    def stamp(self) -> int:
        """A fresh stamp of this store's clock, above every stamp it has issued or observed."""
        ...

    def observe(self, hlc: int) -> None:
        """Move this store's clock past a stamp that arrived from elsewhere (already checked
        to be admissible)."""
        ...

    def versions(self, guids: Sequence[str]) -> dict[str, StoredVersion]:
        """The stored version of each of these elements that exists (tombstones included)."""
        ...

    def id_taken(self, kind: str, int_id: int, guid: str) -> bool:
        """Whether a live element of ``kind`` other than ``guid`` holds this integer id, or
        the store handed it to a local write that has not committed yet."""
        ...

    def name_taken(self, kind: str, name: str, guid: str) -> bool:
        """Whether a live element of ``kind`` other than ``guid`` holds this unique name."""
        ...

    def free_int_id(self, kind: str, origin: str) -> int:
        """The next integer id of ``kind`` no element holds in the id block of the node
        ``origin`` (this store's own block for itself and for nodes it does not know)."""
        ...

    def logged_as_loser(self, change: Change) -> bool:
        """Whether this very version is in the conflict log as a loser."""
        ...

    def job_records(self, job_guid: str) -> list[StoredVersion]:
        """The stored versions of every record of this job (tombstones included)."""
        ...

    def lost_delete(self, job_guid: str) -> Optional[Change]:
        """The newest deletion of this job that lost here (from the conflict log), if any."""
        ...

    def log_conflict(self, record: ConflictRecord) -> None:
        """Keep a losing version in the conflict log."""
        ...

    def positions(self) -> tuple[int, int]:
        """The head of the change log when the transaction began, and now."""
        ...

    def written_since(self, guids: Sequence[str], since_seq: int) -> bool:
        """Whether any of these elements was written after log position ``since_seq``."""
        ...

    def write(self, change: Change, previous: Optional[StoredVersion]) -> int:
        """Store ``change`` as the element's version, at the head of the change log, and
        return its log position; ``previous`` is what the store held (None: a new element)."""
        ...
