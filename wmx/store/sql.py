"""The SQL both stores run, written once: the tables, the change log, the apply target, the
snapshot copy and the replication bookkeeping, over a :class:`~wmx.store.dialect.Dialect`.

A store subclasses :class:`SqlStore` and supplies only what its database does differently: how
a transaction is opened, locked, committed and its errors named (:meth:`SqlStore.transaction`),
how a read gets a consistent view (:meth:`SqlStore._read`), how a staged page is written. The
statements here use ``?`` placeholders; :class:`Session` objects take them as written. Nothing
here knows a driver, a file or a server, and no rule of what to write lives here
(:mod:`wmx.store.merge`, :mod:`wmx.store.apply`).
"""

from __future__ import annotations

import abc
import contextlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar, Optional, Protocol, TypeVar

from wmx.model import codec
from wmx.model.changes import ROW_FIELDS, Change, ConflictPolicy
from wmx.model.clock import HybridLogicalClock
from wmx.model.guids import new_guid
from wmx.model.records import ID_BLOCK_SIZE, NAMED_KINDS, Record
from wmx.repository.base import (
    ApplyReport,
    ChangePage,
    ConflictRecord,
    InvalidRequest,
    NodeInfo,
    NodeRecord,
    SnapshotPage,
)
from wmx.repository.jobs import JobTracking
from wmx.store.apply import ApplyOptions, apply_batch
from wmx.store.dialect import Dialect
from wmx.store.protocol import StoredVersion
from wmx.store.rows import (
    bounded_page,
    datetime_to_ms,
    ms_to_datetime,
    now_ms,
    parent_job_id,
    refuse_inadmissible,
)

COLUMNS = ", ".join(ROW_FIELDS)
STAGED_COLUMNS = (*ROW_FIELDS, "seq", "parent_job_id")
"""A staged row: the element's fields, its log position, and the parent job it names."""
LOAD_TABLE = "elements_load"
LOG_HEAD = "SELECT COALESCE(MAX(seq), 0) FROM elements"
OPENING = (f"SELECT ({LOG_HEAD}), (SELECT value FROM meta WHERE key = 'node_id'),"
           " (SELECT value FROM meta WHERE key = 'clock')")
"""What a write transaction reads once it holds the lock, in one statement: the log head its
positions go above, the node id it stamps, the clock other writers got to."""
_KEY_COLUMNS = (*ROW_FIELDS[1:5], "parent_job_id")
"""Indexed columns that an element keeps from version to version (kind, integer id, owning
job, name, parent job). An UPDATE names them only when they change, so SQLite leaves their
indexes alone: on a large repository every index it does touch costs a random page write per
changed row."""
_VERSION_COLUMNS = ROW_FIELDS[5:]
_HLC, _KIND, _BODY, _DELETED = (ROW_FIELDS.index(field)
                                for field in ("hlc", "kind", "body", "deleted"))
_NODE_COLUMNS = ("node_id", "name", "url", "is_parent", "is_connected", "last_sync_ms",
                 "id_block_start", "incarnation", "pull_seq", "push_seq")
_CONFLICT_COLUMNS = ("guid, kind, int_id, winner_origin, winner_hlc, loser_origin, loser_hlc,"
                     " loser_deleted, loser_body, reason, detected_ms, winner_int_id")
ELEMENT_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS elements_seq ON elements (seq)",
    "CREATE UNIQUE INDEX IF NOT EXISTS elements_row_no ON elements (row_no)",
    "CREATE INDEX IF NOT EXISTS elements_kind_id ON elements (kind, int_id)"
    " WHERE int_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS elements_job ON elements (job_guid) WHERE job_guid IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS elements_name ON elements (kind, name) WHERE name IS NOT NULL",
    # Esri's job JSON lists childJobIds; this finds them without reading every job. Only jobs
    # that have a parent are in it: the others are never looked up by it, and leaving them
    # out spares an index write per job update.
    "CREATE INDEX IF NOT EXISTS elements_parent_job ON elements (parent_job_id)"
    " WHERE parent_job_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS conflicts_guid ON conflicts (guid)",
)


def element_table(dialect: Dialect, table: str, key: str = " PRIMARY KEY") -> str:
    """The ``elements`` table (or a staged copy of it, without ``key``).

    ``row_no`` is the snapshot cursor: numbered once, when the row is first stored, it stays
    while the element's versions move up the log, so a replicate reading pages while the
    parent is edited meets every element once (by ``seq`` an element edited after its page
    was read would come again, and the child would refuse its copy; by SQLite's ``rowid`` a
    VACUUM could renumber it). ``parent_job_id`` is computed from the body when a version is
    written (:func:`wmx.store.rows.parent_job_id`), so child jobs are found by a column."""
    number = dialect.integer
    return (f"CREATE TABLE IF NOT EXISTS {table} (guid TEXT NOT NULL{key}, kind TEXT NOT NULL,"
            f" int_id {number}, job_guid TEXT, name TEXT, body TEXT, content {dialect.binary},"
            f" hlc {number} NOT NULL, origin TEXT NOT NULL,"
            f" deleted {dialect.flag} NOT NULL DEFAULT 0, seq {number} NOT NULL,"
            f" parent_job_id {number}, row_no {dialect.row_number})")


def schema(dialect: Dialect) -> tuple[str, ...]:
    """Every statement that creates an empty repository's tables."""
    number, flag = dialect.integer, dialect.flag
    return (
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        element_table(dialect, "elements"),
        # One mark per write transaction: lets a wall-clock lower bound map to a log position.
        f"CREATE TABLE IF NOT EXISTS seq_marks (seq {number} PRIMARY KEY,"
        f" at_ms {number} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS seq_marks_at ON seq_marks (at_ms)",
        f"""CREATE TABLE IF NOT EXISTS nodes (
        node_id TEXT PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL DEFAULT '',
        is_parent {flag} NOT NULL DEFAULT 0, is_connected {flag} NOT NULL DEFAULT 1,
        last_sync_ms {number}, id_block_start {number} NOT NULL DEFAULT 1,
        incarnation TEXT NOT NULL DEFAULT '', pull_seq {number} NOT NULL DEFAULT 0,
        push_seq {number} NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE IF NOT EXISTS conflicts (
        id {dialect.serial_key}, detected_ms {number} NOT NULL, guid TEXT NOT NULL,
        kind TEXT NOT NULL, int_id {number}, winner_origin TEXT NOT NULL,
        winner_hlc {number} NOT NULL, loser_origin TEXT NOT NULL, loser_hlc {number} NOT NULL,
        loser_deleted {flag} NOT NULL, loser_body TEXT, reason TEXT NOT NULL,
        winner_int_id {number})""",
        *ELEMENT_INDEXES,
    )


def upsert(table: str, columns: Sequence[str], key: str) -> str:
    """Insert a row, or replace the values of the row holding its ``key`` (SQLite 3.24+ and
    PostgreSQL spell this alike; SQLite's ``INSERT OR REPLACE`` would delete and renumber)."""
    return (f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join('?' * len(columns))}) ON CONFLICT ({key}) DO UPDATE SET "
            + ", ".join(f"{column} = excluded.{column}" for column in columns if column != key))


SET_META = upsert("meta", ("key", "value"), "key")
SET_CLOCK = SET_META.replace("VALUES (?, ?)", "VALUES ('clock', ?)", 1)
OWN_BLOCK = ("(SELECT CAST(COALESCE((SELECT value FROM meta WHERE key = 'id_block_start'),"
             " '1') AS BIGINT) AS start) AS block")
"""This node's id block, as a one-row table ``block (start)``."""
NEXT_IN_OWN_BLOCK = (
    "SELECT COALESCE((SELECT int_id FROM elements WHERE kind = ? AND int_id >= block.start"
    f" AND int_id < block.start + ? ORDER BY int_id DESC LIMIT 1) + 1, block.start) FROM"
    f" {OWN_BLOCK}")
"""The next free integer id of a kind in this node's id block (args: kind, block size).
``ORDER BY … LIMIT 1``, not ``MAX``: both databases read one entry of ``elements_kind_id``
for it, where PostgreSQL reads every id of the block for the ``MAX`` of a range bounded by a
subquery (3 ms at 6,000 jobs, under the log lock)."""
_MARK_SEQ = upsert("seq_marks", ("seq", "at_ms"), "seq")
_SAVE_NODE = upsert("nodes", _NODE_COLUMNS, "node_id")


def _keys_of(change: Change) -> tuple[Any, ...]:
    """A version's :data:`_KEY_COLUMNS` values."""
    return (*change.to_row()[1:5], parent_job_id(change.kind, change.body, change.deleted))


class Rows(Protocol):
    """The rows a statement returned (a DB-API cursor)."""

    def fetchone(self) -> Any:
        """The next row, or None when there is none."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows, one by one."""
        ...


class Session(Protocol):
    """Where statements run: a connection or cursor of one store, inside whatever transaction
    or snapshot it is in. Takes the ``?`` statements of this module as they are written."""

    def execute(self, statement: str, args: Sequence[Any] = (), /) -> Rows:
        """Run one statement with positional arguments."""
        ...


def head_of(session: Session) -> int:
    """The newest log position (0 for an empty log)."""
    return int(session.execute(LOG_HEAD).fetchone()[0])


class SqlTransaction:
    """One write transaction: allocates log positions above the head it began at, in commit
    order (the store's lock makes sure no other writer holds positions meanwhile)."""

    dialect: ClassVar[Dialect]

    def __init__(self, session: Session, opening: Optional[Sequence[Any]] = None) -> None:
        """``opening``: the row :data:`OPENING` returned, when the store read it already (in
        the round trip that took its lock); else it is read here."""
        self.session = session
        self._opened(opening or session.execute(OPENING).fetchone())

    def _opened(self, opening: Sequence[Any]) -> None:
        """Take in :data:`OPENING`'s row, read once the transaction holds the lock."""
        head, node_id, clock = opening[:3]
        self.seq_start = self.seq = int(head)
        self._node_id: Optional[str] = str(node_id or "")
        self.clock_seen = int(clock or 0)
        """The clock another writer last committed (``meta.clock``) when this one began."""

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Rows:
        return self.session.execute(statement, args)

    def node_id(self) -> str:
        """This store's node id, read as the transaction began (every local write is stamped
        with it)."""
        return self._node_id or ""

    def origin_for(self, *, new: bool) -> str:
        """The node id to stamp a local version with. Once it returns, the store's clock has
        seen every version of the element another writer committed, unless ``new`` says the
        element is new (a fresh GUID), so a stamp taken now outranks them."""
        return self.node_id()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def write(self, change: Change, stored_keys: Optional[Sequence[Any]]) -> int:
        """Store ``change`` at the head of the log and return its position; ``stored_keys`` are
        the stored row's :data:`_KEY_COLUMNS` values when the element exists (``None``
        inserts it, numbering its ``row_no``; an update keeps it)."""
        seq = self.next_seq()
        row = change.to_row()
        keys = _keys_of(change)
        if stored_keys is None:
            marks = ", ".join("?" * (len(row) + 2))
            self.execute(f"INSERT INTO elements ({COLUMNS}, seq, parent_job_id, row_no)"
                         f" VALUES ({marks}, {self.dialect.next_row_number})",
                         (*row, seq, keys[-1]))
            return seq
        changed = [(column, value) for column, value, stored
                   in zip(_KEY_COLUMNS, keys, stored_keys) if value != stored]
        assignments = [f"{column}=?" for column, _ in changed] + [
            f"{column}=?" for column in (*_VERSION_COLUMNS, "seq")]
        self.execute(f"UPDATE elements SET {', '.join(assignments)} WHERE guid = ?",
                     (*(value for _, value in changed), *row[5:], seq, change.guid))
        return seq

    set_clock: ClassVar[str] = SET_CLOCK
    """How a commit records its clock (args: the clock, as text)."""

    def mark_statement(self) -> str:
        """How a commit marks the wall time of its last position (args: position, ms)."""
        return _MARK_SEQ

    def closing(self, clock: int) -> list[tuple[str, Sequence[Any]]]:
        """What a commit writes last: the wall time of the positions written (one mark per
        transaction), and the clock it got to, for the next writer to move past."""
        marks: list[tuple[str, Sequence[Any]]] = []
        if self.seq > self.seq_start:
            marks.append((self.mark_statement(), (self.seq, now_ms())))
        return [*marks, (self.set_clock, (str(clock),))]

    def commit(self, clock: int) -> None:
        """Write the :meth:`closing` statements (their results unread), then commit."""
        for statement, args in self.closing(clock):
            self.execute(statement, args)
        self.execute("COMMIT")

    def rollback(self) -> None:
        """Throw the transaction away (a dry run)."""
        self.execute("ROLLBACK")

    def write_local(self, change: Change, *, new: bool = False) -> int:
        """As :meth:`write`, for a version this store made itself: of an element known to be
        ``new`` (a fresh GUID), else of one that may be stored (it is looked up)."""
        if new:
            return self.write(change, None)
        stored = self.execute(f"SELECT {', '.join(_KEY_COLUMNS)} FROM elements WHERE guid = ?",
                              (change.guid,)).fetchone()
        return self.write(change, stored)


Tx = TypeVar("Tx", bound=SqlTransaction)
S = TypeVar("S", bound="SqlStore[Any]")


def joined(outer: Tx, *, rollback: bool) -> Tx:
    """The open transaction a transaction opened inside it joins. A rollback cannot be
    joined (it would throw away only with the outer one, or, committed with it, a dry run
    would write): refused, and the outer transaction then rolls back."""
    if rollback:
        raise InvalidRequest("a dry run cannot be made inside an open write transaction")
    return outer


class SqlApplyTarget:
    """A store inside one write transaction, as the shared apply algorithm sees it
    (:class:`wmx.store.protocol.ApplyTarget`): SQL only, no rule."""

    def __init__(self, store: SqlStore[Any], tx: SqlTransaction) -> None:
        self._store = store
        self._tx = tx
        self.node_id = tx.node_id()

    def stamp(self) -> int:
        return self._store.clock.now()

    def observe(self, hlc: int) -> None:
        self._store.clock.observe(hlc)

    def versions(self, guids: Sequence[str]) -> dict[str, StoredVersion]:
        return {row[0]: StoredVersion(Change.from_row(row), row[-1])
                for where, args in self._store.dialect.guid_sets(guids)
                for row in self._tx.execute(
                    f"SELECT {COLUMNS}, seq FROM elements WHERE {where}", args)}

    def id_taken(self, kind: str, int_id: int, guid: str) -> bool:
        return self._tx.execute(
            "SELECT 1 FROM elements WHERE kind = ? AND int_id = ? AND guid <> ? AND deleted = 0",
            (kind, int_id, guid)).fetchone() is not None or self._store._handed_out(
                self._tx, kind, int_id)

    def name_taken(self, kind: str, name: str, guid: str) -> bool:
        return self._store.name_taken(self._tx, kind, name, guid)

    def free_int_id(self, kind: str, origin: str) -> int:
        row = self._tx.execute(
            "SELECT id_block_start FROM nodes WHERE node_id = ? AND node_id <> ?",
            (origin, self.node_id)).fetchone()
        start = int(row[0]) if row else int(self._store._meta("id_block_start") or 1)
        return self._store._next_int_id_in(self._tx, kind, start)

    def logged_as_loser(self, change: Change) -> bool:
        return self._tx.execute(
            "SELECT 1 FROM conflicts WHERE guid = ? AND loser_origin = ? AND loser_hlc = ?",
            (change.guid, change.origin, change.hlc)).fetchone() is not None

    def job_records(self, job_guid: str) -> list[StoredVersion]:
        return [StoredVersion(Change.from_row(row), row[-1]) for row in self._tx.execute(
            f"SELECT {COLUMNS}, seq FROM elements WHERE job_guid = ?", (job_guid,))]

    def lost_delete(self, job_guid: str) -> Optional[Change]:
        row = self._tx.execute(
            "SELECT kind, int_id, loser_hlc, loser_origin FROM conflicts"
            " WHERE guid = ? AND loser_deleted = 1 ORDER BY loser_hlc DESC LIMIT 1",
            (job_guid,)).fetchone()
        return None if row is None else Change(guid=job_guid, kind=row[0], int_id=row[1],
                                               hlc=row[2], origin=row[3], deleted=True)

    def log_conflict(self, record: ConflictRecord) -> None:
        self._tx.execute(
            "INSERT INTO conflicts (detected_ms, guid, kind, int_id, winner_origin, winner_hlc,"
            " loser_origin, loser_hlc, loser_deleted, loser_body, reason, winner_int_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (datetime_to_ms(record.detected_at), record.guid, record.kind, record.int_id,
             record.winner_origin, record.winner_hlc, record.loser_origin, record.loser_hlc,
             int(record.loser_deleted), record.loser_body, record.reason,
             record.winner_int_id))

    def positions(self) -> tuple[int, int]:
        return self._tx.seq_start, self._tx.seq

    def written_since(self, guids: Sequence[str], since_seq: int) -> bool:
        if self._tx.seq_start <= since_seq:  # nothing at all was written since
            return False
        return any(self._tx.execute(
            f"SELECT 1 FROM elements WHERE {where} AND seq > ? LIMIT 1",
            (*args, since_seq)).fetchone() is not None
            for where, args in self._store.dialect.guid_sets(guids))

    def write(self, change: Change, previous: Optional[StoredVersion]) -> int:
        return self._tx.write(change, None if previous is None else _keys_of(previous.change))


class SqlStore(JobTracking[Tx], abc.ABC):
    """A repository in SQL tables (:class:`wmx.repository.base.Repository` and the element
    primitives :class:`JobTracking` is written over), whatever the database: a subclass
    supplies its dialect, its transactions and its reads."""

    dialect: ClassVar[Dialect]
    clock: HybridLogicalClock
    location: str
    """The location as shown to users (never with a password)."""

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location!r}>"

    # --- what a store supplies ----------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of the database: connections, locks, anything still open."""

    @abc.abstractmethod
    def transaction(self, *, rollback: bool = False) -> AbstractContextManager[Tx]:
        """A write transaction holding the store's write lock (see
        :meth:`wmx.repository.jobs.JobStore.transaction`), run through :meth:`_kept` once
        begun and locked; a database failure is named as a
        :class:`wmx.repository.base.RepositoryError`."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Session]:
        """A consistent snapshot for a read of several statements."""

    def _query(self) -> AbstractContextManager[Session]:
        """Where a read of one statement runs (it needs no snapshot of its own)."""
        return self._read()

    @abc.abstractmethod
    def _stage(self, tx: Tx, rows: list[tuple[Any, ...]]) -> None:
        """Append rows (:data:`STAGED_COLUMNS`) to the staged copy, :data:`LOAD_TABLE`."""

    def _give_back_space(self) -> None:
        """After a staged copy was dropped: return its space where the database does not."""

    # --- the write transaction's bookkeeping ----------------------------------------------------

    @contextlib.contextmanager
    def _kept(self, tx: Tx, *, rollback: bool) -> Iterator[Tx]:
        """Run a write transaction the store has begun and locked, to its end: rolled back
        (``rollback``), or marked and committed. Another connection (a sync, another process)
        may have stamped versions since this one last wrote: the clock moves past them first,
        so a later edit outranks them. On an exception the store rolls back."""
        self.clock.observe(tx.clock_seen)
        yield tx
        if rollback:
            tx.rollback()
        else:
            tx.commit(self.clock.last)

    def _meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        with self._query() as session:
            row = session.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    # --- element primitives used by JobTracking -----------------------------------------------

    def read_record(self, kind: str, *, int_id: Optional[int] = None,
                    guid: Optional[str] = None, name: Optional[str] = None,
                    ) -> Optional[tuple[str, dict]]:
        """(guid, Esri body) of one live element, by integer id, GUID or unique name."""
        args: tuple[object, ...]
        if guid is not None:
            where, args = "guid = ?", (guid,)
        elif int_id is not None:
            where, args = "int_id = ?", (int_id,)
        else:
            where, args = "name = ?", (name,)
        with self._query() as session:
            row = session.execute(
                f"SELECT guid, body FROM elements WHERE {where} AND kind = ? AND deleted = 0",
                (*args, kind)).fetchone()
        return (row[0], codec.loads(row[1])) if row else None

    def read_records(self, kind: str, *, job_guid: Optional[str] = None,
                     ) -> list[tuple[str, dict]]:
        """Live elements of one kind (optionally of one job), in integer-id then log order."""
        statement = "SELECT guid, body FROM elements WHERE kind = ? AND deleted = 0"
        args: tuple = (kind,)
        if job_guid is not None:
            statement += " AND job_guid = ?"
            args += (job_guid,)
        elif kind in NAMED_KINDS:
            # Every element of a named kind has a name; saying so lets SQLite search the
            # elements_name index instead of scanning every element (the REST server lists
            # users and groups on each request to check privileges).
            statement += " AND name IS NOT NULL"
        with self._query() as session:
            rows = session.execute(
                f"{statement} ORDER BY int_id{self.dialect.nulls_first}, seq", args).fetchall()
        return [(guid, codec.loads(body)) for guid, body in rows]

    def read_content(self, guid: str) -> Optional[bytes]:
        with self._query() as session:
            row = session.execute("SELECT content FROM elements WHERE guid = ? AND deleted = 0",
                                  (guid,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def job_ids(self) -> list[int]:
        with self._query() as session:
            rows = session.execute("SELECT int_id FROM elements WHERE kind = 'job'"
                                   " AND deleted = 0 ORDER BY int_id").fetchall()
        return [row[0] for row in rows]

    def child_job_ids(self, job_id: int) -> list[int]:
        with self._query() as session:
            rows = session.execute("SELECT int_id FROM elements WHERE parent_job_id = ?"
                                   " ORDER BY int_id", (int(job_id),)).fetchall()
        return [row[0] for row in rows]

    def next_int_id(self, tx: Tx, kind: str) -> int:
        """The next free integer id of ``kind`` inside this node's id block (read with it, in
        one statement)."""
        row = tx.execute(NEXT_IN_OWN_BLOCK, (kind, ID_BLOCK_SIZE)).fetchone()
        return int(row[0])

    def _next_int_id_in(self, tx: SqlTransaction, kind: str, start: int) -> int:
        row = tx.execute(
            "SELECT MAX(int_id) FROM elements WHERE kind = ? AND int_id >= ? AND int_id < ?",
            (kind, start, start + ID_BLOCK_SIZE)).fetchone()
        return (int(row[0]) + 1) if row and row[0] is not None else start

    def write_record(self, tx: Tx, record: Record, *, guid: Optional[str] = None,
                     job_guid: Optional[str] = None, content: Optional[bytes] = None,
                     deleted: bool = False) -> Change:
        """Write a new local version of an element (a tombstone when ``deleted``)."""
        known = guid or record.guid
        origin = tx.origin_for(new=not known)  # before the stamp: it may move the clock
        change = Change(
            guid=known or new_guid(), kind=record.KIND, hlc=self.clock.now(),
            origin=origin, deleted=deleted, int_id=record.int_id, job_guid=job_guid,
            name=record.unique_name if record.KIND in NAMED_KINDS else None,
            body=codec.dumps(record.to_esri()), content=content)
        tx.write_local(change, new=not known)
        return change

    def int_id_free(self, tx: Tx, kind: str, int_id: int) -> bool:
        return self.read_record(kind, int_id=int_id) is None and not self._handed_out(
            tx, kind, int_id)

    def _handed_out(self, tx: SqlTransaction, kind: str, int_id: int) -> bool:
        """Whether ``int_id``, which no element holds, was handed by :meth:`next_int_id` to a
        transaction that may not have committed yet. None is here: a transaction holds the
        lock from its first read to its commit."""
        return False

    def name_taken(self, tx: SqlTransaction, kind: str, name: str, guid: str) -> bool:
        return tx.execute(
            "SELECT 1 FROM elements WHERE kind = ? AND name = ? AND guid <> ? AND deleted = 0",
            (kind, name, guid)).fetchone() is not None

    def set_node_local(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute(SET_META, (key, value))

    # --- Repository protocol: identity and change feed ----------------------------------------

    def info(self) -> NodeInfo:
        with self._read() as session:
            meta = dict(session.execute("SELECT key, value FROM meta").fetchall())
            seq = head_of(session)
        return NodeInfo(node_id=meta["node_id"], name=meta["name"],
                        incarnation=meta["incarnation"], seq=seq, clock=self.clock.last,
                        parent_node_id=meta.get("parent_node_id"),
                        id_block_start=int(meta.get("id_block_start", "1")))

    def _seq_written_since(self, session: Session, since_time: datetime) -> int:
        """The log position just before the first write at or after ``since_time``."""
        row = session.execute("SELECT MIN(seq) FROM seq_marks WHERE at_ms >= ?",
                              (datetime_to_ms(since_time),)).fetchone()
        if row is None or row[0] is None:
            return head_of(session)
        previous = session.execute("SELECT MAX(seq) FROM seq_marks WHERE seq < ?",
                                   (row[0],)).fetchone()
        return int(previous[0]) if previous and previous[0] is not None else 0

    def changes(self, since_seq: int, *, limit: int, origin: Optional[str] = None,
                exclude_origin: Optional[str] = None,
                since_time: Optional[datetime] = None) -> ChangePage:
        if limit < 1:
            raise InvalidRequest("limit must be at least 1")
        with self._read() as session:
            if since_time is not None:
                since_seq = min(since_seq, self._seq_written_since(session, since_time))
            statement = f"SELECT {COLUMNS}, seq FROM elements WHERE seq > ?"
            args: list[Any] = [since_seq]
            if origin is not None:
                statement += " AND origin = ?"
                args.append(origin)
            if exclude_origin is not None:
                statement += " AND origin <> ?"
                args.append(exclude_origin)
            rows, more = bounded_page(
                session.execute(statement + " ORDER BY seq LIMIT ?", (*args, limit)), limit)
            if more:
                return ChangePage([Change.from_row(r) for r in rows], rows[-1][-1], True)
            high = head_of(session)
        return ChangePage([Change.from_row(r) for r in rows], max(high, since_seq), False)

    # --- Repository protocol: applying versions from elsewhere ---------------------------------

    def apply(self, changes: Sequence[Change], *, parent_node: str,
              source_node: Optional[str] = None, detect_since: Optional[int] = None,
              policy: ConflictPolicy = ConflictPolicy.NEWEST, dry_run: bool = False,
              overlay: Sequence[Change] = (),
              refuse_if_changed_since: Optional[int] = None) -> ApplyReport:
        """Apply versions in one transaction, keeping whichever version the order prefers.

        ``source_node`` is the child the versions come from when the parent pulls; then
        ``detect_since`` (the parent's push checkpoint for that child) tells which local rows
        changed since the child last heard from the parent, i.e. what counts as a conflict,
        and losers go to the conflict log. ``overlay`` versions are applied first without being
        reported (a dry run uses it to stand in for earlier, unwritten batches).

        ``refuse_if_changed_since`` (a push: how far the parent has consolidated this
        child's log) applies nothing, and says so, if an element of the batch was written here
        after it: the parent must consolidate that version first, where a conflict with the
        one being pushed is detected and logged, instead of being decided here unseen.
        """
        options = ApplyOptions(parent_node, source_node, detect_since, policy, dry_run, overlay,
                               refuse_if_changed_since)
        refuse_inadmissible(self.clock, (change.to_row() for change in (*overlay, *changes)))
        with self.transaction(rollback=dry_run) as tx:
            return apply_batch(SqlApplyTarget(self, tx), changes, options)

    # --- Repository protocol: snapshots (replicate) ----------------------------------------------

    def snapshot(self, cursor: int, limit: int) -> SnapshotPage:
        """Pages in the order rows were first stored; the cursor is the last ``row_no`` sent
        (looked up once per page by GUID, so each row is handed on as the driver made it)."""
        with self._read() as session:
            rows, more = bounded_page(session.execute(
                f"SELECT {COLUMNS} FROM elements WHERE row_no > ?"
                " ORDER BY row_no LIMIT ?", (cursor, limit)), limit)
            if not rows:
                return SnapshotPage([], cursor, False)
            last = session.execute("SELECT row_no FROM elements WHERE guid = ?",
                                   (rows[-1][0],)).fetchone()
        return SnapshotPage(rows, int(last[0]), more)

    def begin_load(self) -> str:
        load_id = str(uuid.uuid4())
        with self.transaction() as tx:
            tx.execute(f"DROP TABLE IF EXISTS {LOAD_TABLE}")
            tx.execute(element_table(self.dialect, LOAD_TABLE, key=""))
            tx.execute(SET_META, ("load_id", load_id))
            tx.execute(SET_META, ("load_seq", str(tx.seq_start)))
        return load_id

    def _check_load(self, tx: SqlTransaction, load_id: str) -> int:
        meta = dict(tx.execute(
            "SELECT key, value FROM meta WHERE key IN ('load_id', 'load_seq')").fetchall())
        if meta.get("load_id") != load_id:
            raise InvalidRequest("No such snapshot load in progress (it was replaced or ended)")
        return int(meta["load_seq"])

    def load_rows(self, load_id: str, rows: Iterable[tuple]) -> None:
        """Stage one page of a snapshot beside the live data, numbered above the log position
        the copy began at (:meth:`_stage` writes it); the page and its ``load_seq`` share one
        transaction, so they never disagree after a crash."""
        with self.transaction() as tx:
            seq = self._check_load(tx, load_id)
            batch = [(*row[:len(ROW_FIELDS)], seq + offset,
                      parent_job_id(row[_KIND], row[_BODY], row[_DELETED]))
                     for offset, row in enumerate(rows, start=1)]
            newest = refuse_inadmissible(self.clock, batch)
            self._stage(tx, batch)
            if newest is not None:  # the newest stamp, once per page, not once per row
                self.clock.observe(newest)
            tx.execute("UPDATE meta SET value = ? WHERE key = 'load_seq'",
                       (str(seq + len(batch)),))

    def commit_load(self, load_id: str, *, parent_node_id: str, id_block_start: int,
                    new_node_id: Optional[str] = None) -> NodeInfo:
        """Swap the staged copy in, atomically: readers see the old contents or the new.

        The staged table gets its indexes here, the GUID key included (a duplicate GUID fails
        the swap and leaves the child as it was)."""
        with self.transaction() as tx:
            self._check_load(tx, load_id)
            tx.execute("DROP TABLE elements")
            tx.execute(f"ALTER TABLE {LOAD_TABLE} RENAME TO elements")
            tx.execute(self.dialect.staged_key)
            for statement in ELEMENT_INDEXES:
                tx.execute(statement)
            updates = {"parent_node_id": parent_node_id, "id_block_start": str(id_block_start),
                       "incarnation": str(uuid.uuid4())}
            if new_node_id:
                updates["node_id"] = new_node_id
            for key, value in updates.items():
                tx.execute(SET_META, (key, value))
            tx.execute("DELETE FROM meta WHERE key IN ('load_id', 'load_seq')")
            tx.seq = head_of(tx.session)
        return self.info()

    def abort_load(self, load_id: str) -> None:
        """Drop the staged copy and give its space back: a replicate that failed because the
        disk filled up must not leave it full."""
        with self.transaction() as tx:
            if self._meta("load_id") == load_id:
                tx.execute(f"DROP TABLE IF EXISTS {LOAD_TABLE}")
                tx.execute("DELETE FROM meta WHERE key IN ('load_id', 'load_seq')")
        self._give_back_space()

    # --- Repository protocol: replication info ----------------------------------------------------

    def nodes(self) -> list[NodeRecord]:
        with self._read() as session:
            rows = session.execute(
                f"SELECT {', '.join(_NODE_COLUMNS)} FROM nodes ORDER BY name").fetchall()
        return [NodeRecord(node_id=r[0], name=r[1], url=r[2], is_parent=bool(r[3]),
                           is_connected=bool(r[4]), last_sync=ms_to_datetime(r[5]),
                           id_block_start=r[6], incarnation=r[7], pull_seq=r[8], push_seq=r[9])
                for r in rows]

    def save_node(self, node: NodeRecord) -> None:
        with self.transaction() as tx:
            tx.execute(_SAVE_NODE, (
                node.node_id, node.name, node.url, int(node.is_parent), int(node.is_connected),
                datetime_to_ms(node.last_sync), node.id_block_start, node.incarnation,
                node.pull_seq, node.push_seq))

    def clear_replication_info(self) -> None:
        with self.transaction() as tx:
            tx.execute("DELETE FROM nodes")
            tx.execute("DELETE FROM meta WHERE key = 'parent_node_id'")

    def renew_incarnation(self) -> str:
        incarnation = str(uuid.uuid4())
        self.set_node_local("incarnation", incarnation)
        return incarnation

    def conflicts(self) -> list[ConflictRecord]:
        with self._read() as session:
            rows = session.execute(
                f"SELECT {_CONFLICT_COLUMNS} FROM conflicts ORDER BY id").fetchall()
        return [ConflictRecord(guid=r[0], kind=r[1], int_id=r[2], winner_origin=r[3],
                               winner_hlc=r[4], loser_origin=r[5], loser_hlc=r[6],
                               loser_deleted=bool(r[7]), loser_body=r[8], reason=r[9],
                               detected_at=ms_to_datetime(r[10]), winner_int_id=r[11])
                for r in rows]

    # --- inspection (tests, status, verify) -----------------------------------------------------

    def all_rows(self) -> list[tuple]:
        """Every element version (tombstones included), in GUID byte order, without ``seq``."""
        with self._read() as session:
            return [tuple(row) for row in session.execute(
                f"SELECT {COLUMNS} FROM elements ORDER BY guid{self.dialect.byte_order}")]

    def element_count(self) -> int:
        with self._read() as session:
            return int(session.execute("SELECT COUNT(*) FROM elements").fetchone()[0])
