"""The repository interface: what the replication engine may ask of any repository.

Every backend implements it (the SQLite and PostgreSQL stores, the WMServer REST client, an
Esri server's mirror) and the engine sees nothing else. Everything here is a plain record or
a Protocol; no backend code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Optional, Protocol, runtime_checkable

import attrs

from wmx.model.changes import Change, ConflictPolicy


class RepositoryError(Exception):
    """A repository could not do what was asked; the message is safe to show a user."""


class RepositoryNotFound(RepositoryError):
    """The location names no repository (missing file, unknown service)."""


class RepositoryUnavailable(RepositoryError):
    """The repository exists but cannot be reached now (server down, timeout, locked file)."""


class RepositoryTimeout(RepositoryUnavailable):
    """A request did not complete within the replication timeout (a silent or slow peer)."""


class RepositoryReadOnly(RepositoryUnavailable):
    """A repository this process may not write (file or folder permissions, a read-only
    medium): every use of an embedded repository writes, reads included."""


class RepositoryFull(RepositoryUnavailable):
    """The disk (or quota) holding the repository is full: the write was rolled back and the
    space it took given back; it succeeds once space is freed."""


class RepositoryBusy(RepositoryUnavailable):
    """Another connection holds the repository's write lock longer than the wait allows."""


class NotAuthorized(RepositoryError):
    """The token or the user lacks the right to do this (Esri codes 498/499, 403)."""


class InvalidRequest(RepositoryError):
    """The request itself is wrong (bad parameter, unknown job); retrying will not help."""


@attrs.frozen
class NodeInfo:
    """Who a repository is and how far its change log has got."""

    node_id: str
    name: str
    incarnation: str
    seq: int
    clock: int
    parent_node_id: Optional[str] = None
    id_block_start: int = 1
    rebuilt: bool = False
    """The node rebuilt its contents from its server and lost the cluster's memory of them
    (an Esri server whose mirror went with the state folder): until it adopts the cluster's
    identities (:class:`RebuiltNode`) everything it holds would look new."""


@attrs.define
class NodeRecord:
    """A cluster member as the parent records it (Esri's JTX_REPLICATION_INFO), with the
    two checkpoints of the pair: ``pull_seq`` in the child's log, ``push_seq`` in the parent's."""

    node_id: str
    name: str
    url: str = ""
    is_parent: bool = False
    is_connected: bool = True
    last_sync: Optional[datetime] = None
    id_block_start: int = 1
    incarnation: str = ""
    pull_seq: int = 0
    push_seq: int = 0


@attrs.frozen
class ChangePage:
    """Changes in sequence order; ``last_seq`` is how far the log was read (filtered rows
    included), so a checkpoint can move past changes that were not for this reader."""

    changes: list[Change]
    last_seq: int
    more: bool


@attrs.frozen
class SnapshotPage:
    """A page of whole-repository rows (tuples in ``ROW_FIELDS`` order); ``cursor`` is opaque
    to the caller and is passed back to fetch the next page."""

    rows: list[tuple]
    cursor: int
    more: bool


@attrs.frozen
class ConflictRecord:
    """A version that lost a conflict, kept so that nothing is silently dropped."""

    guid: str
    kind: str
    int_id: Optional[int]
    winner_origin: str
    winner_hlc: int
    loser_origin: str
    loser_hlc: int
    loser_deleted: bool
    loser_body: Optional[str]
    reason: str
    detected_at: Optional[datetime] = None
    winner_int_id: Optional[int] = None
    """The integer id the winning version holds, where it differs from the loser's (an
    ``id_renumbered`` conflict: the newcomer was kept under this new id)."""


@attrs.define
class ApplyReport:
    """What applying a batch did (or, for a dry run, would do)."""

    seq_before: int = 0
    seq_after: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    renamed: int = 0
    conflicts: list[ConflictRecord] = attrs.Factory(list)
    written: list[Change] = attrs.Factory(list)
    renumbered: list[Change] = attrs.Factory(list)
    """Versions this apply wrote with a new integer id, because the id they came with was
    held by another element here (SPEC §3: an id collision keeps both). The engine hands them
    to every child before anything else, so each child frees the id before the element that
    keeps it arrives."""
    refused: bool = False
    """Nothing was applied: an element of the batch was written here after
    ``refuse_if_changed_since`` (see :meth:`Repository.apply`)."""
    warnings: list[str] = attrs.Factory(list)
    """Applied here, but not everywhere it must reach: an element that an Esri server's
    surface cannot write, one line per element (the tools print them as WARNINGs)."""

    @property
    def writes(self) -> int:
        return self.inserted + self.updated + self.deleted

    def add(self, other: ApplyReport) -> None:
        self.seq_after = other.seq_after
        for name in ("inserted", "updated", "deleted", "unchanged", "renamed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.conflicts.extend(other.conflicts)
        self.written.extend(other.written)
        self.warnings.extend(other.warnings)
        self.renumbered.extend(other.renumbered)


@runtime_checkable
class Repository(Protocol):
    """What the engine needs from a repository, whatever its backend."""

    location: str

    def info(self) -> NodeInfo:
        """Who the repository is and where its change log has got (``seq``: the log head).
        Reads only."""
        ...

    def changes(self, since_seq: int, *, limit: int, origin: Optional[str] = None,
                exclude_origin: Optional[str] = None,
                since_time: Optional[datetime] = None) -> ChangePage:
        """Up to ``limit`` versions written after log position ``since_seq``, in log order
        (only ``origin``'s, or all but ``exclude_origin``'s); ``since_time`` also reaches back
        to the first version written at or after that wall time. The page's ``last_seq`` is
        where the next page starts; ``more`` False: the log head was reached. Positions only
        grow, and a reader past a position never misses a version committed later below it."""
        ...

    def apply(self, changes: Sequence[Change], *, parent_node: str,
              source_node: Optional[str] = None, detect_since: Optional[int] = None,
              policy: ConflictPolicy = ConflictPolicy.NEWEST, dry_run: bool = False,
              overlay: Sequence[Change] = (),
              refuse_if_changed_since: Optional[int] = None) -> ApplyReport:
        """Merge versions from elsewhere in one transaction by the shared rules
        (:mod:`wmx.store.merge`): all of them or none. ``source_node``/``detect_since``: the
        child they come from and the position after which a local version is concurrent
        (losers to the conflict log); ``dry_run``: decide and report, write nothing;
        ``refuse_if_changed_since``: apply nothing if an element of the batch was written
        here after that position. Idempotent: a version already held changes nothing."""
        ...

    def snapshot(self, cursor: int, limit: int) -> SnapshotPage:
        """Up to ``limit`` element rows after ``cursor`` (0 first), each element exactly once
        over the pages even while the repository is written to (a replicate's read)."""
        ...

    def begin_load(self) -> str:
        """Start a staged copy (a replicate into this repository) and return its id; the
        current contents stay in service until :meth:`commit_load`."""
        ...

    def load_rows(self, load_id: str, rows: Iterable[tuple]) -> None:
        """Add snapshot rows to the staged copy ``load_id``; nothing is visible yet."""
        ...

    def commit_load(self, load_id: str, *, parent_node_id: str, id_block_start: int,
                    new_node_id: Optional[str] = None) -> NodeInfo:
        """Swap the staged copy in atomically (readers see the old contents or the new,
        never a mix) and make this a replica of ``parent_node_id`` with that id block."""
        ...

    def abort_load(self, load_id: str) -> None:
        """Drop the staged copy; the contents in service are untouched."""
        ...

    def nodes(self) -> list[NodeRecord]:
        """The cluster members this repository (a parent) has registered."""
        ...

    def save_node(self, node: NodeRecord) -> None:
        """Record or replace one member's registration (node-local, never replicated)."""
        ...

    def clear_replication_info(self) -> None:
        """Forget every registration and the parent (ClearJobReplicationInfo); element data
        stays."""
        ...

    def renew_incarnation(self) -> str:
        """Give this repository a new incarnation (node-local: never replicated, not in the
        change log, no element changes) and return it.

        The parent records a child's incarnation after every replicate and sync; a copy of
        the repository (a restored backup, a byte copy) keeps carrying the incarnation it had
        when it was copied, so the next contact tells it from the original. Renewing one
        location and reading another shows whether the two are one store."""
        ...

    def conflicts(self) -> list[ConflictRecord]:
        """The conflict log, oldest first: each losing version with the winner's stamp."""
        ...

    def close(self) -> None:
        """Release connections and files; the object is not used afterwards."""
        ...


@runtime_checkable
class ReportsWarnings(Protocol):
    """A repository that may not be able to take everything a replicate gives it (an Esri
    server, whose surface writes no configuration): it says so, for the run's messages."""

    def take_warnings(self) -> list[str]:
        """What it could not do as asked since the last call (each said once), in order."""
        ...


@runtime_checkable
class ReadsOverNetwork(Protocol):
    """A repository whose reads wait on another machine (a server over HTTP): the engine
    reads its snapshot pages ahead, in a thread, so the wait overlaps loading the previous
    page. A local store is read in line: there a second thread only contends for the GIL."""

    def reads_over_network(self) -> bool:
        """True while reads are round trips (the answer may not change over a run)."""
        ...


@runtime_checkable
class WritesTogether(Protocol):
    """A repository that can make several of its writes one transaction (the local stores):
    a sync records a pull checkpoint in the transaction of the page it covers, so the two
    commit together and a quiet sync pays for fewer commits."""

    def transaction(self) -> AbstractContextManager[object]:
        """Writes made inside (``apply``, ``save_node``, job operations...) join one write
        transaction: all committed when it ends, none if it raises. A dry run's ``apply``
        inside is refused (InvalidRequest): its rollback cannot be joined."""
        ...


@runtime_checkable
class RebuiltNode(Protocol):
    """A repository that can rebuild itself from its own server (an Esri server's mirror): the
    engine lets it adopt the cluster's identities before anything is exchanged."""

    def adopt(self, versions: Iterable[Change], *, since: Optional[datetime],
              parent_node_id: Optional[str] = None,
              id_block_start: Optional[int] = None) -> int:
        """Only while :attr:`NodeInfo.rebuilt`: take the GUIDs of the ``versions`` (another
        node's whole log) that stand for elements this node holds, so nothing it rebuilt
        arrives elsewhere as a second copy. Versions stamped at or after ``since`` (the pair's
        last exchange; None: unknown) by another node may be newer than what the server holds,
        and win over it; older ones are what the server had, so where it differs the server
        changed since. ``parent_node_id``/``id_block_start``: a child's registration, kept
        by its parent, restored. Returns the log position after which this node's versions
        are what its server changed since the cluster last saw it."""
        ...
