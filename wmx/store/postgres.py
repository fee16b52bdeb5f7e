"""The PostgreSQL store: a repository in one schema of a PostgreSQL database (SPEC §2.7).

Location: ``postgresql://[user@]host[:port]/dbname[?schema=NAME&…]`` (``postgres://`` too); one
repository per schema, ``wmx`` unless ``schema=`` names another; every other query parameter is
libpq's. The tables are the embedded store's (an ``elements`` table whose ``seq`` column is the
change log, tombstones, node, conflict and wall-time marks), so the merge rules and the apply
algorithm are the shared ones (:mod:`wmx.store.apply` over this module's :class:`_ApplyTarget`)
and the Esri-level operations are :class:`wmx.repository.jobs.JobTracking`. ``parentJobId`` is a
real (generated) column, not a JSON lookup.

Change-log order follows commit order. Every write transaction (several threads of several
``wmx serve`` processes may write at once) first takes ``pg_advisory_xact_lock`` on the
repository's key, in READ COMMITTED, and only then reads ``MAX(seq)`` and allocates positions
above it. The lock is released after the commit is visible (PostgreSQL releases transaction
locks after marking it committed), so the next writer's first statement already sees every
position handed out before: positions are unique, and a position is never visible to a feed
reader before a smaller one is. A sequence would give unique positions but let a transaction
that drew 9 commit after one that drew 10, so a reader who saw 10 and checkpointed it would
skip 9 for good. Readers are never blocked; a read of the feed runs in one REPEATABLE READ
snapshot, so its page and the log head it reports agree.

A replicate stages its copy with ``COPY`` into ``elements_load`` and swaps it in with one
transaction (drop, rename, index), so readers see the old contents or the new, never a mix.

This module must never put a password in a message, a log line or an exception: the location
it shows is the one given without its password (:class:`PostgresLocation`). It knows SQL, never
HTTP, value tables or the engine's order of operations.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Optional

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from wmx.model import codec
from wmx.model.changes import ROW_FIELDS, Change, ConflictPolicy
from wmx.model.clock import HybridLogicalClock, WallClock
from wmx.model.guids import new_guid
from wmx.model.records import ID_BLOCK_SIZE, NAMED_KINDS, Record
from wmx.repository.base import (
    ApplyReport,
    ChangePage,
    ConflictRecord,
    InvalidRequest,
    NodeInfo,
    NodeRecord,
    RepositoryBusy,
    RepositoryError,
    RepositoryFull,
    RepositoryNotFound,
    RepositoryUnavailable,
    SnapshotPage,
)
from wmx.repository.jobs import JobTracking
from wmx.store.apply import ApplyOptions, apply_batch
from wmx.store.postgres_location import PostgresLocation
from wmx.store.protocol import StoredVersion
from wmx.store.rows import (
    SCHEMA_VERSION,
    bounded_page,
    datetime_to_ms,
    ms_to_datetime,
    now_ms,
    refuse_inadmissible,
)

DEFAULT_POOL_SIZE = 10
"""Connections per process: ``wmx serve``'s 8 request threads, plus a sync and a spare."""
_LOCK_CLASS = 0x776D78
"""First key of the advisory lock (``wmx``); the second is the hash of the schema's name."""
_COLUMNS = ", ".join(ROW_FIELDS)
_MARKS = ", ".join(["%s"] * (len(ROW_FIELDS) + 1))
_LOAD_TABLE = "elements_load"
_PARENT_JOB = (
    "parent_job_id BIGINT GENERATED ALWAYS AS (CASE WHEN kind = 'job' AND deleted = 0 AND"
    " jsonb_typeof(body::jsonb -> 'parentJobId') = 'number'"
    " THEN (body::jsonb ->> 'parentJobId')::numeric::bigint END) STORED")
"""Esri's job JSON lists ``childJobIds``: this column finds them without reading every job."""
_ELEMENT_TABLE = """CREATE TABLE {table} (
    guid TEXT NOT NULL{key}, kind TEXT NOT NULL, int_id BIGINT, job_guid TEXT, name TEXT,
    body TEXT, content BYTEA, hlc BIGINT NOT NULL, origin TEXT NOT NULL,
    deleted SMALLINT NOT NULL DEFAULT 0, seq BIGINT NOT NULL,
    row_no BIGINT GENERATED ALWAYS AS IDENTITY, """ + _PARENT_JOB + ")"
"""``row_no`` is the snapshot cursor: numbered once, when the row is first stored, it stays
while the element's versions move up the log, so a replicate reading pages while the parent
is edited meets every element once (by ``seq`` an element edited after its page was read would
come again, and the child would refuse its copy). Rows stored after the copy began are read or
not; the next sync sends them either way (they are past the position the copy started from)."""
_ELEMENT_INDEXES = (
    "CREATE UNIQUE INDEX elements_seq ON elements (seq)",
    "CREATE UNIQUE INDEX elements_row_no ON elements (row_no)",
    "CREATE INDEX elements_kind_id ON elements (kind, int_id) WHERE int_id IS NOT NULL",
    "CREATE INDEX elements_job ON elements (job_guid) WHERE job_guid IS NOT NULL",
    "CREATE INDEX elements_name ON elements (kind, name) WHERE name IS NOT NULL",
    "CREATE INDEX elements_parent_job ON elements (parent_job_id)"
    " WHERE parent_job_id IS NOT NULL",
)
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _ELEMENT_TABLE.format(table="elements", key=" PRIMARY KEY"),
    *_ELEMENT_INDEXES,
    # One mark per write transaction: lets a wall-clock lower bound map to a log position.
    "CREATE TABLE seq_marks (seq BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL)",
    "CREATE INDEX seq_marks_at ON seq_marks (at_ms)",
    """CREATE TABLE nodes (
        node_id TEXT PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL DEFAULT '',
        is_parent SMALLINT NOT NULL DEFAULT 0, is_connected SMALLINT NOT NULL DEFAULT 1,
        last_sync_ms BIGINT, id_block_start BIGINT NOT NULL DEFAULT 1,
        incarnation TEXT NOT NULL DEFAULT '', pull_seq BIGINT NOT NULL DEFAULT 0,
        push_seq BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE conflicts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, detected_ms BIGINT NOT NULL,
        guid TEXT NOT NULL, kind TEXT NOT NULL, int_id BIGINT, winner_origin TEXT NOT NULL,
        winner_hlc BIGINT NOT NULL, loser_origin TEXT NOT NULL, loser_hlc BIGINT NOT NULL,
        loser_deleted SMALLINT NOT NULL, loser_body TEXT, reason TEXT NOT NULL,
        winner_int_id BIGINT)""",
    "CREATE INDEX conflicts_guid ON conflicts (guid)",
)
_UPSERT = (f"INSERT INTO elements ({_COLUMNS}, seq) VALUES ({_MARKS}) ON CONFLICT (guid) DO UPDATE"
           " SET " + ", ".join(f"{column} = EXCLUDED.{column}"
                              for column in (*ROW_FIELDS[1:], "seq")))
_SET_META = ("INSERT INTO meta (key, value) VALUES (%s, %s)"
             " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
_LOG_HEAD = "SELECT COALESCE(MAX(seq), 0) FROM elements"
_NODE_COLUMNS = ("node_id, name, url, is_parent, is_connected, last_sync_ms, id_block_start,"
                 " incarnation, pull_seq, push_seq")
_CONFLICT_COLUMNS = ("guid, kind, int_id, winner_origin, winner_hlc, loser_origin, loser_hlc,"
                     " loser_deleted, loser_body, reason, detected_ms, winner_int_id")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _translate(where: PostgresLocation, exc: Exception) -> RepositoryError:
    """The RepositoryError a database failure is, with a message safe to show."""
    reason = where.scrub(_first_line(exc))
    location = where.public
    if isinstance(exc, PoolTimeout):
        return RepositoryUnavailable(f"Cannot reach {location}: no database connection in time "
                                     "(the server is down, or every connection is busy)")
    if isinstance(exc, (errors.LockNotAvailable, errors.DeadlockDetected, errors.QueryCanceled,
                        errors.SerializationFailure)):
        return RepositoryBusy(f"{location} is busy: {reason}")
    if isinstance(exc, (errors.DiskFull, errors.OutOfMemory)):
        return RepositoryFull(f"{location}: the database server is out of space; nothing was "
                              "written (free some space and run again)")
    if isinstance(exc, (errors.InvalidCatalogName, errors.InvalidSchemaName,
                        errors.UndefinedTable)) or getattr(exc, "sqlstate", None) == "3D000":
        return RepositoryNotFound(f"{location}: no such wmx repository ({reason})")
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        return InvalidRequest(f"{location} refused the data: {reason}")
    if isinstance(exc, errors.InsufficientPrivilege):
        return RepositoryUnavailable(f"{location}: the database user may not do this: {reason}")
    if isinstance(exc, psycopg.OperationalError):
        if "does not exist" in reason and "database" in reason:
            return RepositoryNotFound(f"{location}: no such database ({reason})")
        return RepositoryUnavailable(f"Cannot reach {location}: {reason}")
    return RepositoryUnavailable(f"{location}: {reason}")


def _connect_options(where: PostgresLocation, timeout: float) -> dict[str, Any]:
    """Options for every connection: autocommit (transactions are begun explicitly, each with
    its isolation level), and a connect timeout unless the location sets one."""
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in conninfo_to_dict(where.conninfo):
        options["connect_timeout"] = max(1, int(timeout))
    return options


def _set_session(connection: psycopg.Connection, schema: str, timeout: float) -> None:
    connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    connection.execute(sql.SQL("SET lock_timeout = {}").format(
        sql.Literal(f"{int(timeout * 1000)}ms")))


def _connect(where: PostgresLocation, timeout: float) -> psycopg.Connection:
    try:
        connection = psycopg.connect(where.conninfo, **_connect_options(where, timeout))
    except psycopg.Error as exc:
        raise _translate(where, exc) from None
    return connection


def _rollback_quietly(connection: psycopg.Connection) -> None:
    if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            connection.execute("ROLLBACK")


class _Transaction:
    """One write transaction: holds the log lock, allocates log positions in commit order."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection
        row = connection.execute(_LOG_HEAD).fetchone()
        self.seq_start = int(row[0]) if row else 0
        self.seq = self.seq_start
        self._node_id: Optional[str] = None

    def execute(self, statement: Any, args: Optional[Sequence[Any]] = None) -> psycopg.Cursor:
        return self.connection.execute(statement, args)

    def write(self, change: Change) -> int:
        """Store ``change`` as its element's version, at the head of the log (one upsert: the
        row keeps its ``row_no``)."""
        self.seq += 1
        self.execute(_UPSERT, (*change.to_row(), self.seq))
        return self.seq

    def node_id(self, store: PostgresRepository) -> str:
        """This store's node id, read once per transaction (every local write is stamped with
        it)."""
        if self._node_id is None:
            self._node_id = store._meta("node_id") or ""
        return self._node_id


class _ApplyTarget:
    """This store inside one write transaction, as the shared apply algorithm sees it
    (:class:`wmx.store.protocol.ApplyTarget`): SQL only, no rule."""

    def __init__(self, store: PostgresRepository, tx: _Transaction) -> None:
        self._store = store
        self._tx = tx
        self.node_id = tx.node_id(store)

    def stamp(self) -> int:
        return self._store.clock.now()

    def observe(self, hlc: int) -> None:
        self._store.clock.observe(hlc)

    def versions(self, guids: Sequence[str]) -> dict[str, StoredVersion]:
        rows = self._tx.execute(f"SELECT {_COLUMNS}, seq FROM elements WHERE guid = ANY(%s)",
                                (list(guids),))
        return {row[0]: StoredVersion(Change.from_row(row), row[-1]) for row in rows}

    def id_taken(self, kind: str, int_id: int, guid: str) -> bool:
        return self._tx.execute(
            "SELECT 1 FROM elements WHERE kind = %s AND int_id = %s AND guid <> %s"
            " AND deleted = 0", (kind, int_id, guid)).fetchone() is not None

    def name_taken(self, kind: str, name: str, guid: str) -> bool:
        return self._store.name_taken(self._tx, kind, name, guid)

    def free_int_id(self, kind: str, origin: str) -> int:
        row = self._tx.execute(
            "SELECT id_block_start FROM nodes WHERE node_id = %s AND node_id <> %s",
            (origin, self.node_id)).fetchone()
        start = int(row[0]) if row else int(self._store._meta("id_block_start") or 1)
        return self._store._next_int_id_in(self._tx, kind, start)

    def logged_as_loser(self, change: Change) -> bool:
        return self._tx.execute(
            "SELECT 1 FROM conflicts WHERE guid = %s AND loser_origin = %s AND loser_hlc = %s",
            (change.guid, change.origin, change.hlc)).fetchone() is not None

    def log_conflict(self, record: ConflictRecord) -> None:
        self._tx.execute(
            "INSERT INTO conflicts (detected_ms, guid, kind, int_id, winner_origin, winner_hlc,"
            " loser_origin, loser_hlc, loser_deleted, loser_body, reason, winner_int_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (datetime_to_ms(record.detected_at), record.guid, record.kind, record.int_id,
             record.winner_origin, record.winner_hlc, record.loser_origin, record.loser_hlc,
             int(record.loser_deleted), record.loser_body, record.reason,
             record.winner_int_id))

    def positions(self) -> tuple[int, int]:
        return self._tx.seq_start, self._tx.seq

    def written_since(self, guids: Sequence[str], since_seq: int) -> bool:
        return self._tx.seq_start > since_seq and self._tx.execute(
            "SELECT 1 FROM elements WHERE guid = ANY(%s) AND seq > %s LIMIT 1",
            (list(guids), since_seq)).fetchone() is not None

    def write(self, change: Change, previous: Optional[StoredVersion]) -> int:
        return self._tx.write(change)


class PostgresRepository(JobTracking):
    """A repository in a PostgreSQL schema; implements :class:`wmx.repository.base.Repository`
    and the store primitives :class:`JobTracking` is written over. Safe to share between
    threads: each thread's transaction has a pooled connection of its own."""

    def __init__(self, location: str, *, wall_clock: Optional[WallClock] = None,
                 timeout: float = 30.0, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self._where = PostgresLocation.parse(str(location))
        self.location = self._where.public
        self._timeout = timeout
        self._local = threading.local()
        with contextlib.closing(_connect(self._where, timeout)) as probe:
            meta = self._identify(probe)
        kwargs = {"wall": wall_clock} if wall_clock else {}
        self.clock = HybridLogicalClock(int(meta.get("clock", "0")), **kwargs)
        schema = self._where.schema
        self._pool = ConnectionPool(
            self._where.conninfo, min_size=1, max_size=max(1, pool_size), name="wmx", num_workers=1,
            kwargs=_connect_options(self._where, timeout), timeout=timeout, open=False,
            configure=lambda connection: _set_session(connection, schema, timeout))
        self._pool.open()

    def _identify(self, connection: psycopg.Connection) -> dict[str, str]:
        """The schema's meta table, or RepositoryNotFound if the schema holds no repository."""
        try:
            _set_session(connection, self._where.schema, self._timeout)
            found = connection.execute("SELECT to_regclass('meta') IS NOT NULL AND"
                                       " to_regclass('elements') IS NOT NULL").fetchone()
            if not (found and found[0]):
                raise RepositoryNotFound(
                    f"{self.location}: schema {self._where.schema!r} holds no wmx repository "
                    "(create one with wmx init)")
            meta: dict[str, str] = dict(
                connection.execute("SELECT key, value FROM meta").fetchall())
        except psycopg.Error as exc:
            raise _translate(self._where, exc) from None
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise RepositoryNotFound(f"{self.location} is not a wmx repository")
        return meta

    # --- creation ---------------------------------------------------------------------------

    @classmethod
    def create(cls, location: str, *, name: str, job_id_start: int = 1,
               wall_clock: Optional[WallClock] = None) -> PostgresRepository:
        """Create an empty repository in the location's schema (no configuration; see
        ``wmx.repository.setup``), in one transaction: it exists whole or not at all."""
        where = PostgresLocation.parse(location)
        if not name or not name.strip():
            raise InvalidRequest("A repository needs a name")
        with contextlib.closing(_connect(where, 30.0)) as connection:
            try:
                connection.execute("BEGIN")
                connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(where.schema)))
                _set_session(connection, where.schema, 30.0)
                taken = connection.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
                if taken and taken[0]:
                    raise InvalidRequest(f"{where.public} already holds a repository "
                                         f"(schema {where.schema!r})")
                for statement in _SCHEMA:
                    connection.execute(statement)
                with connection.cursor() as cursor:
                    cursor.executemany("INSERT INTO meta (key, value) VALUES (%s, %s)", [
                        ("schema_version", SCHEMA_VERSION), ("node_id", str(uuid.uuid4())),
                        ("name", name.strip()), ("incarnation", str(uuid.uuid4())),
                        ("id_block_start", str(int(job_id_start))), ("clock", "0")])
                connection.execute("COMMIT")
            except psycopg.Error as exc:
                _rollback_quietly(connection)
                raise _translate(where, exc) from None
            except BaseException:
                _rollback_quietly(connection)
                raise
        return cls(location, wall_clock=wall_clock)

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostgresRepository {self.location!r}>"

    def _current(self) -> Optional[_Transaction]:
        return getattr(self._local, "tx", None)

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection() as connection:
                yield connection
        except (psycopg.Error, PoolTimeout) as exc:
            raise _translate(self._where, exc) from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[psycopg.Connection]:
        """One consistent snapshot for a read of several statements (inside a write
        transaction of this thread: that transaction, so it sees its own writes)."""
        current = self._current()
        if current is not None:
            yield current.connection
            return
        with self._pooled() as connection:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield connection
            finally:
                _rollback_quietly(connection)

    def _meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        with self._read() as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return str(row[0]) if row else default

    @contextlib.contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[_Transaction]:
        """A write transaction holding the log lock; ``rollback=True`` runs it and throws it
        away (dry runs). Re-entrant within a thread: a transaction opened inside another one
        joins it, so a read-modify-write made of smaller writes commits as one."""
        current = self._current()
        if current is not None:
            yield current
            return
        with self._pooled() as connection:
            try:
                connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                connection.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                                   (_LOCK_CLASS, self._where.schema))
                tx = self._local.tx = _Transaction(connection)
                # Another process may have stamped versions since this one last wrote: move
                # past them first, so a later edit outranks them.
                self.clock.observe(int(self._meta("clock", "0") or 0))
                yield tx
                if rollback:
                    connection.execute("ROLLBACK")
                    return
                if tx.seq > tx.seq_start:
                    connection.execute(
                        "INSERT INTO seq_marks (seq, at_ms) VALUES (%s, %s) ON CONFLICT (seq)"
                        " DO UPDATE SET at_ms = EXCLUDED.at_ms", (tx.seq, now_ms()))
                connection.execute(_SET_META, ("clock", str(self.clock.last)))
                connection.execute("COMMIT")
            except psycopg.Error as exc:
                _rollback_quietly(connection)
                raise _translate(self._where, exc) from None
            except BaseException:
                _rollback_quietly(connection)
                raise
            finally:
                self._local.tx = None

    # --- element primitives used by JobTracking -----------------------------------------------

    def read_record(self, kind: str, *, int_id: Optional[int] = None,
                    guid: Optional[str] = None, name: Optional[str] = None,
                    ) -> Optional[tuple[str, dict]]:
        """(guid, Esri body) of one live element, by integer id, GUID or unique name."""
        args: tuple[object, ...]
        if guid is not None:
            where, args = "guid = %s", (guid,)
        elif int_id is not None:
            where, args = "int_id = %s", (int_id,)
        else:
            where, args = "name = %s", (name,)
        with self._read() as connection:
            row = connection.execute(
                f"SELECT guid, body FROM elements WHERE {where} AND kind = %s AND deleted = 0",
                (*args, kind)).fetchone()
        return (row[0], codec.loads(row[1])) if row else None

    def read_records(self, kind: str, *, job_guid: Optional[str] = None,
                     ) -> list[tuple[str, dict]]:
        """Live elements of one kind (optionally of one job), in integer-id then log order."""
        statement = "SELECT guid, body FROM elements WHERE kind = %s AND deleted = 0"
        args: tuple = (kind,)
        if job_guid is not None:
            statement += " AND job_guid = %s"
            args += (job_guid,)
        with self._read() as connection:
            rows = connection.execute(statement + " ORDER BY int_id NULLS FIRST, seq",
                                      args).fetchall()
        return [(guid, codec.loads(body)) for guid, body in rows]

    def read_content(self, guid: str) -> Optional[bytes]:
        with self._read() as connection:
            row = connection.execute(
                "SELECT content FROM elements WHERE guid = %s AND deleted = 0",
                (guid,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def job_ids(self) -> list[int]:
        with self._read() as connection:
            rows = connection.execute("SELECT int_id FROM elements WHERE kind = 'job' AND"
                                      " deleted = 0 ORDER BY int_id").fetchall()
        return [row[0] for row in rows]

    def child_job_ids(self, job_id: int) -> list[int]:
        with self._read() as connection:
            rows = connection.execute(
                "SELECT int_id FROM elements WHERE parent_job_id = %s ORDER BY int_id",
                (int(job_id),)).fetchall()
        return [row[0] for row in rows]

    def next_int_id(self, tx: _Transaction, kind: str) -> int:
        """The next free integer id of ``kind`` inside this node's id block."""
        return self._next_int_id_in(tx, kind, int(self._meta("id_block_start") or 1))

    def _next_int_id_in(self, tx: _Transaction, kind: str, start: int) -> int:
        row = tx.execute(
            "SELECT MAX(int_id) FROM elements WHERE kind = %s AND int_id >= %s AND int_id < %s",
            (kind, start, start + ID_BLOCK_SIZE)).fetchone()
        return (int(row[0]) + 1) if row and row[0] is not None else start

    def write_record(self, tx: _Transaction, record: Record, *, guid: Optional[str] = None,
                     job_guid: Optional[str] = None, content: Optional[bytes] = None,
                     deleted: bool = False) -> Change:
        """Write a new local version of an element (a tombstone when ``deleted``)."""
        guid = guid or record.guid or new_guid()
        change = Change(
            guid=guid, kind=record.KIND, hlc=self.clock.now(), origin=tx.node_id(self),
            deleted=deleted, int_id=record.int_id, job_guid=job_guid,
            name=record.unique_name if record.KIND in NAMED_KINDS else None,
            body=codec.dumps(record.to_esri()), content=content)
        tx.write(change)
        return change

    def name_taken(self, tx: _Transaction, kind: str, name: str, guid: str) -> bool:
        return tx.execute(
            "SELECT 1 FROM elements WHERE kind = %s AND name = %s AND guid <> %s"
            " AND deleted = 0", (kind, name, guid)).fetchone() is not None

    def set_node_local(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute(_SET_META, (key, value))

    # --- Repository protocol: identity and change feed --------------------------------------

    def info(self) -> NodeInfo:
        with self._read() as connection:
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            row = connection.execute(_LOG_HEAD).fetchone()
        return NodeInfo(node_id=meta["node_id"], name=meta["name"],
                        incarnation=meta["incarnation"], seq=int(row[0]) if row else 0,
                        clock=self.clock.last, parent_node_id=meta.get("parent_node_id"),
                        id_block_start=int(meta.get("id_block_start", "1")))

    def _seq_written_since(self, connection: psycopg.Connection, since_time: datetime) -> int:
        """The log position just before the first write at or after ``since_time``."""
        row = connection.execute("SELECT MIN(seq) FROM seq_marks WHERE at_ms >= %s",
                                 (datetime_to_ms(since_time),)).fetchone()
        if row is None or row[0] is None:
            head = connection.execute(_LOG_HEAD).fetchone()
            return int(head[0]) if head else 0
        previous = connection.execute("SELECT MAX(seq) FROM seq_marks WHERE seq < %s",
                                      (row[0],)).fetchone()
        return int(previous[0]) if previous and previous[0] is not None else 0

    def changes(self, since_seq: int, *, limit: int, origin: Optional[str] = None,
                exclude_origin: Optional[str] = None,
                since_time: Optional[datetime] = None) -> ChangePage:
        if limit < 1:
            raise InvalidRequest("limit must be at least 1")
        with self._read() as connection:
            if since_time is not None:
                since_seq = min(since_seq, self._seq_written_since(connection, since_time))
            statement = f"SELECT {_COLUMNS}, seq FROM elements WHERE seq > %s"
            args: list[Any] = [since_seq]
            if origin is not None:
                statement += " AND origin = %s"
                args.append(origin)
            if exclude_origin is not None:
                statement += " AND origin <> %s"
                args.append(exclude_origin)
            with connection.cursor() as cursor:
                cursor.execute(statement + " ORDER BY seq LIMIT %s", (*args, limit))
                rows, more = bounded_page(_as_rows(cursor), limit)
            if more:
                return ChangePage([Change.from_row(r) for r in rows], rows[-1][-1], True)
            head = connection.execute(_LOG_HEAD).fetchone()
        high = int(head[0]) if head else 0
        return ChangePage([Change.from_row(r) for r in rows], max(high, since_seq), False)

    # --- Repository protocol: applying versions from elsewhere --------------------------------

    def apply(self, changes: Sequence[Change], *, parent_node: str,
              source_node: Optional[str] = None, detect_since: Optional[int] = None,
              policy: ConflictPolicy = ConflictPolicy.NEWEST, dry_run: bool = False,
              overlay: Sequence[Change] = (),
              refuse_if_changed_since: Optional[int] = None) -> ApplyReport:
        """As :meth:`wmx.repository.embedded.EmbeddedRepository.apply`: one transaction,
        the shared rules, nothing written by a dry run."""
        options = ApplyOptions(parent_node, source_node, detect_since, policy, dry_run, overlay,
                               refuse_if_changed_since)
        refuse_inadmissible(self.clock, (change.to_row() for change in (*overlay, *changes)))
        with self.transaction(rollback=dry_run) as tx:
            return apply_batch(_ApplyTarget(self, tx), changes, options)

    # --- Repository protocol: snapshots (replicate) -------------------------------------------

    def snapshot(self, cursor: int, limit: int) -> SnapshotPage:
        """Pages in the order rows were first stored; the cursor is the last ``row_no`` sent."""
        with self._read() as connection, connection.cursor() as db:
            db.execute(f"SELECT {_COLUMNS}, row_no FROM elements WHERE row_no > %s"
                       " ORDER BY row_no LIMIT %s", (cursor, limit))
            rows, more = bounded_page(_as_rows(db), limit)
        if not rows:
            return SnapshotPage([], cursor, False)
        return SnapshotPage([row[:-1] for row in rows], int(rows[-1][-1]), more)

    def begin_load(self) -> str:
        load_id = str(uuid.uuid4())
        with self.transaction() as tx:
            tx.execute(f"DROP TABLE IF EXISTS {_LOAD_TABLE}")
            tx.execute(_ELEMENT_TABLE.format(table=_LOAD_TABLE, key=""))
            tx.execute(_SET_META, ("load_id", load_id))
            tx.execute(_SET_META, ("load_seq", str(tx.seq_start)))
        return load_id

    def _check_load(self, tx: _Transaction, load_id: str) -> int:
        meta: dict[str, str] = dict(tx.execute(
            "SELECT key, value FROM meta WHERE key IN ('load_id', 'load_seq')").fetchall())
        if meta.get("load_id") != load_id:
            raise InvalidRequest("No such snapshot load in progress (it was replaced or ended)")
        return int(meta["load_seq"])

    def load_rows(self, load_id: str, rows: Iterable[tuple]) -> None:
        """Stage one page of a snapshot beside the live data, with ``COPY``; the page and its
        ``load_seq`` share one transaction, so they never disagree."""
        with self.transaction() as tx:
            seq = self._check_load(tx, load_id)
            batch = [(*row[:len(ROW_FIELDS)], seq + offset)
                     for offset, row in enumerate(rows, start=1)]
            refuse_inadmissible(self.clock, batch)
            with tx.connection.cursor() as cursor, cursor.copy(
                    f"COPY {_LOAD_TABLE} ({_COLUMNS}, seq) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
            if batch:  # observe the newest stamp once per page, not once per row
                self.clock.observe(max(row[ROW_FIELDS.index("hlc")] for row in batch))
            tx.execute(_SET_META, ("load_seq", str(seq + len(batch))))

    def commit_load(self, load_id: str, *, parent_node_id: str, id_block_start: int,
                    new_node_id: Optional[str] = None) -> NodeInfo:
        """Swap the staged copy in, atomically: readers see the old contents or the new. A
        duplicate GUID fails the swap (the key is added here) and leaves the child as it was."""
        with self.transaction() as tx:
            self._check_load(tx, load_id)
            tx.execute("DROP TABLE elements")
            tx.execute(f"ALTER TABLE {_LOAD_TABLE} RENAME TO elements")
            tx.execute("ALTER TABLE elements ADD PRIMARY KEY (guid)")
            for statement in _ELEMENT_INDEXES:
                tx.execute(statement)
            updates = {"parent_node_id": parent_node_id, "id_block_start": str(id_block_start),
                       "incarnation": str(uuid.uuid4())}
            if new_node_id:
                updates["node_id"] = new_node_id
            for key, value in updates.items():
                tx.execute(_SET_META, (key, value))
            tx.execute("DELETE FROM meta WHERE key IN ('load_id', 'load_seq')")
            head = tx.execute(_LOG_HEAD).fetchone()
            tx.seq = int(head[0]) if head else 0
        return self.info()

    def abort_load(self, load_id: str) -> None:
        """Drop the staged copy (its space goes back to the database at once)."""
        with self.transaction() as tx:
            if self._meta("load_id") == load_id:
                tx.execute(f"DROP TABLE IF EXISTS {_LOAD_TABLE}")
                tx.execute("DELETE FROM meta WHERE key IN ('load_id', 'load_seq')")

    # --- Repository protocol: replication info ----------------------------------------------

    def nodes(self) -> list[NodeRecord]:
        with self._read() as connection:
            rows = connection.execute(
                f"SELECT {_NODE_COLUMNS} FROM nodes ORDER BY name").fetchall()
        return [NodeRecord(node_id=r[0], name=r[1], url=r[2], is_parent=bool(r[3]),
                           is_connected=bool(r[4]), last_sync=ms_to_datetime(r[5]),
                           id_block_start=r[6], incarnation=r[7], pull_seq=r[8], push_seq=r[9])
                for r in rows]

    def save_node(self, node: NodeRecord) -> None:
        assignments = ", ".join(f"{column} = EXCLUDED.{column}"
                                for column in _NODE_COLUMNS.split(", ")[1:])
        with self.transaction() as tx:
            tx.execute(
                f"INSERT INTO nodes ({_NODE_COLUMNS}) VALUES"
                f" (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (node_id) DO UPDATE"
                f" SET {assignments}",
                (node.node_id, node.name, node.url, int(node.is_parent),
                 int(node.is_connected), datetime_to_ms(node.last_sync), node.id_block_start,
                 node.incarnation, node.pull_seq, node.push_seq))

    def clear_replication_info(self) -> None:
        with self.transaction() as tx:
            tx.execute("DELETE FROM nodes")
            tx.execute("DELETE FROM meta WHERE key = 'parent_node_id'")

    def renew_incarnation(self) -> str:
        incarnation = str(uuid.uuid4())
        self.set_node_local("incarnation", incarnation)
        return incarnation

    def conflicts(self) -> list[ConflictRecord]:
        with self._read() as connection:
            rows = connection.execute(
                f"SELECT {_CONFLICT_COLUMNS} FROM conflicts ORDER BY id").fetchall()
        return [ConflictRecord(guid=r[0], kind=r[1], int_id=r[2], winner_origin=r[3],
                               winner_hlc=r[4], loser_origin=r[5], loser_hlc=r[6],
                               loser_deleted=bool(r[7]), loser_body=r[8], reason=r[9],
                               detected_at=ms_to_datetime(r[10]), winner_int_id=r[11])
                for r in rows]

    # --- inspection (tests, status, verify) -------------------------------------------------

    def all_rows(self) -> list[tuple]:
        """Every element version (tombstones included), in GUID order, without ``seq``."""
        with self._read() as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT {_COLUMNS} FROM elements ORDER BY guid COLLATE \"C\"")
            return list(_as_rows(cursor))

    def element_count(self) -> int:
        with self._read() as connection:
            row = connection.execute("SELECT COUNT(*) FROM elements").fetchone()
        return int(row[0]) if row else 0


def _as_rows(cursor: psycopg.Cursor) -> Iterator[tuple]:
    """Rows as the embedded store gives them: attachment bytes as ``bytes`` (psycopg reads a
    ``bytea`` as ``bytes`` already; a ``memoryview`` would not compare equal to them)."""
    content = ROW_FIELDS.index("content")
    for row in cursor:
        value = row[content]
        yield row if value is None or type(value) is bytes else \
            (*row[:content], bytes(value), *row[content + 1:])


__all__ = ["PostgresRepository"]
