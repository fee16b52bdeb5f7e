"""The embedded repository: one SQLite file (conventionally ``*.wmxdb``) in WAL mode.

Every element version lives in one ``elements`` table whose ``seq`` column is the change log:
each write moves the row to the head of the log, deletes leave tombstones, and ``seq`` only
grows. Replication bookkeeping (nodes, checkpoints, conflicts) sits in its own tables and never
replicates. This module knows SQL and files; it must never know about HTTP, value tables or the
engine's order of operations. Standard-library ``sqlite3`` only, so the SQL stays portable to a
future PostgreSQL store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from wmx.model import codec
from wmx.model.changes import ROW_FIELDS, Change, ConflictPolicy
from wmx.model.clock import HybridLogicalClock, WallClock
from wmx.model.guids import new_guid
from wmx.model.records import (
    ID_BLOCK_SIZE,
    NAMED_KINDS,
    Record,
)
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
    RepositoryReadOnly,
    RepositoryUnavailable,
    SnapshotPage,
)
from wmx.repository.jobs import JobTracking
from wmx.store.apply import ApplyOptions, apply_batch
from wmx.store.protocol import StoredVersion
from wmx.store.rows import (
    SCHEMA_VERSION,
    bounded_page,
    datetime_to_ms,
    ms_to_datetime,
    now_ms,
    refuse_inadmissible,
)

APPLICATION_ID = 0x776D7831
"""SQLite's ``PRAGMA application_id`` of a wmx repository (``wmx1``), stored in the file header:
lets the open path know a file is ours before any connection touches it."""
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_FULL = 13
_HEADER_BYTES = 100
_APPLICATION_ID_AT = 68

_COLUMNS = ", ".join(ROW_FIELDS)
_ELEMENT_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    guid TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    int_id INTEGER,
    job_guid TEXT,
    name TEXT,
    body TEXT,
    content BLOB,
    hlc INTEGER NOT NULL,
    origin TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL
)"""
_ELEMENT_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS elements_seq ON elements(seq)",
    "CREATE INDEX IF NOT EXISTS elements_kind_id ON elements(kind, int_id)"
    " WHERE int_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS elements_job ON elements(job_guid) WHERE job_guid IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS elements_name ON elements(kind, name) WHERE name IS NOT NULL",
    # Esri's job JSON lists childJobIds; this finds them without reading every job.
    # Only jobs that have a parent are in it: the others are never looked up by it, and
    # leaving them out spares an index write per job update.
    "CREATE INDEX IF NOT EXISTS elements_parent_job ON elements("
    "json_extract(body, '$.parentJobId')) WHERE kind='job' AND deleted=0"
    " AND json_extract(body, '$.parentJobId') IS NOT NULL",
)
_MALFORMED_JSON = "malformed JSON"
"""SQLite's error when that index reads a job body that is not JSON (a replicated row):
the data is refused, the store is not unavailable."""
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _ELEMENT_TABLE.format(table="elements"),
    *_ELEMENT_INDEXES,
    # One mark per write transaction: lets a wall-clock lower bound map to a log position.
    "CREATE TABLE IF NOT EXISTS seq_marks (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS seq_marks_at ON seq_marks(at_ms)",
    """CREATE TABLE IF NOT EXISTS nodes (
        node_id TEXT PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL DEFAULT '',
        is_parent INTEGER NOT NULL DEFAULT 0, is_connected INTEGER NOT NULL DEFAULT 1,
        last_sync_ms INTEGER, id_block_start INTEGER NOT NULL DEFAULT 1,
        incarnation TEXT NOT NULL DEFAULT '', pull_seq INTEGER NOT NULL DEFAULT 0,
        push_seq INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS conflicts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, detected_ms INTEGER NOT NULL, guid TEXT NOT NULL,
        kind TEXT NOT NULL, int_id INTEGER, winner_origin TEXT NOT NULL,
        winner_hlc INTEGER NOT NULL, loser_origin TEXT NOT NULL, loser_hlc INTEGER NOT NULL,
        loser_deleted INTEGER NOT NULL, loser_body TEXT, reason TEXT NOT NULL,
        winner_int_id INTEGER)""",
)
_KEY_COLUMNS = ROW_FIELDS[1:5]
"""Indexed columns that an element keeps from version to version (kind, integer id, owning
job, name). An UPDATE names them only when they change, so SQLite leaves their indexes alone:
on a large repository every index it does touch costs a random page write per changed row."""
_VERSION_COLUMNS = ROW_FIELDS[5:]
_LOAD_TABLE = "elements_load"
_GUID_KEY = "guid TEXT NOT NULL PRIMARY KEY"
_STAGED_TABLE = _ELEMENT_TABLE.replace(_GUID_KEY, "guid TEXT NOT NULL")
"""The staging table has no key while rows stream in: inserts only append, and the GUID index
is built once, by sorting, when the copy is swapped in (``_STAGED_GUID_INDEX``). Maintaining a
random-GUID B-tree row by row, committed page by page, rewrote most of its leaves on every
commit and was the dominant cost of a replicate (18 s of 24 s for 1,000,000 rows)."""
_STAGED_GUID_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS elements_guid ON elements(guid)"
_LOOKUP_CHUNK = 500
_HLC = ROW_FIELDS.index("hlc")
_STAGING_CHECKPOINT_PAGES = 16384
"""While staging a snapshot the WAL is checkpointed every 64 MiB (4 KiB pages) rather than
every 4 MiB: fewer checkpoint fsyncs, and still a bounded WAL file."""


def _guid_chunks(guids: Sequence[str]) -> Iterator[tuple[Sequence[str], str]]:
    """GUIDs in chunks of :data:`_LOOKUP_CHUNK`, each with its ``?,?,...`` placeholders."""
    for start in range(0, len(guids), _LOOKUP_CHUNK):
        chunk = guids[start:start + _LOOKUP_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def embedded_path(location: str) -> Path:
    """The file behind an embedded location (``sqlite:///path`` or a plain path)."""
    if location.startswith("sqlite:///"):
        location = location[len("sqlite:///"):]
    return Path(location).expanduser()


def _identify(path: Path, location: str) -> None:
    """Make sure ``path`` is a wmx repository we may write, by reading only: a file that is not
    ours (another SQLite database, a GeoPackage, an empty file) must stay byte-for-byte as it
    was, so this runs before any connection that could switch its journal mode or create it."""
    if path.is_dir():
        raise RepositoryNotFound(f"{location} is a folder, not a repository file")
    try:
        with path.open("rb") as handle:
            header = handle.read(_HEADER_BYTES)
    except FileNotFoundError:
        raise RepositoryNotFound(f"Repository {location} does not exist") from None
    except OSError as exc:
        raise RepositoryUnavailable(f"{location} cannot be read: {_reason(exc)}") from None
    if not (len(header) == _HEADER_BYTES and header.startswith(_SQLITE_MAGIC)
            and _application_id(header) in (APPLICATION_ID, 0) and _has_our_meta(path, header)):
        raise RepositoryNotFound(f"{location} is not a wmx repository")
    folder = path.parent
    sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    if not os.access(path, os.W_OK):
        raise RepositoryReadOnly(f"{location} is read-only: wmx writes to a repository even "
                                 "to read it (its write-ahead log); make the file writable")
    if not os.access(folder, os.W_OK) and not all(
            side.is_file() and os.access(side, os.W_OK) for side in sidecars):
        raise RepositoryReadOnly(f"The folder of {location} is read-only: SQLite keeps its "
                                 "write-ahead log beside the repository; make it writable")


def _application_id(header: bytes) -> int:
    return int.from_bytes(header[_APPLICATION_ID_AT:_APPLICATION_ID_AT + 4], "big")


def _has_our_meta(path: Path, header: bytes) -> bool:
    """Ours by the header mark (:data:`APPLICATION_ID`); a file from before the mark was set is
    ours if a read-only connection finds our meta table in it."""
    if _application_id(header) == APPLICATION_ID:
        return True
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = probe.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        tables = {name for (name,) in probe.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error:
        return False
    finally:
        probe.close()
    return row is not None and row[0] == SCHEMA_VERSION and {"elements", "nodes"} <= tables


def _reason(exc: BaseException) -> str:
    """An OS error's reason without the path it repeats (the caller names the location)."""
    return getattr(exc, "strerror", None) or str(exc)


_OPENED_AS: dict[tuple[int, int], Path] = {}
_OPENED_AS_LOCK = threading.Lock()


def _one_path_per_file(path: Path) -> Path:
    """The path this process opens a repository file by: the first one it used for that file.

    SQLite names a database's write-ahead log and shared-memory index after the path it was
    opened by, so two paths to one file (hard links, or a symbolic link SQLite does not
    resolve) would give one database two logs and corrupt it ("disk I/O error"). Keyed by
    device and inode; an entry whose path no longer names the same file is replaced."""
    resolved = path.resolve()
    status = resolved.stat()
    key = (status.st_dev, status.st_ino)
    with _OPENED_AS_LOCK:
        known = _OPENED_AS.get(key)
        if known is not None and known != resolved:
            try:
                if known.samefile(resolved):
                    return known
            except OSError:
                pass  # that path is gone: this one takes its place
        _OPENED_AS[key] = resolved
        return resolved


def _is_disk_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL (the error code where Python exposes it, 3.11+; else SQLite's text)."""
    return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or \
        "database or disk is full" in str(exc)


class _Transaction:
    """One write transaction: allocates log positions and stamps, in commit order."""

    def __init__(self, store: EmbeddedRepository, cursor: sqlite3.Cursor) -> None:
        self.store = store
        self.cursor = cursor
        self.seq_start = cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM elements").fetchone()[0]
        self.seq = self.seq_start

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def upsert(self, change: Change, stored_keys: Optional[Sequence]) -> None:
        """Write ``change``; ``stored_keys`` are the stored row's :data:`_KEY_COLUMNS` values
        when the element exists (``None`` inserts it)."""
        seq = self.next_seq()
        row = change.to_row()
        if stored_keys is not None:
            keys = [(column, value) for column, value, stored
                    in zip(_KEY_COLUMNS, row[1:1 + len(_KEY_COLUMNS)], stored_keys)
                    if value != stored]
            assignments = [f"{column}=?" for column, _ in keys] + [
                f"{column}=?" for column in (*_VERSION_COLUMNS, "seq")]
            self.cursor.execute(
                f"UPDATE elements SET {', '.join(assignments)} WHERE guid=?",
                (*(value for _, value in keys), *row[1 + len(_KEY_COLUMNS):], seq, change.guid))
        else:
            self.cursor.execute(
                f"INSERT INTO elements ({_COLUMNS}, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (*change.to_row(), seq))


class _ApplyTarget:
    """This store inside one write transaction, as the shared apply algorithm sees it
    (:class:`wmx.store.protocol.ApplyTarget`): SQL only, no rule."""

    def __init__(self, store: EmbeddedRepository, tx: _Transaction) -> None:
        self._store = store
        self._tx = tx
        self.node_id = store._node_id()

    def stamp(self) -> int:
        return self._store.clock.now()

    def observe(self, hlc: int) -> None:
        self._store.clock.observe(hlc)

    def versions(self, guids: Sequence[str]) -> dict[str, StoredVersion]:
        return {row[0]: StoredVersion(Change.from_row(row), row[-1])
                for chunk, marks in _guid_chunks(guids) for row in self._tx.cursor.execute(
                    f"SELECT {_COLUMNS}, seq FROM elements WHERE guid IN ({marks})", chunk)}

    def id_taken(self, kind: str, int_id: int, guid: str) -> bool:
        return self._tx.cursor.execute(
            "SELECT 1 FROM elements WHERE kind=? AND int_id=? AND guid<>? AND deleted=0",
            (kind, int_id, guid)).fetchone() is not None

    def name_taken(self, kind: str, name: str, guid: str) -> bool:
        return self._store.name_taken(self._tx, kind, name, guid)

    def free_int_id(self, kind: str, origin: str) -> int:
        row = self._tx.cursor.execute(
            "SELECT id_block_start FROM nodes WHERE node_id=? AND node_id<>?",
            (origin, self.node_id)).fetchone()
        start = row[0] if row else int(self._store._meta("id_block_start") or 1)
        return self._store._next_int_id_in(self._tx, kind, start)

    def logged_as_loser(self, change: Change) -> bool:
        return self._tx.cursor.execute(
            "SELECT 1 FROM conflicts WHERE guid=? AND loser_origin=? AND loser_hlc=?",
            (change.guid, change.origin, change.hlc)).fetchone() is not None

    def log_conflict(self, record: ConflictRecord) -> None:
        self._tx.cursor.execute(
            "INSERT INTO conflicts (detected_ms, guid, kind, int_id, winner_origin, winner_hlc,"
            " loser_origin, loser_hlc, loser_deleted, loser_body, reason, winner_int_id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (datetime_to_ms(record.detected_at), record.guid, record.kind, record.int_id,
             record.winner_origin, record.winner_hlc, record.loser_origin, record.loser_hlc,
             int(record.loser_deleted), record.loser_body, record.reason,
             record.winner_int_id))

    def positions(self) -> tuple[int, int]:
        return self._tx.seq_start, self._tx.seq

    def written_since(self, guids: Sequence[str], since_seq: int) -> bool:
        if self._tx.seq_start <= since_seq:  # nothing at all was written since
            return False
        return any(self._tx.cursor.execute(
            f"SELECT 1 FROM elements WHERE guid IN ({marks}) AND seq>? LIMIT 1",
            (*chunk, since_seq)).fetchone() for chunk, marks in _guid_chunks(guids))

    def write(self, change: Change, previous: Optional[StoredVersion]) -> int:
        keys = None if previous is None else previous.change.to_row()[1:1 + len(_KEY_COLUMNS)]
        self._tx.upsert(change, keys)
        return self._tx.seq


class EmbeddedRepository(JobTracking[_Transaction]):
    """A repository in a SQLite file; implements :class:`wmx.repository.base.Repository`."""

    def __init__(self, location: str | Path, *, wall_clock: Optional[WallClock] = None,
                 timeout: float = 30.0) -> None:
        self.path = embedded_path(str(location))
        self.location = str(location)
        _identify(self.path, self.location)
        self.path = _one_path_per_file(self.path)
        self._lock = threading.RLock()
        self._open_transaction: Optional[_Transaction] = None
        try:
            self._db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise RepositoryNotFound(
                f"{self.location} is not a wmx repository ({exc})") from None
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise RepositoryNotFound(f"{self.location} is not a wmx repository")
        kwargs = {"wall": wall_clock} if wall_clock else {}
        self.clock = HybridLogicalClock(int(meta.get("clock", "0")), **kwargs)

    # --- creation ---------------------------------------------------------------------------

    @classmethod
    def create(cls, location: str | Path, *, name: str, job_id_start: int = 1,
               wall_clock: Optional[WallClock] = None) -> EmbeddedRepository:
        """Create an empty repository file (no configuration; see ``wmx.repository.setup``)."""
        path = embedded_path(str(location))
        if path.exists():
            raise InvalidRequest(f"{location} already exists")
        if not name or not name.strip():
            raise InvalidRequest("A repository needs a name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RepositoryUnavailable(f"Cannot create {location}: {_reason(exc)}") from None
        try:
            # Before any table: pages a failed replicate staged can be given back to the disk.
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("schema_version", SCHEMA_VERSION),
                ("node_id", str(uuid.uuid4())),
                ("name", name.strip()),
                ("incarnation", str(uuid.uuid4())),
                ("id_block_start", str(int(job_id_start))),
                ("clock", "0"),
            ])
        except sqlite3.Error as exc:
            db.close()
            path.unlink(missing_ok=True)  # a half-made file must not pass for a repository
            raise RepositoryUnavailable(f"Cannot create {location}: {exc}") from None
        db.close()
        return cls(location, wall_clock=wall_clock)

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection, rolling back first: a cursor still alive somewhere (a
        traceback, a half-read page) would otherwise keep the connection, and any write lock
        it holds, alive after ``close``."""
        with self._lock:
            with contextlib.suppress(sqlite3.ProgrammingError):  # already closed
                self._end_quietly()
            self._db.close()

    def __enter__(self) -> EmbeddedRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EmbeddedRepository {self.location!r}>"

    def _meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        """A consistent read snapshot (WAL readers do not block writers)."""
        with self._lock:
            cursor = self._db.cursor()
            try:
                cursor.execute("BEGIN")
                yield cursor
            except sqlite3.Error as exc:
                raise RepositoryUnavailable(f"{self.location}: {exc}") from exc
            finally:
                if self._db.in_transaction:
                    try:
                        cursor.execute("COMMIT")
                    except sqlite3.Error:  # a read transaction: nothing is lost
                        self._end_quietly()

    @contextlib.contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[_Transaction]:
        """A write transaction; ``rollback=True`` runs it and throws it away (dry runs).

        Re-entrant: opened inside another one on this connection, it joins the outer
        transaction, so a read-modify-write made of smaller writes commits as one."""
        with self._lock:
            if self._open_transaction is not None:
                yield self._open_transaction
                return
            cursor = self._db.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                # An interrupted BEGIN can leave the transaction open, holding the write lock.
                self._end_quietly()
                raise RepositoryBusy(f"{self.location} is busy: {exc}") from None
            try:
                tx = self._open_transaction = _Transaction(self, cursor)
                # Another connection (a sync, another process) may have stamped versions since
                # this one last wrote: move past them first, so a later edit outranks them.
                self.clock.observe(int(self._meta("clock", "0") or 0))
                yield tx
                if rollback:
                    cursor.execute("ROLLBACK")
                    return
                if tx.seq > tx.seq_start:
                    cursor.execute("INSERT OR REPLACE INTO seq_marks (seq, at_ms) VALUES (?, ?)",
                                   (tx.seq, now_ms()))
                cursor.execute("UPDATE meta SET value=? WHERE key='clock'",
                               (str(self.clock.last),))
                cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                self._end_quietly()
                if str(exc) == _MALFORMED_JSON:
                    raise InvalidRequest("An element body is not valid JSON") from None
                if _is_disk_full(exc):
                    raise RepositoryFull(f"{self.location}: the disk is full; nothing was "
                                         "written (free some space and run again)") from None
                raise RepositoryUnavailable(f"{self.location}: {exc}") from exc
            except BaseException:
                self._end_quietly()
                raise
            finally:
                self._open_transaction = None

    def _end_quietly(self) -> None:
        """Roll back whatever transaction is still open — also after a failed COMMIT, which
        would otherwise leave this connection inside it (and holding the write lock) for good.
        SQLite may already have rolled back by itself (an aborted statement can do that)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    # --- element primitives used by JobTracking -----------------------------------------------

    def _node_id(self) -> str:
        return self._meta("node_id") or ""

    def read_record(self, kind: str, *, int_id: Optional[int] = None,
                    guid: Optional[str] = None, name: Optional[str] = None,
                    ) -> Optional[tuple[str, dict]]:
        """(guid, Esri body) of one live element, by integer id, GUID or unique name."""
        args: tuple[object, ...]
        if guid is not None:
            where, args = "guid=?", (guid,)
        elif int_id is not None:
            where, args = "kind=? AND int_id=?", (kind, int_id)
        else:
            where, args = "kind=? AND name=?", (kind, name)
        with self._lock:
            row = self._db.execute(
                f"SELECT guid, body FROM elements WHERE {where} AND kind=? AND deleted=0",
                (*args, kind)).fetchone()
        return (row[0], codec.loads(row[1])) if row else None

    def read_records(self, kind: str, *, job_guid: Optional[str] = None,
                     ) -> list[tuple[str, dict]]:
        """Live elements of one kind (optionally of one job), in integer-id then GUID order."""
        sql = "SELECT guid, body FROM elements WHERE kind=? AND deleted=0"
        args: tuple = (kind,)
        if job_guid is not None:
            sql += " AND job_guid=?"
            args += (job_guid,)
        elif kind in NAMED_KINDS:
            # Every element of a named kind has a name; saying so lets SQLite search the
            # elements_name index instead of scanning every element (the REST server lists
            # users and groups on each request to check privileges).
            sql += " AND name IS NOT NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY int_id, seq", args).fetchall()
        return [(guid, codec.loads(body)) for guid, body in rows]

    def read_content(self, guid: str) -> Optional[bytes]:
        with self._lock:
            row = self._db.execute("SELECT content FROM elements WHERE guid=? AND deleted=0",
                                   (guid,)).fetchone()
        return row[0] if row else None

    def job_ids(self) -> list[int]:
        with self._lock:
            rows = self._db.execute("SELECT int_id FROM elements WHERE kind='job' AND deleted=0"
                                    " ORDER BY int_id").fetchall()
        return [row[0] for row in rows]

    def child_job_ids(self, job_id: int) -> list[int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT int_id FROM elements WHERE kind='job' AND deleted=0 AND"
                " json_extract(body, '$.parentJobId')=? ORDER BY int_id", (int(job_id),)
            ).fetchall()
        return [row[0] for row in rows]

    def next_int_id(self, tx: _Transaction, kind: str) -> int:
        """The next free integer id of ``kind`` inside this node's id block."""
        return self._next_int_id_in(tx, kind, int(self._meta("id_block_start") or 1))

    def _next_int_id_in(self, tx: _Transaction, kind: str, start: int) -> int:
        row = tx.cursor.execute(
            "SELECT MAX(int_id) FROM elements WHERE kind=? AND int_id>=? AND int_id<?",
            (kind, start, start + ID_BLOCK_SIZE)).fetchone()
        return (row[0] + 1) if row[0] is not None else start

    def write_record(self, tx: _Transaction, record: Record, *, guid: Optional[str] = None,
                     job_guid: Optional[str] = None, content: Optional[bytes] = None,
                     deleted: bool = False) -> Change:
        """Write a new local version of an element (a tombstone when ``deleted``)."""
        guid = guid or record.guid or new_guid()
        stored_keys = tx.cursor.execute(
            f"SELECT {', '.join(_KEY_COLUMNS)} FROM elements WHERE guid=?", (guid,)).fetchone()
        change = Change(
            guid=guid, kind=record.KIND, hlc=self.clock.now(), origin=self._node_id(),
            deleted=deleted, int_id=record.int_id, job_guid=job_guid,
            name=record.unique_name if record.KIND in NAMED_KINDS else None,
            body=codec.dumps(record.to_esri()), content=content)
        tx.upsert(change, stored_keys)
        return change

    def name_taken(self, tx: _Transaction, kind: str, name: str, guid: str) -> bool:
        return tx.cursor.execute(
            "SELECT 1 FROM elements WHERE kind=? AND name=? AND guid<>? AND deleted=0",
            (kind, name, guid)).fetchone() is not None

    def set_node_local(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.cursor.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                              (key, value))

    # --- Repository protocol: identity and change feed --------------------------------------------

    def info(self) -> NodeInfo:
        with self._read() as cursor:
            meta = dict(cursor.execute("SELECT key, value FROM meta").fetchall())
            seq = cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM elements").fetchone()[0]
        return NodeInfo(node_id=meta["node_id"], name=meta["name"],
                        incarnation=meta["incarnation"], seq=seq, clock=self.clock.last,
                        parent_node_id=meta.get("parent_node_id"),
                        id_block_start=int(meta.get("id_block_start", "1")))

    def _seq_written_since(self, cursor: sqlite3.Cursor, since_time: datetime) -> int:
        """The log position just before the first write at or after ``since_time``."""
        row = cursor.execute("SELECT MIN(seq) FROM seq_marks WHERE at_ms>=?",
                             (datetime_to_ms(since_time),)).fetchone()
        if row[0] is None:
            return cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM elements").fetchone()[0]
        previous = cursor.execute("SELECT MAX(seq) FROM seq_marks WHERE seq<?",
                                  (row[0],)).fetchone()[0]
        return previous or 0

    def changes(self, since_seq: int, *, limit: int, origin: Optional[str] = None,
                exclude_origin: Optional[str] = None,
                since_time: Optional[datetime] = None) -> ChangePage:
        if limit < 1:
            raise InvalidRequest("limit must be at least 1")
        with self._read() as cursor:
            if since_time is not None:
                since_seq = min(since_seq, self._seq_written_since(cursor, since_time))
            sql = f"SELECT {_COLUMNS}, seq FROM elements WHERE seq>?"
            args: list[Any] = [since_seq]
            if origin is not None:
                sql += " AND origin=?"
                args.append(origin)
            if exclude_origin is not None:
                sql += " AND origin<>?"
                args.append(exclude_origin)
            rows, more = bounded_page(cursor.execute(sql + " ORDER BY seq LIMIT ?", (*args, limit)),
                                  limit)
            if more:
                return ChangePage([Change.from_row(r) for r in rows], rows[-1][-1], True)
            high = cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM elements").fetchone()[0]
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
            return apply_batch(_ApplyTarget(self, tx), changes, options)

    # --- Repository protocol: snapshots (replicate) ----------------------------------------------

    def snapshot(self, cursor: int, limit: int) -> SnapshotPage:
        with self._read() as db:
            rows, more = bounded_page(db.execute(
                f"SELECT rowid, {_COLUMNS} FROM elements WHERE rowid>? ORDER BY rowid LIMIT ?",
                (cursor, limit)), limit, offset=1)
        if not rows:
            return SnapshotPage([], cursor, False)
        return SnapshotPage([row[1:] for row in rows], rows[-1][0], more)

    def begin_load(self) -> str:
        load_id = str(uuid.uuid4())
        with self.transaction() as tx:
            tx.cursor.execute(f"DROP TABLE IF EXISTS {_LOAD_TABLE}")
            tx.cursor.execute(_STAGED_TABLE.format(table=_LOAD_TABLE))
            tx.cursor.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('load_id', ?)",
                              (load_id,))
            tx.cursor.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('load_seq', ?)",
                              (str(tx.seq_start),))
        return load_id

    def _check_load(self, cursor: sqlite3.Cursor, load_id: str) -> int:
        meta = dict(cursor.execute(
            "SELECT key, value FROM meta WHERE key IN ('load_id', 'load_seq')").fetchall())
        if meta.get("load_id") != load_id:
            raise InvalidRequest("No such snapshot load in progress (it was replaced or ended)")
        return int(meta["load_seq"])

    def load_rows(self, load_id: str, rows: Iterable[tuple]) -> None:
        """Stage one page of a snapshot beside the live data.

        Staging commits with ``synchronous=NORMAL``, which saves an fsync per page. In WAL
        mode that cannot corrupt the file; a power cut can only forget the latest staged
        pages, and a staged copy counts for nothing until :meth:`commit_load`: that commits
        with ``FULL``, so its fsync of the WAL makes every staged page durable together with
        the swap (pages checkpointed earlier were synced by the checkpoint, which ``NORMAL``
        still syncs; ``OFF`` would not, hence not ``OFF``). A page and its ``load_seq`` share
        one transaction, so they never disagree after a crash. Checkpoints are also spaced
        out while staging (:data:`_STAGING_CHECKPOINT_PAGES`).
        """
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={_STAGING_CHECKPOINT_PAGES}")
            try:
                with self.transaction() as tx:
                    seq = self._check_load(tx.cursor, load_id)
                    batch = [(*row, seq + offset) for offset, row in enumerate(rows, start=1)]
                    refuse_inadmissible(self.clock, batch)
                    tx.cursor.executemany(
                        f"INSERT INTO {_LOAD_TABLE} ({_COLUMNS}, seq)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
                    if batch:  # observe the newest stamp once per page, not once per row
                        self.clock.observe(max(row[_HLC] for row in batch))
                    tx.cursor.execute("UPDATE meta SET value=? WHERE key='load_seq'",
                                      (str(seq + len(batch)),))
            finally:
                self._db.execute("PRAGMA wal_autocheckpoint=1000")
                self._db.execute("PRAGMA synchronous=FULL")

    def commit_load(self, load_id: str, *, parent_node_id: str, id_block_start: int,
                    new_node_id: Optional[str] = None) -> NodeInfo:
        """Swap the staged copy in, atomically: readers see the old contents or the new.

        The staged table gets its indexes here, the GUID one included (a unique index in place
        of the primary key: the same uniqueness and lookups; a duplicate GUID fails the swap
        and leaves the child as it was)."""
        with self.transaction() as tx:
            self._check_load(tx.cursor, load_id)
            tx.cursor.execute("DROP TABLE elements")
            tx.cursor.execute(f"ALTER TABLE {_LOAD_TABLE} RENAME TO elements")
            tx.cursor.execute(_STAGED_GUID_INDEX)
            for statement in _ELEMENT_INDEXES:
                tx.cursor.execute(statement)
            updates = {"parent_node_id": parent_node_id, "id_block_start": str(id_block_start),
                       "incarnation": str(uuid.uuid4())}
            if new_node_id:
                updates["node_id"] = new_node_id
            tx.cursor.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                  updates.items())
            tx.cursor.execute("DELETE FROM meta WHERE key IN ('load_id', 'load_seq')")
            tx.seq = tx.cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM elements"
                                       ).fetchone()[0]
        return self.info()

    def abort_load(self, load_id: str) -> None:
        """Drop the staged copy and give its space back to the disk: a replicate that failed
        because the disk filled up must not leave it full (the freed pages are returned where
        the file allows it, and the write-ahead log is truncated)."""
        with self.transaction() as tx:
            if self._meta("load_id") == load_id:
                tx.cursor.execute(f"DROP TABLE IF EXISTS {_LOAD_TABLE}")
                tx.cursor.execute("DELETE FROM meta WHERE key IN ('load_id', 'load_seq')")
        with self._lock, contextlib.suppress(sqlite3.Error):  # best effort: space, not data
            self._db.execute("PRAGMA incremental_vacuum")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- Repository protocol: replication info ----------------------------------------------------

    def nodes(self) -> list[NodeRecord]:
        with self._read() as cursor:
            rows = cursor.execute(
                "SELECT node_id, name, url, is_parent, is_connected, last_sync_ms,"
                " id_block_start, incarnation, pull_seq, push_seq FROM nodes ORDER BY name"
            ).fetchall()
        return [NodeRecord(node_id=r[0], name=r[1], url=r[2], is_parent=bool(r[3]),
                           is_connected=bool(r[4]), last_sync=ms_to_datetime(r[5]),
                           id_block_start=r[6], incarnation=r[7], pull_seq=r[8], push_seq=r[9])
                for r in rows]

    def save_node(self, node: NodeRecord) -> None:
        with self.transaction() as tx:
            tx.cursor.execute(
                "INSERT OR REPLACE INTO nodes (node_id, name, url, is_parent, is_connected,"
                " last_sync_ms, id_block_start, incarnation, pull_seq, push_seq)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (node.node_id, node.name, node.url, int(node.is_parent),
                 int(node.is_connected), datetime_to_ms(node.last_sync), node.id_block_start,
                 node.incarnation, node.pull_seq, node.push_seq))

    def clear_replication_info(self) -> None:
        with self.transaction() as tx:
            tx.cursor.execute("DELETE FROM nodes")
            tx.cursor.execute("DELETE FROM meta WHERE key='parent_node_id'")

    def renew_incarnation(self) -> str:
        incarnation = str(uuid.uuid4())
        self.set_node_local("incarnation", incarnation)
        return incarnation

    def conflicts(self) -> list[ConflictRecord]:
        with self._read() as cursor:
            rows = cursor.execute(
                "SELECT guid, kind, int_id, winner_origin, winner_hlc, loser_origin, loser_hlc,"
                " loser_deleted, loser_body, reason, detected_ms, winner_int_id FROM conflicts"
                " ORDER BY id").fetchall()
        return [ConflictRecord(guid=r[0], kind=r[1], int_id=r[2], winner_origin=r[3],
                               winner_hlc=r[4], loser_origin=r[5], loser_hlc=r[6],
                               loser_deleted=bool(r[7]), loser_body=r[8], reason=r[9],
                               detected_at=ms_to_datetime(r[10]), winner_int_id=r[11])
                for r in rows]

    # --- inspection (tests, status, verify) -----------------------------------------------------

    def all_rows(self) -> list[tuple]:
        """Every element version (tombstones included), in GUID order, without ``seq``."""
        with self._read() as cursor:
            return cursor.execute(f"SELECT {_COLUMNS} FROM elements ORDER BY guid").fetchall()

    def element_count(self) -> int:
        with self._read() as cursor:
            return cursor.execute("SELECT COUNT(*) FROM elements").fetchone()[0]


__all__ = ["APPLICATION_ID", "EmbeddedRepository", "RepositoryError", "RepositoryReadOnly",
           "embedded_path"]
