"""An Esri Workflow Manager (Classic) server as a repository of the cluster.

:class:`EsriRepository` implements :class:`wmx.repository.base.Repository` over Esri's
documented REST surface, so the engine runs unchanged with Esri servers as parents, children,
or the whole cluster. Esri offers no change feed, so each server has a mirror in the state
folder (:mod:`wmx.remote.mirror`) and:

* **pull** (first use of a repository object): read the whole server, give each element its
  cluster identity, and record in the mirror, as that server's own versions, what differs from
  what the mirror holds; ``changes()`` and ``snapshot()`` are then the mirror's;
* **push** (``apply``, and a replicate's ``commit_load``): the mirror decides what wins, as any
  store does; the versions it took are marked pending in the same transaction and written
  through Esri's write endpoints, each compared with the server's current state first, so a
  push that was interrupted is finished by the next run without creating anything twice.
  What Esri's surface cannot write is a WARNING naming the element, repeated by every run
  until it is resolved, and never stops the other changes.

Identity rules (see ``docs/esri-servers.md``): a job is matched by its id (unique in a
cluster) before a GUID is derived for it (``job_guid_for``); server-assigned ids of holds,
attachments, dependencies and extended-property records are mapped to GUIDs in the mirror;
activity records are keyed by what they say. This module must never send a request outside
Esri's documented surface (the ``x-`` probe of first contact lives in ``esri_client``).
"""

from __future__ import annotations

import logging
import ntpath
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Optional

import attrs

from wmx.model import codec
from wmx.model.changes import Change, ConflictPolicy
from wmx.model.clock import stamp_from_datetime
from wmx.model.records import (
    CONFIG_KINDS,
    ID_BLOCK_SIZE,
    NAMED_KINDS,
    RECORD_TYPES,
    STAGE_CLOSED,
    STORAGE_EMBEDDED,
    STORAGE_LINKED_FILE,
    Activity,
    Attachment,
    ConfigProperty,
    Dependency,
    ExtendedPropertyRecord,
    Hold,
    Job,
    Notes,
    Record,
    to_millis,
)
from wmx.remote.esri_client import EsriClient, default_user
from wmx.remote.esri_read import (
    JobBundle,
    read_configuration,
    read_job,
    read_job_ids,
    refresh,
)
from wmx.remote.esri_tokens import TokenSource, credentials_for, token_url_for
from wmx.remote.mirror import (
    MirrorBook,
    Seen,
    canonical_url,
    element_guid_for,
    job_guid_for,
    live_rows,
    node_id_for,
    normal,
    open_mirror,
    projection,
    reconcile,
)
from wmx.repository.base import (
    ApplyReport,
    ChangePage,
    ConflictRecord,
    InvalidRequest,
    NodeInfo,
    NodeRecord,
    RepositoryError,
    SnapshotPage,
)
from wmx.repository.jobs import notes_guid
from wmx.repository.setup import builtin_guid
from wmx.repository.transport import default_timeout
from wmx.repository.wire import JOB_CREATE_PARAMS, JOB_PARAMS

log = logging.getLogger("wmx.esri")

JOB_KEY = "job"
"""The id-map key of a job the server holds as this element (jobs keep their ids; the map
says the server's job of that id is this one, not another job that took the id)."""
_KIND_ORDER = ("notes", "hold", "activity", "attachment", "extended_property", "dependency")
_SUB_KINDS_WITH_IDS = ("hold", "attachment", "dependency", "extended_property")
_CANNOT_WRITE = "Esri documents no REST operation that writes {what}"
_LOGGED_BY_ESRI = frozenset({"createjob", "assignjob", "closejob", "reopenjob", "addhold",
                             "releasehold"})
"""Names of the activity types Workflow Manager logs itself when the operation is made."""
_PLURAL = {"job_type": "job types", "status": "job statuses", "priority": "job priorities",
           "activity_type": "activity types", "hold_type": "hold types", "user": "users",
           "group": "groups", "config_property": "configuration properties"}


def _service_name(url: str) -> str:
    parts = url.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1].lower() == "wmserver" else parts[-1]


def activity_keys(records: Sequence[Activity]) -> list[str]:
    """Keys for activity records, which have no id: what they say, numbered when repeated."""
    counts: Counter[str] = Counter()
    keys = []
    for record in records:
        text = f"{record.type}|{to_millis(record.date)}|{record.user or ''}|{record.message}"
        counts[text] += 1
        keys.append(f"{text}#{counts[text]}")
    return keys


def keyed_records(bundle: JobBundle) -> list[tuple[str, Any]]:
    """A job's records with the keys the id map knows them by: the server's id, or for
    activity records (which have none) what they say."""
    numbered: list[Any] = [*bundle.holds, *bundle.attachments, *bundle.dependencies,
                           *bundle.extended]
    return [*((str(r.id), r) for r in numbered),
            *zip(activity_keys(bundle.activity), bundle.activity)]


_IDENTITY: dict[str, Callable[[Any], tuple[Any, ...]]] = {
    "hold": lambda r: (r.type, normal(r.hold_comments)),
    "activity": lambda r: (r.type, r.message),
    "attachment": lambda r: (r.storage_type, normal(r.filename), normal(r.folder)),
    "dependency": lambda r: (r.dep_job_id, r.held_on_type, r.held_on_value, r.dep_on_type,
                             r.dep_on_value),
    "extended_property": lambda r: (r.table_name.lower(), normal(r.values)),
}
"""What makes a job's record the same record on the server and in the cluster (the server
assigns its own ids and dates): how a push finds its write after a lost reply, and how a
rebuilt mirror finds the cluster's records on the server."""


def _same_as(want: Record) -> Callable[[Any], bool]:
    identity = _IDENTITY[want.KIND]
    wanted = identity(want)
    return lambda item: identity(item) == wanted


_MIRROR_READS = frozenset({
    "jobs", "get_job", "holds", "get_hold", "get_notes", "activity", "attachments",
    "attachment_content", "dependencies", "extended_properties", "list_config", "get_config",
    "users", "groups", "config_properties", "user_privileges", "may_replicate"})
"""Esri-level reads (``wmx jobs``, ``wmx status``): answered by the mirror once it has read the
server in this run."""
_MIRROR_WRITES = frozenset({
    "create_job", "update_job", "assign_job", "close_job", "reopen_job", "delete_job",
    "create_hold", "release_hold", "set_notes", "log_action", "add_attachment",
    "delete_attachment", "add_dependency", "delete_dependency", "add_extended_property",
    "update_extended_property", "delete_extended_property"})
"""Esri-level writes: made in the mirror as the server's own edit, then pushed to it like any
change (so they also travel to the cluster at the next sync)."""


@attrs.define
class _Matched:
    """Another node's versions that stand for the server's elements, with the id bindings."""

    versions: list[Change] = attrs.Factory(list)
    bindings: list[tuple[str, int, str, str]] = attrs.Factory(list)
    job_ids: dict[str, Optional[int]] = attrs.Factory(dict)
    """GUID -> the job it belongs to (None for configuration), as pending pushes need it."""

    def add(self, change: Change, job_id: Optional[int]) -> None:
        self.versions.append(change)
        self.job_ids[change.guid] = job_id


class _Adoption:
    """Which versions of another node stand for what a rebuilt mirror read from the server
    (:meth:`EsriRepository.adopt`): a job by its id, if the server's job of that id has its
    job type and either its name or, for a job created before the pair's last exchange
    (``since``), any name (it was on the server then: renamed since, on either side, it is
    still that job); otherwise a job an Esri user made under an id the cluster uses is
    another job, left to the id-collision rule, reported, never taken for the cluster's. A
    job's records by their identity (:data:`_IDENTITY`), each server record taken once;
    configuration by id or name. Tombstones are left out: the server's element stays what it
    is."""

    def __init__(self, server: dict[int, Optional[JobBundle]], config: list[Record],
                 ids: dict[tuple[str, int, str], str],
                 job_type_on_server: Callable[[Optional[int]], Optional[int]],
                 since: Optional[datetime]) -> None:
        self.server = server
        self.job_type_on_server = job_type_on_server
        self.since = since
        self.config: set[tuple[str, object]] = {(r.KIND, r.int_id) for r in config
                                                if r.int_id is not None}
        self.config |= {(r.KIND, str(r.unique_name)) for r in config if r.unique_name}
        self.ids = ids
        self.claimed = set(ids)

    def match(self, versions: Iterable[Change]) -> _Matched:
        jobs: dict[int, Change] = {}
        records: list[Change] = []
        matched = _Matched()
        for change in versions:
            if change.deleted or not change.body:
                continue
            if change.kind == "job":
                if change.int_id is not None and self._same_job(change):
                    jobs[change.int_id] = change
            elif change.kind in CONFIG_KINDS:
                if (change.kind, change.int_id) in self.config or (
                        change.kind, change.name) in self.config:
                    matched.add(change, None)
            else:
                records.append(change)
        job_of: dict[str, int] = {}
        for job_id, change in jobs.items():
            bound = self.ids.get(("job", job_id, JOB_KEY))
            if bound is None:
                matched.bindings.append(("job", job_id, JOB_KEY, change.guid))
            elif bound != change.guid:
                continue
            job_of[change.guid] = job_id
            matched.add(change, job_id)
        for change in records:
            owner = job_of.get(change.job_guid or "")
            if owner is not None and (change.kind == "notes" or
                                      self._bind(change, owner, matched)):
                matched.add(change, owner)
        return matched

    def _same_job(self, change: Change) -> bool:
        bundle = self.server.get(change.int_id or 0)
        if bundle is None:
            return False
        want = Job.from_esri(codec.loads(change.body or "{}"), change.guid)
        if bundle.job.job_type_id != self.job_type_on_server(want.job_type_id):
            return False
        return bundle.job.name == want.name or (
            self.since is not None and want.created_date is not None
            and want.created_date < self.since)

    def _bind(self, change: Change, job_id: int, matched: _Matched) -> bool:
        bundle = self.server[job_id]
        if change.kind not in _IDENTITY or bundle is None:
            return False
        same = _same_as(RECORD_TYPES[change.kind].from_esri(codec.loads(change.body or "{}"),
                                                             change.guid))
        for key, record in keyed_records(bundle):
            if change.kind == record.KIND and (change.kind, job_id, key) not in self.claimed \
                    and same(record):
                self.claimed.add((change.kind, job_id, key))
                matched.bindings.append((change.kind, job_id, key, change.guid))
                return True
        return False


class _Refused(Exception):
    """This element cannot be written to the Esri server; the text says why."""


class EsriRepository:
    """An Esri WMServer service as a cluster node, through its mirror in the state folder."""

    def __init__(self, location: str, token: Optional[str] = None, *,
                 user: Optional[str] = None, timeout: Optional[float] = None,
                 connections: int = 8,
                 verify: bool | str = True, credentials: Optional[tuple[str, str]] = None,
                 token_url: Optional[str] = None, dry_run: bool = False) -> None:
        self.location = location.strip().rstrip("/")
        self.dry_run = dry_run
        """For a run that writes nothing: a push an earlier run left unfinished waits."""
        self.node_id = node_id_for(self.location)
        tokens = TokenSource(
            token=token, credentials=None if token else (
                credentials or credentials_for(self.location)),
            token_url=token_url or token_url_for(self.location),
            timeout=default_timeout() if timeout is None else timeout, verify=verify)
        self.client = EsriClient(self.location, tokens=tokens,
                                 user=user if user is not None else default_user(),
                                 timeout=timeout, connections=connections, verify=verify)
        try:
            self._root = self.client.root()
            name = self._repository_name()
            properties = self._root.get("configProperties") or {}
            start = str(properties.get("JOB_ID_START_VALUE", "1")).strip()
            self.mirror = open_mirror(self.location, name=name,
                                      id_block_start=int(start) if start.isdigit() else 1)
        except BaseException:
            self.client.close()
            raise
        self.book = MirrorBook(self.mirror)
        self._server: dict[int, Optional[JobBundle]] = {}
        self._job_ids: Optional[list[int]] = None
        self._stale: dict[int, frozenset[str]] = {}
        """Per job read this run: the parts writes since may have changed."""
        self._config: Optional[list[Record]] = None
        self._pulled = False
        self._rebuilding = self.book.rebuilding()
        self._adopted = False
        self._warned: dict[str, str] = {}
        self._new_warnings: list[str] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<EsriRepository {self.location!r}>"

    def __enter__(self) -> EsriRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        self.mirror.close()

    def __getattr__(self, name: str) -> Any:
        """The Esri-level job operations (``wmx jobs …``) over the mirror; see
        :data:`_MIRROR_READS` and :data:`_MIRROR_WRITES`."""
        if name in _MIRROR_READS:
            self._pull()
            return getattr(self.mirror, name)
        if name not in _MIRROR_WRITES:
            raise AttributeError(name)
        operation = getattr(self.mirror, name)

        def write(*args: Any, **kwargs: Any) -> Any:
            self._pull()
            with self.mirror.transaction() as tx:
                result = operation(*args, **kwargs)
                self.book.mark_pending_since(tx, tx.seq_start)
            self._flush()
            return result

        return write

    def _repository_name(self) -> str:
        """The node name ``replication/info`` gives this server, else the service name."""
        if self.client.user:
            try:
                nodes = self.client.get("replication/info", user=self.client.user).get(
                    "nodes") or []
            except RepositoryError:
                nodes = []
            own = canonical_url(self.location)
            for node in nodes:
                if isinstance(node, dict) and node.get("name") and canonical_url(
                        str(node.get("serverURL") or "")) == own:
                    return str(node["name"])
        return _service_name(self.location)

    # --- pull ---------------------------------------------------------------------------------

    def _read_server(self) -> None:
        """Read every job of the server, once per repository object."""
        if self._job_ids is not None:
            return
        stored = {row[0]: row for row in live_rows(self.mirror)}
        mapped = {(job_id, key): guid for (kind, job_id, key), guid in self.book.id_map().items()
                  if kind == "attachment"}

        def wants_content(job_id: int, attachment: Attachment) -> bool:
            guid = mapped.get((job_id, str(attachment.id)))
            return guid is None or guid not in stored or not stored[guid][4]

        self._configuration()
        job_ids = read_job_ids(self.client)
        bundles = self.client.map(lambda j: read_job(self.client, j, wants_content), job_ids)
        self._server = dict(zip(job_ids, bundles))
        self._job_ids = job_ids

    def _pull(self) -> None:
        """Read the server once per repository object and bring the mirror up to date."""
        if self._pulled:
            return
        self._read_server()
        assert self._job_ids is not None
        if self.book.pending() and not self.dry_run:
            self._flush()  # finish an interrupted push before comparing
            stale = [job_id for job_id in self._job_ids
                     if job_id not in self._server or job_id in self._stale]
            self.client.map(self._bundle, stale)  # written to: read again
        stored = {row[0]: row for row in live_rows(self.mirror)}
        pending = self.book.pending()
        # A dry run leaves an unfinished push unfinished: the jobs it concerns are not
        # compared (the server's half-made writes would be taken for its own elements).
        waiting = {job_id for job_id, _ in pending.values() if job_id is not None} \
            if self.dry_run else set()
        seen, bindings = self._identify(self._configuration(), stored, self.book.id_map(),
                                        leave_out=waiting)
        self.book.bind(bindings)
        reconcile(self.mirror, seen, esri_node=self.node_id,
                  skip=set(pending) | _rows_of_jobs(stored, waiting))
        if self._rebuilding and self._adopted:
            self.book.rebuilt()
            self._rebuilding = False
        self._pulled = True

    # --- rebuild ------------------------------------------------------------------------------

    def adopt(self, versions: Iterable[Change], *, since: Optional[datetime],
              parent_node_id: Optional[str] = None,
              id_block_start: Optional[int] = None) -> int:
        """A new mirror of a server the cluster knows takes the cluster's identities (see
        :class:`wmx.repository.base.RebuiltNode`): a job by its id, a job's record by what it
        says (the identity a push compares with), configuration by id or name. What matches
        becomes the mirror's version, as if the mirror had never been lost; the versions
        another node stamped since the last exchange are pending pushes (the cluster's change
        wins over the server's state); what the server holds beyond them gets derived GUIDs
        when the mirror is brought up to date."""
        if not self._rebuilding:
            raise InvalidRequest(f"the mirror of {self.location} is not being rebuilt")
        if not self._adopted:
            # Read since it was rebuilt (``wmx jobs list``…), the mirror may hold identities of
            # its own that no other node has seen (no one reads a rebuilding mirror's log).
            self.book.forget_unsent()
            self._pulled = False
        self._read_server()
        boundary = stamp_from_datetime(since) if since is not None else 0
        matched = _Adoption(self._server, self._configuration(), self.book.id_map(),
                            lambda type_id: self._config_id("job_type", type_id), since
                            ).match(versions)
        self.book.bind(matched.bindings)
        if parent_node_id is not None:
            self.mirror.set_node_local("parent_node_id", parent_node_id)
        if id_block_start is not None:
            self.mirror.set_node_local("id_block_start", str(id_block_start))
        if matched.versions:
            self.mirror.apply(matched.versions, parent_node=parent_node_id or self.node_id)
        self.book.add_pending(
            (change.guid, matched.job_ids[change.guid]) for change in matched.versions
            if change.origin != self.node_id and change.hlc >= boundary)
        self._adopted = True
        return self.mirror.info().seq

    def _configuration(self) -> list[Record]:
        """The server's configuration, read once a run (again after a configuration write)."""
        with self._lock:
            if self._config is None:
                self._config = read_configuration(self.client, self._root)
            return self._config

    def _bundle(self, job_id: int) -> Optional[JobBundle]:
        """The server's current state of a job: read this run, with what writes since changed
        read again, or read now."""
        stale = self._stale.pop(job_id, frozenset())
        bundle = self._server.get(job_id)
        if job_id not in self._server or (stale and bundle is None):
            self._server[job_id] = read_job(self.client, job_id, lambda *_: True)
        elif stale and bundle is not None:
            self._server[job_id] = refresh(self.client, bundle, stale, self._lacks_content)
        return self._server[job_id]

    def _lacks_content(self, job_id: int, attachment: Attachment) -> bool:
        """Whether the mirror lacks the bytes of this server attachment (one just pushed has
        them: they are not downloaded back)."""
        guid = self.book.guid_of("attachment", job_id, str(attachment.id))
        return guid is None or self.mirror.read_content(guid) is None

    def _identify(self, config: list[Record], stored: dict[str, tuple],
                  ids: dict[tuple[str, int, str], str], *, leave_out: set[int]
                  ) -> tuple[list[Seen], list[tuple[str, int, str, str]]]:
        """The server's elements with their cluster GUIDs and ids, and the new id bindings;
        the jobs ``leave_out`` names are not looked at."""
        by_id: dict[tuple[str, int], str] = {}
        by_name: dict[tuple[str, str], str] = {}
        taken: dict[str, set[int]] = defaultdict(set)
        for guid, kind, _job_guid, body, _content, _origin, deleted in stored.values():
            data = codec.loads(body) if body else {}
            record_type = RECORD_TYPES[kind]
            int_id = data.get(record_type.ID_FIELD) if record_type.ID_FIELD else None
            if isinstance(int_id, int):
                taken[kind].add(int_id)
                if not deleted or (kind, int_id) not in by_id:
                    by_id[(kind, int_id)] = guid
            if kind in NAMED_KINDS and not deleted:
                by_name[(kind, str(record_type.from_esri(data).unique_name))] = guid
        seen: list[Seen] = []
        bindings: list[tuple[str, int, str, str]] = []
        claimed: set[str] = set()
        for record in config:
            guid = (by_id.get((record.KIND, record.int_id)) if record.int_id is not None
                    else None) or by_name.get((record.KIND, str(record.unique_name))) or \
                builtin_guid(record)
            seen.append(Seen(guid, attrs.evolve(record, guid=guid)))
        pending = self.book.pending()
        for job_id, bundle in sorted(self._server.items()):
            if bundle is None or job_id in leave_out:
                continue
            bound = ids.get(("job", job_id, JOB_KEY))
            if bound is not None and by_id.get(("job", job_id), bound) != bound:
                # The element this server job stood for has another id now (renumbered in
                # the cluster after an id collision): the server cannot renumber, so this
                # job is left out rather than read as a second copy.
                row = stored.get(bound)
                now = codec.loads(row[3]).get("id") if row and row[3] else "?"
                self._tell(f"job {job_id} on the Esri server {self.location} stands for a job "
                           f"the cluster renumbered (now job {now}); Esri cannot "
                           "renumber a job, so this one is no longer synchronized: delete it "
                           "there by hand once checked")
                continue
            job_guid = bound or by_id.get(("job", job_id))
            if job_guid in pending and bound is None:
                continue  # another job holds the id there: a collision, reported by the push
            job_guid = job_guid or job_guid_for(job_id)
            if ids.get(("job", job_id, JOB_KEY)) != job_guid:
                bindings.append(("job", job_id, JOB_KEY, job_guid))
            seen.append(Seen(job_guid, bundle.job))
            seen.extend(self._identify_job(bundle, job_guid, stored, ids, taken, bindings,
                                           claimed))
        return seen, bindings

    def _identify_job(self, bundle: JobBundle, job_guid: str, stored: dict[str, tuple],
                      ids: dict[tuple[str, int, str], str], taken: dict[str, set[int]],
                      bindings: list[tuple[str, int, str, str]], claimed: set[str]
                      ) -> list[Seen]:
        job_id = bundle.job.id
        scope = f"{self.node_id}:{job_id}"
        seen: list[Seen] = []
        guid = notes_guid(job_guid)
        if bundle.notes or guid in stored:
            seen.append(Seen(guid, Notes(job_id=job_id, notes=bundle.notes), job_guid))
        for key, record in keyed_records(bundle):
            kind = record.KIND
            bound = ids.get((kind, job_id, key))
            if bound is not None and bound not in claimed:
                guid = bound
            else:
                # Never two server elements for one GUID (a binding left over from a job
                # that changed its id): the second one is an element of its own.
                guid = element_guid_for(kind, scope, key)
                bindings.append((kind, job_id, key, guid))
            claimed.add(guid)
            content = bundle.contents.get(record.id) if isinstance(record, Attachment) \
                else None
            if isinstance(record, Attachment) and record.storage_type == STORAGE_EMBEDDED:
                row = stored.get(guid)
                size = len(content) if content is not None else \
                    codec.loads(row[3]).get("size", 0) if row and row[3] else 0
                record = attrs.evolve(record, size=size)
            if kind in _SUB_KINDS_WITH_IDS:
                record = attrs.evolve(record, id=self._cluster_id(
                    kind, guid, int(key), stored, taken))
            seen.append(Seen(guid, attrs.evolve(record, guid=guid), job_guid, content))
        return seen

    def _cluster_id(self, kind: str, guid: str, esri_id: int, stored: dict[str, tuple],
                    taken: dict[str, set[int]]) -> int:
        """The id an Esri-numbered element has in the cluster: the mirror's if it knows the
        element, else the server's own id, else the next one free in this node's block."""
        row = stored.get(guid)
        if row is not None and row[3]:
            known = codec.loads(row[3]).get("id")
            if isinstance(known, int):
                return known
        chosen = esri_id
        if chosen in taken[kind]:
            start = self.mirror.info().id_block_start
            chosen = max([i for i in taken[kind] if start <= i < start + ID_BLOCK_SIZE],
                         default=start - 1) + 1
        taken[kind].add(chosen)
        return chosen

    # --- push ---------------------------------------------------------------------------------

    def _warn(self, guid: str, what: str, reason: str) -> None:
        with self._lock:
            if guid in self._warned:
                return
            self._warned[guid] = reason
        self.book.hold_back(guid, reason)
        self._tell(f"{what} was not written to the Esri server {self.location}: {reason}. "
                   "It is reported again by every run until it is changed by hand there or "
                   "the change is superseded.")

    def _tell(self, text: str) -> None:
        """A WARNING for the run's messages (:meth:`take_warnings`) and the log."""
        with self._lock:
            self._new_warnings.append(text)
        log.warning("%s", text)

    def _flush(self) -> None:
        """Write every pending version to the server: configuration, then each job with its
        sub-records (jobs in parallel), dependencies last (they name other jobs)."""
        pending = self.book.pending()
        if not pending:
            return
        rows = {row[0]: row for row in self.book.pending_rows()}
        for guid in [g for g in pending if g not in rows]:
            self.book.done(guid)
        by_job: dict[int, list[tuple]] = defaultdict(list)
        for guid, row in rows.items():
            if row[1] in CONFIG_KINDS:
                self._push_config(row)
            else:
                job_id = pending[guid][0]
                if job_id is not None:
                    by_job[job_id].append(row)
        self.client.map(lambda item: self._push_job(*item, dependencies=False),
                        sorted(by_job.items()))
        self.client.map(lambda item: self._push_job(*item, dependencies=True),
                        sorted(by_job.items()))

    def _push_config(self, row: tuple) -> None:
        guid, kind, _job_guid, body, _content, _origin, deleted = row
        record = RECORD_TYPES[kind].from_esri(codec.loads(body), guid)
        what = f"{kind.replace('_', ' ')} {record.unique_name or record.int_id!r}"
        server = {(r.KIND, r.int_id if r.int_id is not None else r.unique_name): r
                  for r in self._configuration()}
        current = server.get((kind, record.int_id if record.int_id is not None
                              else record.unique_name))
        if isinstance(record, ConfigProperty) and not deleted:
            if not isinstance(current, ConfigProperty) or current.value != record.value:
                try:
                    answer = self.client.post("updateConfigProperties",
                                              properties=codec.dumps({record.key: record.value}))
                except InvalidRequest as exc:
                    self._warn(guid, what, f"the server refused it ({exc})")
                    return
                if answer.get("returnCode") != 1:
                    self._warn(guid, what, "the server did not update it")
                    return
                self._root, self._config = self.client.root(), None
            self.book.done(guid)
            return
        if not deleted and current is not None and projection(
                kind, _comparable(current), full=False) == projection(
                kind, _comparable(record), full=False):
            self.book.done(guid)
            return
        if deleted and current is None:
            self.book.done(guid)
            return
        self._warn(guid, what, _CANNOT_WRITE.format(what=_PLURAL.get(kind, kind)))

    def _push_job(self, job_id: int, rows: list[tuple], *, dependencies: bool) -> None:
        """First pass: the job (without its parent job) and its own records; second pass,
        once every job exists: its parent job and its dependencies, which name other jobs.
        The job is done only after the second pass, so a cut-off push redoes both."""
        job_rows = [row for row in rows if row[1] == "job"]
        if job_rows and job_rows[0][0] in self._warned:
            return
        try:
            if job_rows and dependencies and not job_rows[0][6]:
                self._push_parent_job(job_id, job_rows[0])
                self.book.done(job_rows[0][0])
            elif job_rows and not dependencies and self._push_job_fields(job_id, job_rows[0]):
                for row in rows:
                    self.book.done(row[0])
                return
            rows = [row for row in rows if row[1] != "job" and
                    (row[1] == "dependency") == dependencies]
            if rows and self._bundle(job_id) is None:
                for row in rows:  # the job is gone from the server: nothing to attach to
                    self.book.done(row[0])
                return
        except _Refused as refusal:
            for row in (*job_rows, *rows):
                what = f"job {job_id}" if row[1] == "job" else \
                    f"{row[1].replace('_', ' ')} of job {job_id}"
                self._warn(row[0], what, str(refusal))
            return
        for row in sorted(rows, key=lambda r: _KIND_ORDER.index(r[1])):
            what = f"{row[1].replace('_', ' ')} of job {job_id}"
            try:
                getattr(self, f"_push_{row[1]}")(job_id, row)
            except _Refused as refusal:
                self._warn(row[0], what, str(refusal))
                continue
            except InvalidRequest as exc:
                self._warn(row[0], what, f"the server refused it ({exc})")
                continue
            self.book.done(row[0])

    def _push_parent_job(self, job_id: int, row: tuple) -> None:
        want = codec.loads(row[3]).get("parentJobId") or 0
        current = self._bundle(job_id)
        if current is not None and (current.job.parent_job_id or 0) != want:
            self._write(job_id, f"jobs/{job_id}/update",
                        properties=codec.dumps({"parentJobId": want}))

    def _write(self, job_id: int, path: str, files: Optional[dict[str, Any]] = None,
               **form: Any) -> dict[str, Any]:
        """A write about one job; what it may change of what was read is stale afterwards."""
        touched = _touched(path)
        if touched is None:
            self._server.pop(job_id, None)
            self._stale.pop(job_id, None)
        else:
            self._stale[job_id] = self._stale.get(job_id, frozenset()) | touched
        try:
            return self.client.post(path, files=files, **form)
        except InvalidRequest as exc:
            raise _Refused(f"the server refused it ({exc})") from None

    def _config_id(self, kind: str, cluster_id: Optional[int]) -> Optional[int]:
        """The server's id for a configuration element the cluster names by id: the same id
        if the server has it, else the server's element of the same name."""
        if cluster_id is None:
            return None
        server = {r.int_id: r for r in self._configuration() if kind == r.KIND}
        if cluster_id in server:
            return cluster_id
        found = self.mirror.read_record(kind, int_id=cluster_id)
        if found is None:
            return None
        name = found[1].get("name")
        return next((i for i, r in server.items() if r.unique_name == name), None)

    def _push_job_fields(self, job_id: int, row: tuple) -> bool:
        """Bring the server's job to the mirror's version; True if the job was deleted."""
        guid, _kind, _job_guid, body, _content, _origin, deleted = row
        current = self._bundle(job_id)
        if deleted:
            if current is not None and self._holds_job(job_id, guid, current, None):
                self._write(job_id, f"jobs/{job_id}/delete")
            self.book.unbind(guid)
            return True
        want = Job.from_esri(codec.loads(body), guid)
        type_id = self._config_id("job_type", want.job_type_id)
        if type_id is None:
            raise _Refused(f"its job type {want.job_type_id} is not on the server (match it by "
                           "id or name there)")
        users = {r.unique_name.lower() for r in self._configuration() if r.KIND == "user"
                 and r.unique_name}
        for field in ("owned_by", "assigned_to" if want.assigned_type == 1 else ""):
            name = getattr(want, field, None) if field else None
            if name and name.replace("\\", "|").lower() not in users and \
                    name.lower() not in users:
                raise _Refused(f"its user {name!r} ({field.replace('_', ' ')}) is not a Workflow"
                               " Manager user of the server")
        wanted = _job_params(want)
        wanted["status"] = self._config_id("status", want.status)
        if current is not None and not self._holds_job(job_id, guid, current, want):
            raise _Refused(f"job {job_id} on the server is another job ({current.job.name!r}):"
                           " an id collision, reported and never overwritten")
        if current is None:
            form = {key: value for key, value in wanted.items() if key in JOB_CREATE_PARAMS
                    and key != "parentJobId" and value not in (None, "", 0)}
            form = {key: codec.dumps(v) if isinstance(v, dict) else v for key, v in form.items()}
            answer = self._write(job_id, "jobs/create", jobTypeId=type_id, id=job_id, **form)
            created = answer.get("jobIds") or []
            if created != [job_id]:
                raise _Refused(f"the server created job(s) {created} instead")
            self.book.bind([("job", job_id, JOB_KEY, guid)])
            current = self._bundle(job_id)
            if current is None:
                raise RepositoryError(f"{self.location} did not keep job {job_id}")
        have = _job_params(current.job)
        changed = {key: value for key, value in wanted.items()
                   if key != "parentJobId" and normal(value) != normal(have.get(key))}
        if changed:
            self._write(job_id, f"jobs/{job_id}/update", properties=codec.dumps(changed))
        if (want.stage == STAGE_CLOSED) != (current.job.stage == STAGE_CLOSED):
            if want.stage == STAGE_CLOSED:
                self._write(job_id, f"jobs/{job_id}/close")
            else:
                self._write(job_id, "jobs/reopen", jobs=job_id)
        return False

    def _holds_job(self, job_id: int, guid: str, current: JobBundle,
                   want: Optional[Job]) -> bool:
        """Whether the server's job ``job_id`` is this element: mapped to it, or (a create
        whose reply was lost) unmapped and made as it was (name and job type)."""
        bound = self.book.id_map().get(("job", job_id, JOB_KEY))
        if bound is not None:
            return bound == guid
        if want is None or (current.job.name, current.job.job_type_id) != (
                want.name, self._config_id("job_type", want.job_type_id)):
            return False
        self.book.bind([("job", job_id, JOB_KEY, guid)])
        return True

    def _bound(self, kind: str, job_id: int) -> dict[str, str]:
        """Esri key -> GUID of this job's elements of ``kind`` that are already mapped."""
        return {key: guid for (k, j, key), guid in self.book.id_map().items()
                if k == kind and j == job_id}

    def _matching(self, kind: str, job_id: int, guid: str, candidates: Iterable[tuple[str, Any]],
                  same: Any) -> Optional[tuple[str, Any]]:
        """The server element this GUID is mapped to, else one not mapped to any element that
        says the same (a write of an interrupted push that did reach the server)."""
        bound = self._bound(kind, job_id)
        candidates = list(candidates)
        mine = [(key, item) for key, item in candidates if bound.get(key) == guid]
        if mine:
            return mine[0]
        for key, item in candidates:
            if key not in bound and same(item):
                self.book.bind([(kind, job_id, key, guid)])
                return key, item
        return None

    def _push_notes(self, job_id: int, row: tuple) -> None:
        bundle = self._bundle(job_id)
        text = "" if row[6] else str(codec.loads(row[3]).get("notes") or "")
        if bundle is not None and bundle.notes != text:
            self._write(job_id, f"jobs/{job_id}/notes/update", notes=text)

    def _push_hold(self, job_id: int, row: tuple) -> None:
        guid, deleted = row[0], row[6]
        bundle = self._bundle(job_id)
        holds = bundle.holds if bundle else []
        want = Hold.from_esri(codec.loads(row[3]))
        found = self._matching("hold", job_id, guid, ((str(h.id), h) for h in holds),
                               _same_as(want))
        if deleted:
            if found is not None:
                raise _Refused("Esri documents no REST operation that removes a hold")
            return
        if found is None:
            hold_type = self._config_id("hold_type", want.type)
            if hold_type is None:
                raise _Refused(f"its hold type {want.type} is not on the server")
            answer = self._write(job_id, f"jobs/{job_id}/holds/create", type=hold_type,
                                 comments=want.hold_comments or "")
            key = str(int(answer["holdId"]))
            self.book.bind([("hold", job_id, key, guid)])
            current = attrs.evolve(want, release_date=None)
        else:
            key, current = found
            if current.type != want.type or normal(current.hold_comments) != normal(
                    want.hold_comments):
                raise _Refused("Esri documents no REST operation that edits a hold")
        if want.release_date is not None and current.release_date is None:
            self._write(job_id, f"jobs/{job_id}/holds/{key}/release",
                        comments=want.release_comments or "")
        elif want.release_date is None and current.release_date is not None:
            raise _Refused("a released hold cannot be put on hold again through Esri's REST "
                           "surface")
        elif want.release_date is not None and normal(current.release_comments) != normal(
                want.release_comments):
            raise _Refused("Esri documents no REST operation that edits a released hold")

    def _push_activity(self, job_id: int, row: tuple) -> None:
        guid, deleted = row[0], row[6]
        want = Activity.from_esri(codec.loads(row[3]))

        def listed() -> list[tuple[str, Activity]]:
            bundle = self._bundle(job_id)
            records = bundle.activity if bundle else []
            return list(zip(activity_keys(records), records))

        same = _same_as(want)
        found = self._matching("activity", job_id, guid, listed(), same)
        if deleted:
            if found is not None:
                raise _Refused("Esri documents no REST operation that removes an activity "
                               "record")
            return
        if found is not None:
            if not same(found[1]):
                raise _Refused("Esri documents no REST operation that edits an activity record")
            return
        activity_type = self._config_id("activity_type", want.type)
        if activity_type is None:
            raise _Refused(f"its activity type {want.type} is not on the server")
        if self._logged_by_esri(activity_type) and self._matching(
                "activity", job_id, guid, listed(), lambda r: r.type == activity_type):
            return  # the server logged it itself for the operation pushed (in its words)
        self._write(job_id, f"jobs/{job_id}/activity/logAction", type=activity_type,
                    comments=want.message or "")
        if self._matching("activity", job_id, guid, reversed(listed()), same) is None:
            raise RepositoryError(f"{self.location} did not record the activity of job "
                                  f"{job_id}")

    def _logged_by_esri(self, activity_type: int) -> bool:
        """Whether the server logs records of this type itself, for operations made through
        its surface (creating, assigning, closing and reopening a job, adding and releasing
        a hold): the cluster's record of such an operation is the one the server logged."""
        return any(r.KIND == "activity_type" and r.int_id == activity_type and
                   str(r.unique_name).lower() in _LOGGED_BY_ESRI for r in self._configuration())

    def _push_attachment(self, job_id: int, row: tuple) -> None:
        guid, content, deleted = row[0], row[4], row[6]
        bundle = self._bundle(job_id)
        want = Attachment.from_esri(codec.loads(row[3]))

        same = _same_as(want)
        found = self._matching("attachment", job_id, guid,
                               ((str(a.id), a) for a in (bundle.attachments if bundle else [])),
                               same)
        if found is not None and (deleted or not same(found[1])):
            self._write(job_id, f"jobs/{job_id}/attachments/{found[0]}/delete")
            self.book.unbind(guid)
            found = None
        if deleted or found is not None:
            return
        path = f"jobs/{job_id}/attachments/add"
        if want.storage_type == STORAGE_EMBEDDED:
            answer = self._write(job_id, path, files={"file": (want.filename or "attachment",
                                                               content or b"")},
                                 storageType=STORAGE_EMBEDDED)
        else:
            target = (ntpath.join(want.folder, want.filename)
                      if want.storage_type == STORAGE_LINKED_FILE and want.folder
                      else want.folder or want.filename)
            answer = self._write(job_id, path, storageType=want.storage_type, filePath=target)
        self.book.bind([("attachment", job_id, str(int(answer["attachmentId"])), guid)])

    def _push_dependency(self, job_id: int, row: tuple) -> None:
        guid, deleted = row[0], row[6]
        bundle = self._bundle(job_id)
        want = Dependency.from_esri(codec.loads(row[3]))
        same = _same_as(want)
        found = self._matching("dependency", job_id, guid,
                               ((str(d.id), d) for d in (bundle.dependencies if bundle else [])),
                               same)
        if found is not None and (deleted or not same(found[1])):
            self._write(job_id, f"jobs/{job_id}/dependencies/{found[0]}/delete")
            self.book.unbind(guid)
            found = None
        if deleted or found is not None:
            return
        answer = self._write(job_id, f"jobs/{job_id}/dependencies/create",
                             depJobId=want.dep_job_id, heldOnType=want.held_on_type,
                             heldOnValue=want.held_on_value, depOnType=want.dep_on_type,
                             depOnValue=want.dep_on_value)
        self.book.bind([("dependency", job_id, str(int(answer["dependencyId"])), guid)])

    def _push_extended_property(self, job_id: int, row: tuple) -> None:
        guid, deleted = row[0], row[6]
        bundle = self._bundle(job_id)
        want = ExtendedPropertyRecord.from_esri(codec.loads(row[3]))
        same = _same_as(want)
        if bundle is not None and want.table_name.upper() not in bundle.tables:
            raise _Refused(f"the server has no extended property table {want.table_name!r}")
        records = [(str(r.id), r) for r in (bundle.extended if bundle else [])]
        found = self._matching("extended_property", job_id, guid, records, same)
        base = f"jobs/{job_id}/extendedProperties/{want.table_name}"
        if deleted:
            if found is not None:
                self._write(job_id, f"{base}/{found[0]}/delete")
                self.book.unbind(guid)
            return
        if found is None:
            answer = self._write(job_id, f"{base}/add")
            key = str(int(answer["recordId"]))
            self.book.bind([("extended_property", job_id, key, guid)])
        elif same(found[1]):
            return
        else:
            key = found[0]
        self._write(job_id, f"{base}/{key}/update", properties=codec.dumps(want.values))

    # --- Repository protocol --------------------------------------------------------------------

    def info(self) -> NodeInfo:
        """The mirror's identity; a new mirror says it was rebuilt, before it compares the
        server with anything, until the cluster's identities are adopted."""
        if self._rebuilding and not self._adopted:
            self._read_server()
            return attrs.evolve(self.mirror.info(), rebuilt=True)
        self._pull()
        return self.mirror.info()

    def changes(self, since_seq: int, *, limit: int, origin: Optional[str] = None,
                exclude_origin: Optional[str] = None,
                since_time: Optional[datetime] = None) -> ChangePage:
        self._pull()
        return self.mirror.changes(since_seq, limit=limit, origin=origin,
                                   exclude_origin=exclude_origin, since_time=since_time)

    def apply(self, changes: Sequence[Change], *, parent_node: str,
              source_node: Optional[str] = None, detect_since: Optional[int] = None,
              policy: ConflictPolicy = ConflictPolicy.NEWEST, dry_run: bool = False,
              overlay: Sequence[Change] = (),
              refuse_if_changed_since: Optional[int] = None) -> ApplyReport:
        """The mirror decides what wins; what it took is then written to the server."""
        self._pull()
        def decide(dry: bool) -> ApplyReport:
            return self.mirror.apply(
                changes, parent_node=parent_node, source_node=source_node,
                detect_since=detect_since, policy=policy, dry_run=dry, overlay=overlay,
                refuse_if_changed_since=refuse_if_changed_since)

        if dry_run:
            return decide(True)
        with self.mirror.transaction() as tx:
            report = decide(False)
            if not report.refused:
                self.book.mark_pending_since(tx, report.seq_before)
        if not report.refused:
            self._flush()
        report.warnings.extend(self.take_warnings())
        return report

    def take_warnings(self) -> list[str]:
        """What the server could not take since the last call: each element once a run."""
        with self._lock:
            taken, self._new_warnings = self._new_warnings, []
        return taken

    def snapshot(self, cursor: int, limit: int) -> SnapshotPage:
        self._pull()
        return self.mirror.snapshot(cursor, limit)

    def begin_load(self) -> str:
        self._pull()
        return self.mirror.begin_load()

    def load_rows(self, load_id: str, rows: Iterable[tuple]) -> None:
        self.mirror.load_rows(load_id, rows)

    def commit_load(self, load_id: str, *, parent_node_id: str, id_block_start: int,
                    new_node_id: Optional[str] = None) -> NodeInfo:
        """Swap the staged copy into the mirror (the node keeps the server's identity), then
        replace the server's jobs with it: jobs it does not have are deleted, the others
        created or brought to the copy's version, ids kept."""
        self.mirror.commit_load(load_id, parent_node_id=parent_node_id,
                                id_block_start=id_block_start)
        with self.mirror.transaction() as tx:
            self.book.restart(tx)
        if self._rebuilding:  # a replica now: its identities are the cluster's
            self.book.rebuilt()
            self._rebuilding = False
        self._give_id_block(id_block_start)
        keep = set(self.mirror.job_ids())
        self.book.bind(("job", job_id, JOB_KEY, self.mirror.get_job(job_id).guid)
                       for job_id in keep)  # a replicate replaces what holds these ids
        for job_id in sorted(set(read_job_ids(self.client)) - keep):
            self._write(job_id, f"jobs/{job_id}/delete")
        self._flush()
        return self.mirror.info()

    def _give_id_block(self, start: int) -> None:
        """The server creates its own jobs from the id block the cluster gave this node
        (``JOB_ID_START_VALUE``, which Esri's ``updateConfigProperties`` documents), so they
        never take an id another node hands out."""
        properties = self._root.get("configProperties") or {}
        if str(properties.get("JOB_ID_START_VALUE", "")) == str(start):
            return
        try:
            answer = self.client.post("updateConfigProperties",
                                      properties=codec.dumps({"JOB_ID_START_VALUE": str(start)}))
        except InvalidRequest as exc:
            answer = {"error": str(exc)}
        if answer.get("returnCode") != 1:
            self._warn(f"id-block:{start}", "JOB_ID_START_VALUE",
                       f"the server did not take {start} ({answer.get('error', 'refused')}); "
                       "jobs created there may take ids that other nodes hand out")
            return
        self._root, self._config = self.client.root(), None

    def abort_load(self, load_id: str) -> None:
        self.mirror.abort_load(load_id)

    def nodes(self) -> list[NodeRecord]:
        return self.mirror.nodes()

    def save_node(self, node: NodeRecord) -> None:
        self.mirror.save_node(node)

    def clear_replication_info(self) -> None:
        self.mirror.clear_replication_info()

    def renew_incarnation(self) -> str:
        return self.mirror.renew_incarnation()

    def conflicts(self) -> list[ConflictRecord]:
        return self.mirror.conflicts()


_TOUCHES: tuple[tuple[str, frozenset[str]], ...] = (
    ("/holds", frozenset({"holds", "activity"})), ("/notes", frozenset({"notes"})),
    ("/activity", frozenset({"activity"})), ("/attachments", frozenset({"attachments"})),
    ("/dependencies", frozenset({"dependencies"})),
    ("/extendedproperties", frozenset({"extended"})))
"""Sub-resource writes, by path, and what they may change (Workflow Manager logs activity
for holds it adds or releases)."""
_JOB_WRITES = ("/update", "/close", "jobs/reopen")
"""Writes of the job's own fields (and its activity: closing, reopening and assigning are
logged)."""


def _touched(path: str) -> Optional[frozenset[str]]:
    """What a write to ``path`` may change of a job read before it; None: anything (a job
    created or deleted)."""
    lowered = path.lower()
    for fragment, parts in _TOUCHES:
        if fragment + "/" in lowered:
            return parts
    if lowered.endswith(_JOB_WRITES):
        return frozenset({"job", "activity"})
    return None


def _rows_of_jobs(stored: dict[str, tuple], job_ids: set[int]) -> set[str]:
    """The GUIDs of the mirror's rows of these jobs: the jobs and everything of theirs."""
    if not job_ids:
        return set()
    jobs = {guid for guid, row in stored.items() if row[1] == "job" and row[3] and
            codec.loads(row[3]).get("id") in job_ids}
    return jobs | {guid for guid, row in stored.items() if row[2] in jobs}


def _comparable(record: Record) -> dict[str, Any]:
    return normal(record.to_esri())


def _job_params(job: Job) -> dict[str, Any]:
    """A job as ``jobs/{id}/update`` properties."""
    params: dict[str, Any] = {}
    for key, field in JOB_PARAMS.items():
        value = getattr(job, field)
        params[key] = to_millis(value) if isinstance(value, datetime) else value
    return params


