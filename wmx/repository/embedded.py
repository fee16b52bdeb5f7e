"""The embedded repository: one SQLite file (conventionally ``*.wmxdb``) in WAL mode.

The tables and every statement are the shared ones (:mod:`wmx.store.sql`): an ``elements``
table whose ``seq`` column is the change log, tombstones, node, conflict and wall-time marks.
This module is SQLite's part: the file (is it ours, one path per file, its write-ahead log),
the connection and its lock (``BEGIN IMMEDIATE``), SQLite's errors, the schema of a new file and
the upgrade of an older one, and staging a snapshot cheaply. It must never know about HTTP,
value tables or the engine's order of operations. Standard-library ``sqlite3`` only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

from wmx.model.clock import HybridLogicalClock, WallClock
from wmx.repository.base import (
    InvalidRequest,
    RepositoryBusy,
    RepositoryError,
    RepositoryFull,
    RepositoryNotFound,
    RepositoryReadOnly,
    RepositoryUnavailable,
)
from wmx.store.dialect import Dialect
from wmx.store.rows import SCHEMA_VERSION, UPGRADABLE_VERSIONS, parent_job_id
from wmx.store.sql import (
    ELEMENT_INDEXES,
    LOAD_TABLE,
    SET_META,
    STAGED_COLUMNS,
    Session,
    SqlStore,
    SqlTransaction,
    element_table,
    joined,
    schema,
)

APPLICATION_ID = 0x776D7831
"""SQLite's ``PRAGMA application_id`` of a wmx repository (``wmx1``), stored in the file header:
lets the open path know a file is ours before any connection touches it."""
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_FULL = 13
_HEADER_BYTES = 100
_APPLICATION_ID_AT = 68

SQLITE = Dialect(
    integer="INTEGER", flag="INTEGER", binary="BLOB",
    # Nullable: ALTER TABLE can only add it so to an older file; every write numbers it.
    row_number="INTEGER",
    next_row_number="(SELECT COALESCE(MAX(row_no), 0) + 1 FROM elements)",
    serial_key="INTEGER PRIMARY KEY AUTOINCREMENT",
    # A unique index in place of the primary key: the same uniqueness and lookups. The staged
    # table has no key while rows stream in: inserts only append, and the GUID index is built
    # once, by sorting, when the copy is swapped in. Maintaining a random-GUID B-tree row by
    # row, committed page by page, rewrote most of its leaves on every commit and was the
    # dominant cost of a replicate (18 s of 24 s for 1,000,000 rows).
    staged_key="CREATE UNIQUE INDEX IF NOT EXISTS elements_guid ON elements (guid)",
    guid_chunk=500)
_ELEMENT_TABLE = element_table(SQLITE, "{table}")
_STAGE_ROWS = (f"INSERT INTO {LOAD_TABLE} ({', '.join((*STAGED_COLUMNS, 'row_no'))}) VALUES"
               f" ({', '.join(f'?{n}' for n in range(1, len(STAGED_COLUMNS) + 1))},"
               f" ?{STAGED_COLUMNS.index('seq') + 1})")
_STAGING_CHECKPOINT_PAGES = 16384
"""While staging a snapshot the WAL is checkpointed every 64 MiB (4 KiB pages) rather than
every 4 MiB: fewer checkpoint fsyncs, and still a bounded WAL file."""
_UPGRADE = (
    "ALTER TABLE elements ADD COLUMN parent_job_id INTEGER",
    "ALTER TABLE elements ADD COLUMN row_no INTEGER",
    "UPDATE elements SET row_no = rowid",
    "DROP INDEX IF EXISTS elements_parent_job",  # it read parentJobId out of the body
    # A copy an older wmx was staging has neither column: that replicate is over.
    f"DROP TABLE IF EXISTS {LOAD_TABLE}",
    "DELETE FROM meta WHERE key IN ('load_id', 'load_seq')",
)
"""From layout 1: the columns, ``row_no`` numbered in ``rowid`` order (the cursor it replaces);
``parent_job_id`` is filled in by :meth:`EmbeddedRepository._upgrade`."""


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
    return row is not None and row[0] in (SCHEMA_VERSION, *UPGRADABLE_VERSIONS) and \
        {"elements", "nodes"} <= tables


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



class _Transaction(SqlTransaction):
    """One write transaction on the store's connection; ``cursor`` runs its statements."""

    dialect = SQLITE

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor
        super().__init__(cursor)


class EmbeddedRepository(SqlStore[_Transaction]):
    """A repository in a SQLite file; implements :class:`wmx.repository.base.Repository`."""

    dialect = SQLITE

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
            # Debian's and others' SQLite builds default to secure_delete=ON, which writes
            # zeros over every page a DROP or DELETE frees: swapping in a replicate's copy
            # rewrote the whole old table (0.85 s of a 100,000-row copy). FAST still clears
            # deleted content wherever that costs no extra write; a tombstone keeps its last
            # body anyway, so no erased text is expected to be gone from the file.
            self._db.execute("PRAGMA secure_delete=FAST")
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise RepositoryNotFound(
                f"{self.location} is not a wmx repository ({exc})") from None
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION and version not in UPGRADABLE_VERSIONS:
            raise RepositoryNotFound(f"{self.location} is not a wmx repository")
        kwargs = {"wall": wall_clock} if wall_clock else {}
        self.clock = HybridLogicalClock(int(meta.get("clock", "0")), **kwargs)
        if version != SCHEMA_VERSION:
            try:
                self._upgrade()
            except BaseException:
                self._db.close()  # a store that failed to open holds no connection
                raise

    def _upgrade(self) -> None:
        """Bring a file of an older layout up to date, in one transaction (another process may
        have done it meanwhile: then nothing is left to do)."""
        with self.transaction() as tx:
            if self._meta("schema_version") == SCHEMA_VERSION:
                return
            for statement in _UPGRADE:
                tx.execute(statement)
            parents = [(parent, guid) for guid, body in tx.execute(
                "SELECT guid, body FROM elements WHERE kind = 'job' AND deleted = 0")
                for parent in (parent_job_id("job", body, 0),) if parent is not None]
            tx.cursor.executemany("UPDATE elements SET parent_job_id = ? WHERE guid = ?",
                                  parents)
            for statement in ELEMENT_INDEXES:
                tx.execute(statement)
            tx.execute(SET_META, ("schema_version", SCHEMA_VERSION))

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
            for statement in schema(SQLITE):
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

    @contextlib.contextmanager
    def _query(self) -> Iterator[Session]:
        """One statement on the connection, as it stands (inside this store's write
        transaction, that transaction)."""
        with self._lock:
            yield self._db

    @contextlib.contextmanager
    def _read(self) -> Iterator[Session]:
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
                yield joined(self._open_transaction, rollback=rollback)
                return
            cursor = self._db.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                # An interrupted BEGIN can leave the transaction open, holding the write lock.
                self._end_quietly()
                raise RepositoryBusy(f"{self.location} is busy: {exc}") from None
            try:
                tx = self._open_transaction = _Transaction(cursor)
                with self._kept(tx, rollback=rollback):
                    yield tx
            except sqlite3.Error as exc:
                self._end_quietly()
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

    # --- snapshots (replicate): SQLite's staging ---------------------------------------------

    def load_rows(self, load_id: str, rows: Iterable[tuple]) -> None:
        """Stage one page of a snapshot beside the live data.

        Staging commits with ``synchronous=NORMAL``, which saves an fsync per page. In WAL
        mode that cannot corrupt the file; a power cut can only forget the latest staged
        pages, and a staged copy counts for nothing until :meth:`commit_load`: that commits
        with ``FULL``, so its fsync of the WAL makes every staged page durable together with
        the swap (pages checkpointed earlier were synced by the checkpoint, which ``NORMAL``
        still syncs; ``OFF`` would not, hence not ``OFF``). Checkpoints are also spaced out
        while staging (:data:`_STAGING_CHECKPOINT_PAGES`).
        """
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={_STAGING_CHECKPOINT_PAGES}")
            try:
                super().load_rows(load_id, rows)
            finally:
                self._db.execute("PRAGMA wal_autocheckpoint=1000")
                self._db.execute("PRAGMA synchronous=FULL")

    def _stage(self, tx: _Transaction, rows: list[tuple[Any, ...]]) -> None:
        """Appended in one ``executemany``; each row's log position is its ``row_no`` too
        (unique, in the order the parent sent them): the statement binds that one parameter
        twice, so the rows go in as they are."""
        tx.cursor.executemany(_STAGE_ROWS, rows)

    def _give_back_space(self) -> None:
        """The freed pages go back to the disk where the file allows it, and the write-ahead
        log is truncated (best effort: space, not data)."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA incremental_vacuum")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


__all__ = ["APPLICATION_ID", "EmbeddedRepository", "RepositoryError", "RepositoryReadOnly",
           "embedded_path"]
