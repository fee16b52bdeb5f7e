"""The PostgreSQL store: a repository in one schema of a PostgreSQL database (SPEC §2.7).

Location: ``postgresql://[user@]host[:port]/dbname[?schema=NAME&…]`` (``postgres://`` too); one
repository per schema, ``wmx`` unless ``schema=`` names another; every other query parameter is
libpq's. The tables and every statement are the embedded store's (:mod:`wmx.store.sql`); this
module is PostgreSQL's part: the connection pool, the log lock, isolation levels, psycopg's
errors, creating a schema, and staging a snapshot with ``COPY``.

Change-log order follows commit order. Every write transaction (several threads of several
``wmx serve`` processes may write at once) first takes ``pg_advisory_xact_lock`` on the
repository's key, in READ COMMITTED, and only then reads ``MAX(seq)`` and allocates positions
above it. The lock is released after the commit is visible (PostgreSQL releases transaction
locks after marking it committed), so the next writer's first statement already sees every
position handed out before: positions are unique, and a position is never visible to a feed
reader before a smaller one is. A sequence would give unique positions but let a transaction
that drew 9 commit after one that drew 10, so a reader who saw 10 and checkpointed it would
skip 9 for good. Whatever a write does under the lock holds up every writer of every process,
so the lock is held for as few round trips as possible: BEGIN, the lock and the opening reads
(with the next job id) go in one pipeline (each statement still takes its own READ COMMITTED
snapshot, after the one before has finished, so the head is read once the lock is held), and a
write whose result is not read waits for the next round trip, the closing marks and the COMMIT
at the latest: creating a job holds the lock for one round trip to the client and back.
Readers are never blocked; a read of the feed runs in one
REPEATABLE READ snapshot, so its page and the log head it reports agree, and a read of one
statement runs in autocommit (it is a snapshot of its own).

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
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from wmx.model.changes import ROW_FIELDS, Change
from wmx.model.clock import HybridLogicalClock, WallClock
from wmx.model.records import ID_BLOCK_SIZE, Job
from wmx.repository.base import (
    InvalidRequest,
    RepositoryBusy,
    RepositoryError,
    RepositoryFull,
    RepositoryNotFound,
    RepositoryUnavailable,
)
from wmx.store.dialect import Dialect
from wmx.store.postgres_location import PostgresLocation
from wmx.store.rows import SCHEMA_VERSION, UPGRADABLE_VERSIONS, parent_job_id
from wmx.store.sql import (
    LOAD_TABLE,
    NEXT_IN_OWN_BLOCK,
    OPENING,
    SET_META,
    STAGED_COLUMNS,
    Rows,
    Session,
    SqlStore,
    SqlTransaction,
    element_table,
    joined,
    schema,
    upsert,
)

DEFAULT_POOL_SIZE = 10
"""Connections per process: ``wmx serve``'s 8 request threads, plus a sync and a spare."""
_LOCK_CLASS = 0x776D78
"""First key of the advisory lock (``wmx``); the second is the hash of the schema's name."""
POSTGRES = Dialect(
    integer="BIGINT", flag="SMALLINT", binary="BYTEA",
    row_number="BIGINT GENERATED ALWAYS AS IDENTITY", next_row_number="DEFAULT",
    serial_key="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    staged_key="ALTER TABLE elements ADD PRIMARY KEY (guid)",
    byte_order=' COLLATE "C"', nulls_first=" NULLS FIRST", translate_placeholders=True)
_ELEMENT_TABLE = element_table(POSTGRES, "{table}", "{key}")
_UPSERT_COLUMNS = (*ROW_FIELDS, "seq", "parent_job_id")
_UPSERT = upsert("elements", _UPSERT_COLUMNS, "guid")
_ONE_ROW = f"({', '.join('?' * len(_UPSERT_COLUMNS))})"
_OPENING = (POSTGRES.sql(f"{OPENING}, ({NEXT_IN_OWN_BLOCK})"), (Job.KIND, ID_BLOCK_SIZE))
""":data:`OPENING` and the next job id: creating a job, the commonest write, then needs no
round trip of its own between the lock and the commit."""
_UPGRADE = (
    # Layout 1 computed it in a generated column: the values stay, written from now on.
    "ALTER TABLE elements ALTER COLUMN parent_job_id DROP EXPRESSION",
    f"DROP TABLE IF EXISTS {LOAD_TABLE}",
    "DELETE FROM meta WHERE key IN ('load_id', 'load_seq')",
)


def _upsert_rows(count: int) -> str:
    """:data:`_UPSERT` of ``count`` rows (of distinct GUIDs)."""
    return _UPSERT.replace(_ONE_ROW, ", ".join([_ONE_ROW] * count), 1)


def _as_one(statements: Sequence[tuple[str, Sequence[Any]]]) -> tuple[str, list[Any]]:
    """Writes (``INSERT``s, ``UPDATE``s; of distinct rows) as one statement: all but the last
    are data-modifying ``WITH`` queries, which PostgreSQL runs whether or not they are read."""
    *first, (last, _) = statements
    queries = ", ".join(f"w{index} AS ({statement})" for index, (statement, _) in enumerate(first))
    return (f"WITH {queries} {last}" if first else last,
            [value for _, args in statements for value in args])


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



class _Session:
    """A connection that takes the shared ``?`` statements (:class:`wmx.store.sql.Session`)."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def execute(self, statement: str, args: Sequence[Any] = (), /) -> Rows:
        return self.connection.execute(POSTGRES.sql(statement), args)


class _Deferring(_Session):
    """A write transaction's connection. The element versions it writes are deferred: they
    go with the next statement that must answer, or with the COMMIT, as one statement in one
    pipeline, so each saves a round trip and a statement while the log lock is held. An error
    of theirs is raised there (the transaction is then rolled back whole, as before)."""

    def __init__(self, connection: psycopg.Connection) -> None:
        super().__init__(connection)
        self._versions: dict[str, tuple[Any, ...]] = {}
        """Deferred rows by GUID: a later version of an element replaces an earlier one, as
        the second upsert would have (neither is seen before the commit)."""
        self.untouched = True
        """Nothing run since the opening (what it read still holds)."""

    def defer(self, row: tuple[Any, ...]) -> None:
        """Upsert ``row`` (:data:`_UPSERT`'s values) with the next round trip."""
        self.untouched = False
        self._versions[row[0]] = row

    def execute(self, statement: str, args: Sequence[Any] = (), /) -> Rows:
        self.untouched = False
        if not self._versions:
            return super().execute(statement, args)
        return self.batch([], then=[(statement, args)])  # a later statement sees them

    def flush(self) -> None:
        """Write the deferred versions now (before the connection is used directly: ``COPY``)."""
        self.untouched = False
        if self._versions:
            self.batch([])

    def batch(self, writes: Sequence[tuple[str, Sequence[Any]]], *,
              then: Sequence[tuple[str, Sequence[Any]]] = ()) -> Rows:
        """The deferred versions and ``writes`` (blind writes: none of them sees the others)
        as one statement, then each of ``then``, in one round trip; the rows of the last."""
        rows, self._versions = list(self._versions.values()), {}
        merged = [*writes]
        if rows:
            merged.insert(0, (_upsert_rows(len(rows)), [value for row in rows for value in row]))
        with self.connection.pipeline():
            for statement, args in [*([_as_one(merged)] if merged else []), *then]:
                last = super().execute(statement, args)
        return last


class _Transaction(SqlTransaction):
    """One write transaction: holds the log lock, allocates log positions in commit order.
    ``opening`` is :data:`_OPENING`'s row: :data:`OPENING`'s, then the next job id."""

    dialect = POSTGRES
    session: _Deferring

    def __init__(self, connection: psycopg.Connection, opening: Sequence[Any]) -> None:
        self.connection = connection
        super().__init__(_Deferring(connection), opening[:-1])
        self._next_job_id = int(opening[-1])

    def next_job_id(self) -> Optional[int]:
        """The next job id read with the opening, while nothing written since can change it."""
        return self._next_job_id if self.session.untouched else None

    def commit(self, closing: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """The deferred versions and the closing statements in one statement, and the COMMIT,
        in one round trip: the lock is held until the server has it all."""
        self.session.batch(closing, then=[("COMMIT", ())])

    def write_local(self, change: Change) -> int:
        """One upsert, without reading the stored row first (the row keeps its ``row_no``),
        deferred to the next round trip."""
        seq = self.next_seq()
        self.session.defer((*change.to_row(), seq,
                            parent_job_id(change.kind, change.body, change.deleted)))
        return seq


class PostgresRepository(SqlStore[_Transaction]):
    """A repository in a PostgreSQL schema; implements :class:`wmx.repository.base.Repository`
    and the store primitives :class:`JobTracking` is written over. Safe to share between
    threads: each thread's transaction has a pooled connection of its own."""

    dialect = POSTGRES

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
        schema_name = self._where.schema
        self._pool = ConnectionPool(
            self._where.conninfo, min_size=1, max_size=max(1, pool_size), name="wmx", num_workers=1,
            kwargs=_connect_options(self._where, timeout), timeout=timeout, open=False,
            configure=lambda connection: _set_session(connection, schema_name, timeout))
        self._pool.open()

    def _identify(self, connection: psycopg.Connection) -> dict[str, str]:
        """The schema's meta table, or RepositoryNotFound if the schema holds no repository;
        a repository of an older layout is brought up to date first."""
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
            if meta.get("schema_version") in UPGRADABLE_VERSIONS:
                self._upgrade(connection)
                meta["schema_version"] = SCHEMA_VERSION
        except psycopg.Error as exc:
            _rollback_quietly(connection)
            raise _translate(self._where, exc) from None
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise RepositoryNotFound(f"{self.location} is not a wmx repository")
        return meta

    def _upgrade(self, connection: psycopg.Connection) -> None:
        """From an older layout, in one transaction under the log lock (another process may
        have done it meanwhile: then nothing is left to do)."""
        connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        self._lock_log(connection)
        session = _Session(connection)
        row = session.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row and row[0] in UPGRADABLE_VERSIONS:
            for statement in _UPGRADE:
                session.execute(statement)
            session.execute(SET_META, ("schema_version", SCHEMA_VERSION))
        connection.execute("COMMIT")

    def _lock_log(self, connection: psycopg.Connection) -> None:
        connection.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                           (_LOCK_CLASS, self._where.schema))

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
                for statement in schema(POSTGRES):
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
    def _query(self) -> Iterator[Session]:
        """A read of one statement: in autocommit it is its own snapshot, so it needs no
        BEGIN and ROLLBACK round trips (inside a write transaction of this thread: that
        transaction, so it sees its own writes)."""
        with self._snapshot(repeatable=False) as session:
            yield session

    @contextlib.contextmanager
    def _read(self) -> Iterator[Session]:
        """One consistent snapshot for a read of several statements (inside a write
        transaction: that transaction, as :meth:`_query`)."""
        with self._snapshot(repeatable=True) as session:
            yield session

    @contextlib.contextmanager
    def _snapshot(self, *, repeatable: bool) -> Iterator[Session]:
        current = self._current()
        if current is not None:
            yield current.session
            return
        with self._pooled() as connection:
            if not repeatable:
                yield _Session(connection)
                return
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield _Session(connection)
            finally:
                _rollback_quietly(connection)

    @contextlib.contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[_Transaction]:
        """A write transaction holding the log lock; ``rollback=True`` runs it and throws it
        away (dry runs). Re-entrant within a thread: a transaction opened inside another one
        joins it, so a read-modify-write made of smaller writes commits as one."""
        current = self._current()
        if current is not None:
            yield joined(current, rollback=rollback)
            return
        with self._pooled() as connection:
            try:
                with connection.pipeline():  # one round trip; each statement its own snapshot
                    connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                    self._lock_log(connection)
                    (opening,) = connection.execute(*_OPENING).fetchall()
                tx = self._local.tx = _Transaction(connection, opening)
                with self._kept(tx, rollback=rollback):
                    yield tx
            except psycopg.Error as exc:
                _rollback_quietly(connection)
                raise _translate(self._where, exc) from None
            except BaseException:
                _rollback_quietly(connection)
                raise
            finally:
                self._local.tx = None

    def next_int_id(self, tx: _Transaction, kind: str) -> int:
        """As the shared one; a job's id is the one the opening read, while it still holds."""
        found = tx.next_job_id() if kind == Job.KIND else None
        return found if found is not None else super().next_int_id(tx, kind)

    # --- snapshots (replicate): PostgreSQL's staging ------------------------------------------

    def _stage(self, tx: _Transaction, rows: list[tuple[Any, ...]]) -> None:
        """Streamed with ``COPY`` (``row_no`` numbers itself)."""
        tx.session.flush()
        with tx.connection.cursor() as cursor, cursor.copy(
                f"COPY {LOAD_TABLE} ({', '.join(STAGED_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


__all__ = ["PostgresRepository"]
