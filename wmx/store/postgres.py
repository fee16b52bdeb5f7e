"""The PostgreSQL store: a repository in one schema of a PostgreSQL database (SPEC §2.7).

Location: ``postgresql://[user@]host[:port]/dbname[?schema=NAME&…]`` (``postgres://`` too); one
repository per schema, ``wmx`` unless ``schema=`` names another; every other query parameter is
libpq's. The tables and every statement are the embedded store's (:mod:`wmx.store.sql`); this
module is PostgreSQL's part: the connection pool, the log lock, isolation levels, psycopg's
errors, creating a schema, and staging a snapshot with ``COPY``.

Change-log order follows commit order. A write transaction (several threads of several
``wmx serve`` processes may write at once) takes ``pg_advisory_xact_lock`` on the repository's
key, in READ COMMITTED, before it reads ``MAX(seq)`` and allocates positions above it. The
lock is released after the commit is visible (PostgreSQL releases transaction locks after
marking it committed), so the next writer's first statement already sees every position handed
out before: positions are unique, and a position is never visible to a feed reader before a
smaller one is. A sequence would give unique positions but let a transaction that drew 9
commit after one that drew 10, so a reader who saw 10 and checkpointed it would skip 9 for good.

Whatever a write does under the lock holds up every writer of every process, so a transaction
takes it as late as it can (:class:`_Transaction`): at its first statement (a read in a write
transaction takes the lock, so nothing another writer commits can replace what it read), or,
for a transaction that only writes new elements, in the round trip of its commit, where the
positions count from the head a statement under the lock reads. Creating a job is such a
transaction: its id is reserved beforehand, for good, by one short locked statement that also
reads the node id and clock (a meta counter above every id handed out, which ids another
process has not committed yet count as taken); the commit checks the repository was not
replaced meanwhile and raises the recorded clock, never lowers it. So the lock is held only
while the server runs those statements, never across a round trip to a process that may be
waiting for its GIL. Deferred writes whose result is not read go with the next statement or
the COMMIT, in one pipeline.
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
from collections.abc import Callable, Iterator, Sequence
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
    LOG_HEAD,
    NEXT_IN_OWN_BLOCK,
    OPENING,
    OWN_BLOCK,
    SET_CLOCK,
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
_SEQ = len(ROW_FIELDS)
"""Where a staged or deferred row holds its log position."""
_IDENTITY = "(SELECT value FROM meta WHERE key = 'node_id') || ' ' || block.start"
"""What a job id reservation depends on: the node id its versions are stamped with and the
id block its id is in. Only a replicate into the repository changes them (a sync renews the
incarnation, which a create made meanwhile may ignore)."""
_OPENING = f"{OPENING}, (SELECT {_IDENTITY} FROM {OWN_BLOCK})"
""":data:`OPENING`, and the :data:`_IDENTITY` a job id reservation is checked against."""
_HANDED_OUT = "job_ids_handed_out"
"""The meta key of the highest job id a reservation handed out."""
def _numbered(statement: str, *numbers: int) -> str:
    """``statement`` with its ``?`` placeholders as a function's ``$n`` arguments, in order."""
    for number in numbers:
        statement = statement.replace("?", f"${number}", 1)
    return statement


_RESERVE = (
    "INSERT INTO meta (key, value) SELECT $5, CAST(GREATEST(free.id, CASE WHEN handed.id >="
    " block.start AND handed.id < block.start + $4 THEN handed.id + 1 ELSE 0 END) AS TEXT)"
    f" FROM ({_numbered(NEXT_IN_OWN_BLOCK, 3, 4)}) AS free (id), {OWN_BLOCK}, (SELECT (SELECT"
    " CAST(value AS BIGINT) FROM meta WHERE key = $5) AS id) AS handed"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    " RETURNING CAST(value AS BIGINT) INTO reserved")
_RESERVE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION wmx_reserve_job_id(integer, text, text, bigint, text)"
    " RETURNS bigint LANGUAGE plpgsql AS $reserve$ DECLARE reserved bigint; BEGIN"
    f" PERFORM pg_advisory_xact_lock($1, hashtext($2)); {_RESERVE}; RETURN reserved;"
    " END $reserve$")
"""Hand out the next job id of this node's block, for good: above every job id the block
holds and above every one handed out before (to transactions that may not have committed
yet, which a read of the jobs cannot see). Under the log lock, so the jobs a locked
transaction wrote into the block have committed: a function, because each statement in it
takes a snapshot of its own, after the lock (args: the lock's keys, the job kind, the block
size, the meta key of the highest id handed out, :data:`_HANDED_OUT`)."""
_RESERVE_JOB_ID = (
    "SELECT wmx_reserve_job_id(CAST(? AS INTEGER), ?, ?, CAST(? AS BIGINT), ?),"
    " (SELECT value FROM meta WHERE key = 'node_id'),"
    f" (SELECT {_IDENTITY} FROM {OWN_BLOCK}),"
    " (SELECT value FROM meta WHERE key = 'clock')")
"""A job id, and what stamping needs: the node id and the clock other writers got to (read
as the statement began: the commit checks its :data:`_IDENTITY` still holds)."""
_HANDED_OUT_UNSEEN = (
    f"SELECT 1 FROM meta, {OWN_BLOCK} WHERE key = ? AND ? >= block.start"
    " AND ? <= (SELECT CAST(value AS BIGINT) FROM meta WHERE key = ?) AND NOT EXISTS"
    " (SELECT 1 FROM elements WHERE kind = ? AND int_id = ?)")
"""Whether a job id of this node's block that no element holds is at or below the highest one
handed out (args: key, id, id, key, kind, id)."""
_REPLACED = "wmx: the repository was replaced meanwhile"
_REPLACED_MESSAGE = ("{location} was replaced (replicated into) while the write was being "
                     "made; nothing was written: run it again")
_SAME_IDENTITY = (f"SELECT CAST(CASE WHEN {_IDENTITY} = ? THEN '0' ELSE ? END AS INTEGER)"
                  f" FROM {OWN_BLOCK}")
"""Fails (with :data:`_REPLACED` in its message) unless the repository is still the one a job
id reservation read: a replicate into it (another process) replaced its contents, node id and
id block meanwhile."""
_MARK_ABOVE_HEAD = upsert("seq_marks", ("seq", "at_ms"), "seq").replace(
    "VALUES (?", f"VALUES (({LOG_HEAD}) + ?", 1)
"""The wall time of positions counted from the log head this statement reads."""
_RAISE_CLOCK = SET_CLOCK.replace(
    "value = excluded.value",
    "value = CAST(GREATEST(CAST(meta.value AS BIGINT), CAST(excluded.value AS BIGINT)) AS TEXT)")
"""``meta.clock`` raised to a clock, never lowered: another process may have got further."""
_UPGRADE = (
    # Layout 1 computed it in a generated column: the values stay, written from now on.
    "ALTER TABLE elements ALTER COLUMN parent_job_id DROP EXPRESSION",
    f"DROP TABLE IF EXISTS {LOAD_TABLE}",
    "DELETE FROM meta WHERE key IN ('load_id', 'load_seq')",
)


_ONE_ROW_ABOVE_HEAD = f"({', '.join(['?'] * _SEQ + [f'({LOG_HEAD}) + ?', '?'])})"


def _upsert_rows(count: int, *, above_head: bool = False) -> str:
    """:data:`_UPSERT` of ``count`` rows (of distinct GUIDs); ``above_head``: their positions
    count from the log head the statement reads."""
    one = _ONE_ROW_ABOVE_HEAD if above_head else _ONE_ROW
    return _UPSERT.replace(_ONE_ROW, ", ".join([one] * count), 1)


def _as_one(statements: Sequence[tuple[str, Sequence[Any]]]) -> tuple[str, list[Any]]:
    """Writes (``INSERT``s, ``UPDATE``s; of distinct rows) as one statement: all but the last
    are data-modifying ``WITH`` queries, which PostgreSQL runs whether or not they are read."""
    *first, (last, _) = statements
    queries = ", ".join(f"w{index} AS ({statement})" for index, (statement, _) in enumerate(first))
    return (f"WITH {queries} {last}" if first else last,
            [value for _, args in statements for value in args])


_BEGIN = ("BEGIN ISOLATION LEVEL READ COMMITTED", ())
_COMMIT = ("COMMIT", ())


def _in_one_round_trip(connection: psycopg.Connection,
                       statements: Sequence[tuple[str, Sequence[Any]]], *,
                       answer: int = -1) -> Rows:
    """Run statements (written with ``?``) in one pipeline: one round trip. The server runs
    them in order, each with its own snapshot (so a statement after the log lock reads what
    every earlier writer committed), and skips the rest after an error, which is raised here
    (the transaction is then left failed, for the caller's rollback). Psycopg prepares the
    statements it sees often, which spares the server their planning. Returns the rows of
    statement ``answer`` (the last by default)."""
    cursors = []
    with connection.pipeline():
        for statement, args in statements:
            cursors.append(connection.execute(POSTGRES.sql(statement), args))
    return cursors[answer]


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
    if isinstance(exc, psycopg.DataError) and _REPLACED in str(exc):
        return RepositoryBusy(_REPLACED_MESSAGE.format(location=location))
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
    of theirs is raised there (the transaction is then rolled back whole, as before).

    ``before`` runs ahead of every statement: the transaction begins and takes the log lock
    there, if it has not yet."""

    def __init__(self, connection: psycopg.Connection, before: Callable[[], None]) -> None:
        super().__init__(connection)
        self._before = before
        self._versions: dict[str, tuple[Any, ...]] = {}
        """Deferred rows by GUID: a later version of an element replaces an earlier one, as
        the second upsert would have (neither is seen before the commit)."""

    def defer(self, row: tuple[Any, ...]) -> None:
        """Upsert ``row`` (:data:`_UPSERT`'s values) with the next round trip."""
        self._versions[row[0]] = row

    def rebase(self, head: int) -> None:
        """The deferred rows' positions were counted from 0 (the head was not known yet):
        move them above ``head``."""
        self._versions = {guid: (*row[:_SEQ], row[_SEQ] + head, *row[_SEQ + 1:])
                          for guid, row in self._versions.items()}

    def execute(self, statement: str, args: Sequence[Any] = (), /) -> Rows:
        self._before()
        if not self._versions:
            return super().execute(statement, args)
        return self.batch([], then=[(statement, args)])  # a later statement sees them

    def flush(self) -> None:
        """Write the deferred versions now (before the connection is used directly: ``COPY``)."""
        self._before()
        if self._versions:
            self.batch([])

    def batch(self, writes: Sequence[tuple[str, Sequence[Any]]], *,
              then: Sequence[tuple[str, Sequence[Any]]] = (),
              first: Sequence[tuple[str, Sequence[Any]]] = (), above_head: bool = False) -> Rows:
        """``first``, then the deferred versions and ``writes`` (blind writes: none of them
        sees the others) as one statement, then ``then``, in one round trip; the rows of the
        last. ``above_head``: the rows' positions count from the log head the statement
        reads."""
        rows, self._versions = list(self._versions.values()), {}
        merged = [*writes]
        if rows:
            merged.insert(0, (_upsert_rows(len(rows), above_head=above_head),
                              [value for row in rows for value in row]))
        return _in_one_round_trip(self.connection,
                               [*first, *([_as_one(merged)] if merged else []), *then])


class _Transaction(SqlTransaction):
    """One write transaction. It begins, and takes the log lock, only when it first needs to:
    at its first statement, or at its commit when all it did was write new elements (as
    creating a job does), so the lock is then held for the commit's statements alone, with
    no round trip to this process in between. Log positions are allocated in commit order
    under the lock; those of versions deferred before it was taken count from the head the
    locked statements read."""

    dialect = POSTGRES
    session: _Deferring

    def __init__(self, connection: psycopg.Connection, clock: HybridLogicalClock,
                 lock: tuple[str, Sequence[Any]], location: str) -> None:
        self.connection = connection
        self.location = location
        self.session = _Deferring(connection, self.begin)
        self._clock = clock
        self._lock = lock
        self._begun = False
        self._node: Optional[tuple[str, str]] = None
        """(node id, :data:`_IDENTITY`) as a job id reservation read them, before the
        lock."""
        self.seq_start = self.seq = 0
        self._node_id = None
        self.clock_seen = 0

    def begin(self) -> None:
        """BEGIN, the log lock and :data:`OPENING` in one round trip (each statement takes its
        own READ COMMITTED snapshot after the one before, so the head is read under the
        lock); the versions deferred so far move above the head."""
        if self._begun:
            return
        self._begun = True
        (opening,) = _in_one_round_trip(
            self.connection, [_BEGIN, self._lock, (_OPENING, ())]).fetchall()
        if self._node is not None and self._node != (opening[1], opening[3]):
            raise RepositoryBusy(_REPLACED_MESSAGE.format(location=self.location))
        deferred = self.seq
        self._opened(opening)
        self._clock.observe(self.clock_seen)
        self.session.rebase(self.seq_start)
        self.seq += deferred

    def node_id(self) -> str:
        if self._node is None:
            self.begin()
            return super().node_id()
        return self._node[0]

    def origin_for(self, *, new: bool) -> str:
        if not new:
            self.begin()
        return self.node_id()

    def next_seq(self) -> int:
        self.begin()
        return super().next_seq()

    def reserve_job_id(self) -> int:
        """The next job id of this node's block, handed out for good (:data:`_RESERVE_JOB_ID`).
        Before the transaction has begun, in a transaction of its own that holds the log lock
        for that one statement, and that also reads what stamping needs (node id, clock)."""
        args = (*self._lock[1], Job.KIND, ID_BLOCK_SIZE, _HANDED_OUT)
        if self._begun:
            return int(self.session.execute(_RESERVE_JOB_ID, args).fetchone()[0])
        ((job_id, node_id, identity, clock),) = self.connection.execute(
            POSTGRES.sql(_RESERVE_JOB_ID), args).fetchall()  # autocommit: a transaction
        self._node = (str(node_id), str(identity))
        self._clock.observe(int(clock or 0))
        return int(job_id)

    def write_local(self, change: Change, *, new: bool = False) -> int:
        """One upsert, without reading the stored row first (the row keeps its ``row_no``),
        deferred to the next round trip. Before the lock, only a new element's version may
        be written (its position counts from 0 until the lock is taken)."""
        if self._begun or not new:
            seq = self.next_seq()
        else:
            seq = self.seq = self.seq + 1
        self.session.defer((*change.to_row(), seq,
                            parent_job_id(change.kind, change.body, change.deleted)))
        return seq

    set_clock = _RAISE_CLOCK
    """Raised, never lowered: a transaction that did not begin before its commit never read
    what another process got to."""

    def mark_statement(self) -> str:
        return super().mark_statement() if self._begun else _MARK_ABOVE_HEAD

    def commit(self, clock: int) -> None:
        """The deferred versions and the closing statements in one statement, and the COMMIT,
        in one round trip. A transaction that has not begun sends BEGIN, the lock and a check
        that the repository is still the one its reservation read with them: the lock is held
        for that round trip's statements only."""
        if self._begun:
            self.session.batch(self.closing(clock), then=[_COMMIT])
        elif self.seq > 0 and self._node is not None:  # else nothing written, nothing begun
            self.session.batch(self.closing(clock), then=[_COMMIT], above_head=True, first=[
                _BEGIN, self._lock, (_SAME_IDENTITY, (self._node[1], _REPLACED))])

    def rollback(self) -> None:
        if self._begun:
            self.connection.execute("ROLLBACK")


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
            self._add_reservation(connection)
        except psycopg.Error as exc:
            _rollback_quietly(connection)
            raise _translate(self._where, exc) from None
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise RepositoryNotFound(f"{self.location} is not a wmx repository")
        return meta

    def _add_reservation(self, connection: psycopg.Connection) -> None:
        """Create :data:`_RESERVE_FUNCTION` in a schema made before it existed. A database
        user who may not create it can still read; creating a job then fails, saying so."""
        found = connection.execute("SELECT to_regprocedure('wmx_reserve_job_id(integer,"
                                   " text, text, bigint, text)') IS NOT NULL").fetchone()
        if found and found[0]:
            return
        try:
            connection.execute("BEGIN")
            self._lock_log(connection)
            connection.execute(_RESERVE_FUNCTION)
            connection.execute("COMMIT")
        except errors.InsufficientPrivilege:
            _rollback_quietly(connection)

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

    @property
    def _lock_log_args(self) -> tuple[str, tuple[Any, ...]]:
        """The statement that takes the log lock (held to the end of the transaction)."""
        return "SELECT pg_advisory_xact_lock(?, hashtext(?))", (_LOCK_CLASS, self._where.schema)

    def _lock_log(self, connection: psycopg.Connection) -> None:
        statement, args = self._lock_log_args
        connection.execute(POSTGRES.sql(statement), args)

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
                for statement in (*schema(POSTGRES), _RESERVE_FUNCTION):
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
            yield current
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
                tx = self._local.tx = _Transaction(
                    connection, self.clock, self._lock_log_args, self.location)
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
        """As the shared one; a job's id is reserved for good (:meth:`_Transaction.reserve_job_id`),
        so creating a job needs no lock until its commit."""
        return tx.reserve_job_id() if kind == Job.KIND else super().next_int_id(tx, kind)

    def _next_int_id_in(self, tx: SqlTransaction, kind: str, start: int) -> int:
        """As the shared one; in this node's own block, a job id is reserved (another
        transaction may hold one it has not committed)."""
        if kind == Job.KIND and isinstance(tx, _Transaction) and start == int(
                self._meta("id_block_start") or 1):
            return tx.reserve_job_id()
        return super()._next_int_id_in(tx, kind, start)

    def _handed_out(self, tx: SqlTransaction, kind: str, int_id: int) -> bool:
        """A job id of this node's block at or below the highest one reserved, that no element
        holds, may be held by a create that has not committed."""
        return kind == Job.KIND and tx.execute(_HANDED_OUT_UNSEEN, (
            _HANDED_OUT, int_id, int_id, _HANDED_OUT, kind, int_id)).fetchone() is not None

    # --- snapshots (replicate): PostgreSQL's staging ------------------------------------------

    def _stage(self, tx: _Transaction, rows: list[tuple[Any, ...]]) -> None:
        """Streamed with ``COPY`` (``row_no`` numbers itself)."""
        tx.session.flush()  # begins the transaction, if it has not yet
        with tx.connection.cursor() as cursor, cursor.copy(
                f"COPY {LOAD_TABLE} ({', '.join(STAGED_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


__all__ = ["PostgresRepository"]
