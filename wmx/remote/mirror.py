"""The mirror of one Esri server: what wmx last saw there, kept in the state folder.

A mirror is an ordinary embedded repository (so it has a change log, node records and
conflict rules like any store) whose node identity is the Esri server's, plus two tables of
its own in the same file:
* ``esri_ids``: which element GUID an Esri-assigned id stands for (hold, attachment,
  dependency and extended-property ids are assigned by each server; activity records have no
  id and are keyed by what they say);
* ``esri_pending``: elements whose version the mirror holds but the server does not have yet:
  written by a push still under way (``reason`` NULL) or refused by Esri's surface (``reason``
  says why). A pull never takes the server's state of a pending element as a change;
* ``esri_flags``: ``rebuilding`` while a new mirror has not given the server's elements their
  identities yet (see :meth:`wmx.remote.esri.EsriRepository.adopt`).

This module knows SQL over the mirror file and the comparison rule; it must never make an HTTP
request.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import attrs

from wmx.model import codec
from wmx.model.records import RECORD_TYPES, Record
from wmx.repository.embedded import EmbeddedRepository
from wmx.state import state_folder

ESRI_NAMESPACE = uuid.UUID("6b7f1c8e-93a4-4f0e-b3c5-2a9d7e41f0c6")
"""Namespace of every GUID derived for an element read from an Esri server."""

_TABLES = (
    "CREATE TABLE IF NOT EXISTS esri_ids (kind TEXT NOT NULL, job_id INTEGER NOT NULL,"
    " esri_key TEXT NOT NULL, guid TEXT NOT NULL, PRIMARY KEY (kind, job_id, esri_key))",
    "CREATE INDEX IF NOT EXISTS esri_ids_guid ON esri_ids(guid)",
    "CREATE TABLE IF NOT EXISTS esri_pending (guid TEXT PRIMARY KEY, job_id INTEGER,"
    " reason TEXT)",
    "CREATE TABLE IF NOT EXISTS esri_flags (flag TEXT PRIMARY KEY)",
)
_REBUILDING = "rebuilding"
"""Flag of a mirror made for a server the cluster may already know (its state folder lost):
set when the mirror is created, cleared once the server's elements have their identities."""

COMPARED_FIELDS: dict[str, frozenset[str]] = {
    "job": frozenset({"name", "description", "startDate", "dueDate", "priority", "status",
                      "parentJobId", "dataWorkspaceId", "parentVersion", "versionName",
                      "ownedBy", "assignedType", "assignedTo", "percentageComplete", "aoi",
                      "poi", "jobTypeId", "closed"}),
    "hold": frozenset({"type", "holdComments", "released", "releaseComments"}),
    "activity": frozenset({"type", "message"}),
    "attachment": frozenset({"filename", "storageType", "folder"}),
    "dependency": frozenset({"depJobId", "heldOnType", "heldOnValue", "depOnType",
                             "depOnValue"}),
    "extended_property": frozenset({"tableName", "values"}),
    "job_type": frozenset({"id", "name", "description", "category", "state"}),
    "status": frozenset({"id", "name", "description", "caption"}),
    "priority": frozenset({"value", "name", "description"}),
    "activity_type": frozenset({"id", "name", "description", "message"}),
    "hold_type": frozenset({"id", "name", "description"}),
    "user": frozenset({"userName", "fullName", "email"}),
    "group": frozenset({"id", "name", "description", "users"}),
    "config_property": frozenset({"key", "value"}),
}
"""What a version this node did not write (one pushed from the cluster) must agree on with
the server's element to be the same: for job data, what Esri's write endpoints can set (dates
and users the server stamps, server-assigned ids, are the server's to decide); for
configuration, which Esri cannot write, what Esri's summaries show (the details a wmx
repository keeps beyond them are not Esri's to hold)."""


def canonical_url(url: str) -> str:
    """One spelling per service: lower-case scheme and host, ``localhost`` as ``127.0.0.1``,
    no default port, path segments lower-cased (Esri matches them case-insensitively)."""
    parts = urlsplit(url.strip().rstrip("/"))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = "127.0.0.1" if host in ("localhost", "::1", "[::1]") else host
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.lower()}"


def node_id_for(url: str) -> str:
    """The Esri server's node identity: derived from its canonical URL, so it survives the
    state folder being deleted and is the same for every spelling of the URL."""
    return str(uuid.uuid5(ESRI_NAMESPACE, f"node:{canonical_url(url)}"))


def job_guid_for(job_id: int) -> str:
    """A job first seen on an Esri server: job ids are unique in a cluster, so the id alone
    gives every Esri node (and every rebuilt mirror) the same GUID."""
    return str(uuid.uuid5(ESRI_NAMESPACE, f"job:{int(job_id)}"))


def element_guid_for(kind: str, scope: str, key: str) -> str:
    """Any other element first seen on an Esri server: its kind, the scope its Esri key is
    unique in (a job id; the server for configuration) and that key."""
    return str(uuid.uuid5(ESRI_NAMESPACE, f"{kind}:{scope}:{key}"))


def mirror_path(url: str) -> Path:
    digest = hashlib.sha256(canonical_url(url).encode()).hexdigest()[:24]
    return state_folder() / "esri" / f"{digest}.wmxdb"


def open_mirror(url: str, *, name: str, id_block_start: int) -> EmbeddedRepository:
    """The server's mirror, created (empty, with the server's identity) on first contact."""
    path = mirror_path(url)
    if not path.is_file():
        # Built under a name of its own and moved in whole: a crash leaves no half mirror,
        # and of two first contacts at once the first one's mirror is kept.
        created = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.creating")
        store = EmbeddedRepository.create(created, name=name, job_id_start=id_block_start)
        try:
            store.set_node_local("node_id", node_id_for(url))
            store.set_node_local("esri_url", canonical_url(url))
            with store.transaction() as tx:
                for statement in _TABLES:
                    tx.cursor.execute(statement)
                tx.cursor.execute("INSERT INTO esri_flags (flag) VALUES (?)", (_REBUILDING,))
        finally:
            store.close()
        if path.is_file():
            created.unlink()
        else:
            os.replace(created, path)
    return EmbeddedRepository(path)


@attrs.frozen
class Seen:
    """One element as the server shows it, translated into the cluster's ids."""

    guid: str
    record: Record
    job_guid: Optional[str] = None
    content: Optional[bytes] = None
    """Embedded attachment bytes downloaded this run; ``None``: those the mirror holds."""


def normal(value: Any) -> Any:
    """Esri writes "" where wmx writes None, and lists every field of a record: compare
    without the difference (empty values are absent)."""
    if isinstance(value, dict):
        return {key: normal(item) for key, item in value.items() if normal(item) is not None}
    return None if value == "" else value


def projection(kind: str, body: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """What two versions must agree on to be equal (``full``: every field), empty values
    left out."""
    shown = normal(body)
    if kind == "job":
        shown["closed"] = shown.get("stage") == 5
    elif kind == "hold":
        shown["released"] = shown.get("releaseDate") is not None
    if full or kind not in COMPARED_FIELDS:
        return shown
    return {key: value for key, value in shown.items() if key in COMPARED_FIELDS[kind]}


class MirrorBook:
    """The mirror's own tables (id map, pending pushes), over the mirror's connection."""

    def __init__(self, store: EmbeddedRepository) -> None:
        self.store = store
        with store.transaction() as tx:
            for statement in _TABLES:
                tx.cursor.execute(statement)

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self.store.transaction() as tx:
            return tx.cursor.execute(sql, args).fetchall()

    # --- the id map ---------------------------------------------------------------------------

    def id_map(self) -> dict[tuple[str, int, str], str]:
        return {(kind, job_id, key): guid for kind, job_id, key, guid in
                self._rows("SELECT kind, job_id, esri_key, guid FROM esri_ids")}

    def bind(self, bindings: Iterable[tuple[str, int, str, str]]) -> None:
        """Record that an Esri key stands for a GUID (replacing what it stood for)."""
        with self.store.transaction() as tx:
            tx.cursor.executemany("INSERT OR REPLACE INTO esri_ids (kind, job_id, esri_key, guid)"
                                  " VALUES (?,?,?,?)", list(bindings))

    def guid_of(self, kind: str, job_id: int, key: str) -> Optional[str]:
        rows = self._rows("SELECT guid FROM esri_ids WHERE kind=? AND job_id=? AND esri_key=?",
                          (kind, job_id, key))
        return rows[0][0] if rows else None

    def unbind(self, guid: str) -> None:
        with self.store.transaction() as tx:
            tx.cursor.execute("DELETE FROM esri_ids WHERE guid=?", (guid,))

    def keys_of(self, guid: str) -> list[str]:
        return [row[0] for row in self._rows("SELECT esri_key FROM esri_ids WHERE guid=?",
                                             (guid,))]

    # --- the rebuild ----------------------------------------------------------------------

    def rebuilding(self) -> bool:
        return bool(self._rows("SELECT 1 FROM esri_flags WHERE flag=?", (_REBUILDING,)))

    def forget_unsent(self) -> None:
        """Drop the elements and id bindings that are not pending pushes (a rebuilding mirror
        compared before it knew the cluster's identities)."""
        with self.store.transaction() as tx:
            tx.cursor.execute("DELETE FROM esri_ids WHERE guid NOT IN"
                              " (SELECT guid FROM esri_pending)")
            tx.cursor.execute("DELETE FROM elements WHERE guid NOT IN"
                              " (SELECT guid FROM esri_pending)")

    def rebuilt(self) -> None:
        with self.store.transaction() as tx:
            tx.cursor.execute("DELETE FROM esri_flags WHERE flag=?", (_REBUILDING,))

    # --- pending pushes --------------------------------------------------------------------

    def pending(self) -> dict[str, tuple[Optional[int], Optional[str]]]:
        return {guid: (job_id, reason) for guid, job_id, reason in
                self._rows("SELECT guid, job_id, reason FROM esri_pending")}

    def add_pending(self, items: Iterable[tuple[str, Optional[int]]]) -> None:
        with self.store.transaction() as tx:
            tx.cursor.executemany("INSERT OR REPLACE INTO esri_pending (guid, job_id, reason)"
                                  " VALUES (?,?,NULL)", list(items))

    def hold_back(self, guid: str, reason: str) -> None:
        with self.store.transaction() as tx:
            tx.cursor.execute("UPDATE esri_pending SET reason=? WHERE guid=?", (reason, guid))

    def mark_pending_since(self, tx: Any, seq: int) -> None:
        """Inside the write transaction that wrote them: every version after ``seq`` is to be
        written to the server (so a crash right after the commit cannot forget one)."""
        tx.cursor.execute(
            "INSERT OR REPLACE INTO esri_pending (guid, job_id, reason) SELECT e.guid,"
            " CASE WHEN e.kind='job' THEN e.int_id ELSE"
            " (SELECT j.int_id FROM elements j WHERE j.guid=e.job_guid) END, NULL"
            " FROM elements e WHERE e.seq>?", (seq,))

    def restart(self, tx: Any) -> None:
        """After the mirror's contents were replaced (a replicate): the old id map means
        nothing, and every element is to be written to the server."""
        tx.cursor.execute("DELETE FROM esri_ids")
        tx.cursor.execute("DELETE FROM esri_pending")
        self.mark_pending_since(tx, -1)
        tx.cursor.execute("DELETE FROM esri_pending WHERE guid IN"
                          " (SELECT guid FROM elements WHERE deleted=1)")

    def pending_rows(self) -> list[tuple]:
        """The mirror's versions of the pending elements, as :func:`live_rows` gives them
        (a push reads these only, not the whole mirror)."""
        return [(guid, kind, job_guid, body, content, origin, bool(deleted))
                for guid, kind, job_guid, body, content, origin, deleted in self._rows(
                    "SELECT e.guid, e.kind, e.job_guid, e.body, e.content, e.origin, e.deleted"
                    " FROM esri_pending p JOIN elements e ON e.guid = p.guid")]

    def done(self, guid: str) -> None:
        with self.store.transaction() as tx:
            tx.cursor.execute("DELETE FROM esri_pending WHERE guid=?", (guid,))


def live_rows(store: EmbeddedRepository) -> Iterator[tuple]:
    """(guid, kind, job_guid, body, has_content, origin, deleted) of every element in the
    mirror: attachment bytes stay on disk (a pull compares bytes only for attachments it
    downloaded, which are few)."""
    with store.transaction() as tx:
        rows = tx.cursor.execute("SELECT guid, kind, job_guid, body, content IS NOT NULL,"
                                 " origin, deleted FROM elements").fetchall()
    for guid, kind, job_guid, body, has_content, origin, deleted in rows:
        yield guid, kind, job_guid, body, bool(has_content), origin, bool(deleted)


def reconcile(store: EmbeddedRepository, seen: Sequence[Seen], *, esri_node: str,
              skip: set[str]) -> int:
    """Write into the mirror, as the Esri node's own versions, what the server shows and the
    mirror does not: new and changed elements, and tombstones for elements gone from the
    server. ``skip`` holds pending GUIDs (the mirror's version is the one intended). Returns
    the number of versions written; an unchanged server writes nothing."""
    stored = {row[0]: row for row in live_rows(store)}
    writes: list[tuple[Seen, bool]] = []
    for item in seen:
        if item.guid in skip:
            continue
        row = stored.get(item.guid)
        if row is None or row[6] or not _same(store, item, row, esri_node):
            writes.append((item, False))
    seen_guids = {item.guid for item in seen}
    gone = [row for guid, row in stored.items()
            if not row[6] and guid not in seen_guids and guid not in skip]
    if not writes and not gone:
        return 0
    with store.transaction() as tx:
        for item, _ in writes:
            content = item.content if item.content is not None else store.read_content(
                item.guid)
            store.write_record(tx, item.record, guid=item.guid, job_guid=item.job_guid,
                               content=content)
        for guid, kind, job_guid, body, _content, _origin, _deleted in gone:
            record = RECORD_TYPES[kind].from_esri(codec.loads(body), guid)
            store.write_record(tx, record, guid=guid, job_guid=job_guid, deleted=True)
    return len(writes) + len(gone)


def _same(store: EmbeddedRepository, item: Seen, row: tuple, esri_node: str) -> bool:
    _guid, kind, _job_guid, body, has_content, origin, _deleted = row
    full = origin == esri_node
    if item.content is not None and (not has_content or
                                     store.read_content(item.guid) != item.content):
        return False
    shown = item.record.to_esri()
    if full and codec.dumps(shown) == body:
        return True  # the server's own element, as the mirror last stored it (most of a poll)
    return projection(kind, codec.loads(body), full=full) == projection(kind, shown, full=full)
