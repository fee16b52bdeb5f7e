"""Workflow Manager operations (jobs, holds, notes, history, attachments, configuration) as
Esri defines them, written once over a store's element primitives.

Three interfaces, each a Protocol whose docstrings are the contract: :class:`JobStore`, the
element primitives a store supplies; :class:`JobOperations`, the Esri-level operations; and
:class:`ServedRepository`, what the WMServer app needs (a Repository offering the operations).
:class:`JobTracking` implements the operations over any :class:`JobStore`; the embedded and
PostgreSQL stores mix it in, and the WMServer app calls it for every documented write, so a
write through REST is an ordinary change-tracked repository write. Nothing here knows SQL.
"""

from __future__ import annotations

import functools
import uuid
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Protocol, TypeVar, Union, cast

import attrs

from wmx.model.changes import Change
from wmx.model.guids import new_guid
from wmx.model.records import (
    CONFIG_RECORDS,
    JOB_RECORDS,
    NODE_LOCAL_PROPERTIES,
    PRIV_ADMINISTRATOR,
    PRIV_MANAGE_REPLICATION,
    STAGE_CLOSED,
    STAGE_CREATED,
    STAGE_READY,
    STORAGE_EMBEDDED,
    Activity,
    ActivityType,
    Attachment,
    ConfigProperty,
    Dependency,
    ExtendedPropertyRecord,
    Group,
    Hold,
    Job,
    JobStatus,
    JobType,
    Notes,
    Record,
    User,
)
from wmx.repository.base import InvalidRequest, NodeInfo, Repository, WritesTogether

R = TypeVar("R", bound=Record)
F = TypeVar("F", bound=Callable[..., Any])
Tx = TypeVar("Tx")
"""A store's write transaction: opaque here, handed back to the store's own primitives."""
ConfigKey = Union[int, str]
Entry = tuple[str, dict[str, Any]]
"""One stored element as the primitives return it: (GUID, Esri JSON body)."""

NOTES_NAMESPACE = uuid.UUID("8f0c3f0e-5a53-4c3e-9d1f-6f2f3c1d7a10")
JOB_EDITABLE = frozenset(attrs.fields_dict(Job)) - {"id", "guid", "created_by", "created_date"}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ElementReads(Protocol):
    """Reads of live elements (tombstones are never returned). Each sees every committed
    write, and inside a transaction of this store also that transaction's own writes."""

    def read_record(self, kind: str, *, int_id: Optional[int] = None,
                    guid: Optional[str] = None, name: Optional[str] = None,
                    ) -> Optional[Entry]:
        """The live element of ``kind`` with this GUID, else this integer id, else this unique
        name; None when there is none."""
        ...

    def read_records(self, kind: str, *, job_guid: Optional[str] = None) -> list[Entry]:
        """Every live element of ``kind`` (only the job's when ``job_guid`` is given), in
        integer-id order, elements without one in the order they were last written."""
        ...

    def read_content(self, guid: str) -> Optional[bytes]:
        """The bytes stored with a live element (an embedded attachment); None when the
        element has none or does not exist."""
        ...

    def job_ids(self) -> list[int]:
        """The integer ids of every live job, ascending."""
        ...

    def child_job_ids(self, job_id: int) -> list[int]:
        """The ids of the live jobs whose ``parentJobId`` is ``job_id``, ascending."""
        ...


class JobStore(ElementReads, Protocol[Tx]):
    """The element primitives :class:`JobTracking` is written over: what a second store
    implements to offer Workflow Manager's operations. Writes happen only inside
    :meth:`transaction` and reach the change log like any replicated version."""

    def transaction(self, *, rollback: bool = False) -> AbstractContextManager[Tx]:
        """A write transaction: everything written through it commits together, or nothing
        does (an exception rolls it back); ``rollback=True`` runs it and then discards it.
        Opened while this store already has one open, it joins it, so a read-modify-write
        made of smaller writes commits as one. Nothing another writer commits can replace an
        element this transaction read before it writes."""
        ...

    def next_int_id(self, tx: Tx, kind: str) -> int:
        """The next integer id of ``kind`` inside this node's id block, above every id of
        the block an element (tombstones included) holds."""
        ...

    def int_id_free(self, tx: Tx, kind: str, int_id: int) -> bool:
        """Whether an element of ``kind`` may be given ``int_id``: no live element holds it,
        and :meth:`next_int_id` has not handed it to another transaction."""
        ...

    def name_taken(self, tx: Tx, kind: str, name: str, guid: str) -> bool:
        """Whether a live element of ``kind`` other than ``guid`` holds this unique name."""
        ...

    def write_record(self, tx: Tx, record: Record, *, guid: Optional[str] = None,
                     job_guid: Optional[str] = None, content: Optional[bytes] = None,
                     deleted: bool = False) -> Change:
        """Write a new local version of the element (a tombstone when ``deleted``) under
        ``guid``, else the record's GUID, else a new one; stamped by this node's clock, at
        the head of the change log, so it replicates and outranks every version seen so far.
        Returns the version written."""
        ...

    def set_node_local(self, key: str, value: str) -> None:
        """Keep a value that belongs to this repository only (its identity, its incarnation):
        never replicated, never in the change log, in its own committed transaction."""
        ...

    def info(self) -> NodeInfo:
        """Who this repository is (node id, id block) and how far its change log has got."""
        ...


class JobOperations(Protocol):
    """Workflow Manager's job-tracking operations, as Esri's REST API defines them. ``user``
    is who acts: it is recorded (created by, held by, history) and never checked here. A
    missing element or a wrong parameter raises :class:`InvalidRequest` and writes nothing;
    each write is atomic."""

    def list_config(self, record_type: type[R]) -> list[R]:
        """Every live configuration element of this type."""
        ...

    def get_config(self, record_type: type[R], key: ConfigKey) -> R:
        """One configuration element, by integer id (types that have one) or unique name."""
        ...

    def create_config(self, record: R, *, guid: Optional[str] = None) -> R:
        """Add a configuration element (an omitted integer id comes from this node's id
        block); a taken name or id is refused. Returns it as stored."""
        ...

    def update_config(self, record_type: type[R], key: ConfigKey, **fields: Any) -> R:
        """Change fields of a configuration element (a rename to a taken name is refused)."""
        ...

    def delete_config(self, record_type: type[R], key: ConfigKey) -> None:
        """Delete a configuration element (the delete replicates)."""
        ...

    def config_properties(self) -> dict[str, str]:
        """Every configuration property, with this node's ``JOB_ID_START_VALUE``."""
        ...

    def set_config_property(self, key: str, value: str) -> None:
        """Set a configuration property (keys are case-insensitive); node-local ones are
        refused."""
        ...

    def user_privileges(self, user_name: str) -> set[str]:
        """The privileges a user holds through the groups naming them (names compared
        case-insensitively)."""
        ...

    def may_replicate(self, user_name: Optional[str]) -> bool:
        """Whether this user may replicate and synchronize (administrator or manage
        replication)."""
        ...

    def get_job(self, job_id: int) -> Job:
        """One live job."""
        ...

    def jobs(self) -> list[int]:
        """The ids of every live job, ascending."""
        ...

    def create_job(self, job_type_id: int, *, user: str, id: Optional[int] = None,
                   **fields: Any) -> Job:
        """Esri's ``jobs/create``: a new job of this type (defaults from the type, status
        Created, a history entry); its id is ``id`` when given and free, else the next of this
        node's block."""
        ...

    def update_job(self, job_id: int, *, user: str, **fields: Any) -> Job:
        """Change editable fields of a job (:data:`JOB_EDITABLE`; others are refused)."""
        ...

    def assign_job(self, job_id: int, *, user: str, assigned_type: int,
                   assigned_to: Optional[str]) -> Job:
        """Assign a job to a user or a group (None: to nobody), with a history entry."""
        ...

    def close_job(self, job_id: int, *, user: str) -> Job:
        """Close a job (stage and status Closed, end date now, 100 %), with a history entry."""
        ...

    def reopen_job(self, job_id: int, *, user: str) -> Job:
        """Reopen a closed job (Ready To Work, no end date), with a history entry."""
        ...

    def delete_job(self, job_id: int, *, user: str) -> None:
        """Delete a job and everything that belongs to it (the deletes replicate)."""
        ...

    def holds(self, job_id: int) -> list[Hold]:
        """The job's holds, released ones included."""
        ...

    def get_hold(self, job_id: int, hold_id: int) -> Hold:
        """One hold of the job."""
        ...

    def create_hold(self, job_id: int, hold_type_id: int, *, user: str,
                    comments: str = "") -> Hold:
        """Put a hold of this type on the job, held by ``user`` now."""
        ...

    def release_hold(self, job_id: int, hold_id: int, *, user: str, comments: str = "") -> Hold:
        """Release a hold (a hold already released is refused)."""
        ...

    def get_notes(self, job_id: int) -> str:
        """The job's notes ("" when none were written)."""
        ...

    def set_notes(self, job_id: int, notes: str, *, user: str) -> None:
        """Replace the job's notes; notes written on two nodes are one element."""
        ...

    def activity(self, job_id: int) -> list[Activity]:
        """The job's history, oldest first."""
        ...

    def log_action(self, job_id: int, activity_type_id: int, *, user: str,
                   comments: str = "") -> Activity:
        """Add a history entry of this activity type (its message when no comment)."""
        ...

    def attachments(self, job_id: int) -> list[Attachment]:
        """The job's attachments (their descriptions, not their bytes)."""
        ...

    def add_attachment(self, job_id: int, filename: str, content: bytes = b"", *, user: str,
                       storage_type: int = STORAGE_EMBEDDED,
                       folder: Optional[str] = None) -> Attachment:
        """Attach a file: its bytes when embedded, else only where it is (linked file, URL)."""
        ...

    def attachment_content(self, job_id: int, attachment_id: int) -> bytes:
        """The bytes of an embedded attachment (b"" for a linked one)."""
        ...

    def delete_attachment(self, job_id: int, attachment_id: int, *, user: str) -> None:
        """Remove an attachment from the job."""
        ...

    def dependencies(self, job_id: int) -> list[Dependency]:
        """The job's dependencies on other jobs."""
        ...

    def add_dependency(self, job_id: int, dep_job_id: int, *, user: str, held_on_type: int = 3,
                       held_on_value: int = 0, dep_on_type: int = 3,
                       dep_on_value: int = 0) -> Dependency:
        """Make the job depend on another live job."""
        ...

    def delete_dependency(self, job_id: int, dependency_id: int, *, user: str) -> None:
        """Remove a dependency of the job."""
        ...

    def extended_properties(self, job_id: int) -> list[ExtendedPropertyRecord]:
        """The job's extended-property records."""
        ...

    def add_extended_property(self, job_id: int, table_name: str, values: dict[str, Any], *,
                              user: str) -> ExtendedPropertyRecord:
        """Add an extended-property record of this table to the job."""
        ...

    def update_extended_property(self, job_id: int, record_id: int, values: dict[str, Any], *,
                                 user: str) -> ExtendedPropertyRecord:
        """Change some values of an extended-property record (the others are kept)."""
        ...

    def delete_extended_property(self, job_id: int, record_id: int, *, user: str) -> None:
        """Remove an extended-property record of the job."""
        ...

    def users(self) -> list[User]:
        """Every user of the repository."""
        ...

    def groups(self) -> list[Group]:
        """Every group, with its members and privileges."""
        ...


class ServedRepository(Repository, WritesTogether, JobOperations, ElementReads, Protocol):
    """What the WMServer app serves: a repository (the replication extension), Workflow
    Manager's operations (Esri's documented surface) and the element reads it answers from,
    in transactions (one request that changes several jobs changes all of them or none).
    The server is typed against this, never against a concrete store."""


def _atomic(method: F) -> F:
    """Run a read-modify-write in one write transaction: what it read cannot be replaced by a
    sync (or another request) before it writes, which would overwrite that newer version with
    one built on the old. Transactions opened inside join this one."""
    @functools.wraps(method)
    def in_one_transaction(self: JobStore[object], *args: Any, **kwargs: Any) -> Any:
        with self.transaction():
            return method(self, *args, **kwargs)
    return cast(F, in_one_transaction)


def notes_guid(job_guid: str) -> str:
    """Notes have a GUID derived from their job, so notes first written on two nodes are one
    element (later writer wins), not two."""
    return str(uuid.uuid5(NOTES_NAMESPACE, job_guid))


class JobTracking(JobStore[Tx], JobOperations):
    """:class:`JobOperations` written once over the primitives of :class:`JobStore`: a store
    that supplies them and mixes this in offers Workflow Manager's operations."""

    # --- configuration ------------------------------------------------------------------------

    def list_config(self, record_type: type[R]) -> list[R]:
        return [record_type.from_esri(body, guid) for guid, body in
                self.read_records(record_type.KIND)]

    def get_config(self, record_type: type[R], key: ConfigKey) -> R:
        found = self._find_config(record_type, key)
        if found is None:
            raise InvalidRequest(f"{record_type.__name__} {key!r} does not exist")
        return found

    def _find_config(self, record_type: type[R], key: ConfigKey) -> Optional[R]:
        if isinstance(key, int) and record_type.ID_FIELD:
            found = self.read_record(record_type.KIND, int_id=key)
        else:
            found = self.read_record(record_type.KIND, name=str(key))
        return record_type.from_esri(found[1], found[0]) if found else None

    def create_config(self, record: R, *, guid: Optional[str] = None) -> R:
        if type(record) not in CONFIG_RECORDS:
            raise InvalidRequest(f"{type(record).__name__} is not a configuration element")
        with self.transaction() as tx:
            if record.ID_FIELD and getattr(record, record.ID_FIELD) is None:
                new_id: dict[str, Any] = {record.ID_FIELD: self.next_int_id(tx, record.KIND)}
                record = attrs.evolve(record, **new_id)
            guid = guid or record.guid or new_guid()
            if record.unique_name is not None and self.name_taken(
                    tx, record.KIND, record.unique_name, guid):
                raise InvalidRequest(f"A {record.KIND} named {record.unique_name!r} exists")
            if record.int_id is not None and self.read_record(record.KIND, int_id=record.int_id):
                raise InvalidRequest(f"A {record.KIND} with id {record.int_id} exists")
            record = attrs.evolve(record, guid=guid)
            self.write_record(tx, record, guid=guid)
        return record

    @_atomic
    def update_config(self, record_type: type[R], key: ConfigKey, **fields: Any) -> R:
        current = self.get_config(record_type, key)
        updated = attrs.evolve(current, **fields)
        with self.transaction() as tx:
            if updated.unique_name not in (None, current.unique_name) and self.name_taken(
                    tx, record_type.KIND, updated.unique_name, current.guid):
                raise InvalidRequest(f"A {record_type.KIND} named {updated.unique_name!r} exists")
            self.write_record(tx, updated, guid=current.guid)
        return updated

    @_atomic
    def delete_config(self, record_type: type[R], key: ConfigKey) -> None:
        current = self.get_config(record_type, key)
        with self.transaction() as tx:
            self.write_record(tx, current, guid=current.guid, deleted=True)

    def config_properties(self) -> dict[str, str]:
        properties = {p.key: p.value for p in self.list_config(ConfigProperty)}
        properties["JOB_ID_START_VALUE"] = str(self.info().id_block_start)
        return properties

    @_atomic
    def set_config_property(self, key: str, value: str) -> None:
        key = key.upper()
        if key in NODE_LOCAL_PROPERTIES:
            raise InvalidRequest(f"{key} is set per repository (node-local) and cannot be changed")
        if self._find_config(ConfigProperty, key) is None:
            self.create_config(ConfigProperty(key=key, value=str(value)))
        else:
            self.update_config(ConfigProperty, key, value=str(value))

    def user_privileges(self, user_name: str) -> set[str]:
        wanted = user_name.replace("|", "\\").lower()
        held: set[str] = set()
        for group in self.list_config(Group):
            if any(str(member).lower() == wanted for member in group.users):
                held.update(group.privileges)
        return held

    def may_replicate(self, user_name: Optional[str]) -> bool:
        if not user_name:
            return False
        return bool({PRIV_ADMINISTRATOR, PRIV_MANAGE_REPLICATION} &
                    self.user_privileges(user_name))

    # --- jobs ------------------------------------------------------------------------------------

    def _job_entry(self, job_id: int) -> Entry:
        found = self.read_record("job", int_id=int(job_id))
        if found is None:
            raise InvalidRequest(f"Job {job_id} does not exist")
        return found

    def get_job(self, job_id: int) -> Job:
        guid, body = self._job_entry(job_id)
        return Job.from_esri(body, guid)

    def jobs(self) -> list[int]:
        return self.job_ids()

    def _status_id(self, name: str) -> Optional[int]:
        status = self._find_config(JobStatus, name)
        return status.id if status else None

    def create_job(self, job_type_id: int, *, user: str, id: Optional[int] = None,
                   **fields: Any) -> Job:
        """The configuration it reads (job type, status, history type) is read before the
        write transaction: no element read there is written, so a configuration change
        committed in between orders as if it came after, and the log lock is held only for
        what needs it (the id, the writes)."""
        job_type = self._find_config(JobType, int(job_type_id))
        if job_type is None:
            raise InvalidRequest(f"Job type {job_type_id} does not exist")
        unknown = set(fields) - JOB_EDITABLE
        if unknown:
            raise InvalidRequest(f"Unknown job field(s): {', '.join(sorted(unknown))}")
        fields.setdefault("description", job_type.default_description)
        fields.setdefault("priority", job_type.default_priority)
        if "status" not in fields:
            fields["status"] = self._status_id("Created")
        fields.setdefault("owned_by", user)
        history = self._find_config(ActivityType, "CreateJob")
        with self.transaction() as tx:
            if id is None:
                id = self.next_int_id(tx, "job")
            elif not self.int_id_free(tx, "job", int(id)):
                raise InvalidRequest(f"Job {id} already exists")
            fields.setdefault("name", f"{job_type.name} {id}")
            job = Job(id=int(id), job_type_id=int(job_type_id), created_by=user,
                      created_date=_utcnow(), stage=STAGE_CREATED, **fields)
            change = self.write_record(tx, job)
            job = attrs.evolve(job, guid=change.guid)
            self._write_history(tx, job, history, user, f"Created job {job.id}")
        return job

    @_atomic
    def update_job(self, job_id: int, *, user: str, **fields: Any) -> Job:
        unknown = set(fields) - JOB_EDITABLE
        if unknown:
            raise InvalidRequest(f"Unknown job field(s): {', '.join(sorted(unknown))}")
        job = attrs.evolve(self.get_job(job_id), **fields)
        with self.transaction() as tx:
            self.write_record(tx, job, guid=job.guid)
        return job

    @_atomic
    def assign_job(self, job_id: int, *, user: str, assigned_type: int,
                   assigned_to: Optional[str]) -> Job:
        job = attrs.evolve(self.get_job(job_id), assigned_type=int(assigned_type),
                           assigned_to=assigned_to)
        with self.transaction() as tx:
            self.write_record(tx, job, guid=job.guid)
            self._log(tx, job, "AssignJob", user, f"Assigned to {assigned_to or 'nobody'}")
        return job

    @_atomic
    def close_job(self, job_id: int, *, user: str) -> Job:
        job = attrs.evolve(self.get_job(job_id), stage=STAGE_CLOSED, end_date=_utcnow(),
                           status=self._status_id("Closed"), percentage_complete=100)
        with self.transaction() as tx:
            self.write_record(tx, job, guid=job.guid)
            self._log(tx, job, "CloseJob", user, f"Closed job {job.id}")
        return job

    @_atomic
    def reopen_job(self, job_id: int, *, user: str) -> Job:
        job = attrs.evolve(self.get_job(job_id), stage=STAGE_READY, end_date=None,
                           status=self._status_id("Ready To Work"))
        with self.transaction() as tx:
            self.write_record(tx, job, guid=job.guid)
            self._log(tx, job, "ReopenJob", user, f"Reopened job {job.id}")
        return job

    @_atomic
    def delete_job(self, job_id: int, *, user: str) -> None:
        job = self.get_job(job_id)
        with self.transaction() as tx:
            # the job first: its records' tombstones, stamped after it, are known to be this
            # deletion's (a deletion that loses to an edit elsewhere gives them back)
            self.write_record(tx, job, guid=job.guid, deleted=True)
            for record_type in JOB_RECORDS:
                for guid, body in self.read_records(record_type.KIND, job_guid=job.guid):
                    self.write_record(tx, record_type.from_esri(body, guid), guid=guid,
                                      job_guid=job.guid, deleted=True)

    # --- job sub-records -----------------------------------------------------------------------

    def _children(self, job_id: int, record_type: type[R]) -> list[R]:
        guid, _ = self._job_entry(job_id)
        return [record_type.from_esri(body, g) for g, body in
                self.read_records(record_type.KIND, job_guid=guid)]

    def _child(self, job_id: int, record_type: type[R], child_id: int) -> R:
        for record in self._children(job_id, record_type):
            if record.int_id == int(child_id):
                return record
        raise InvalidRequest(f"{record_type.__name__} {child_id} of job {job_id} does not exist")

    @_atomic
    def _add_child(self, job_id: int, record_type: type[R], content: Optional[bytes] = None,
                   **fields: Any) -> R:
        job_guid, _ = self._job_entry(job_id)
        with self.transaction() as tx:
            if record_type.ID_FIELD:
                fields[record_type.ID_FIELD] = self.next_int_id(tx, record_type.KIND)
            make: Callable[..., R] = record_type  # each record type has its own fields
            record = make(job_id=int(job_id), **fields)
            change = self.write_record(tx, record, job_guid=job_guid, content=content)
            record = attrs.evolve(record, guid=change.guid)
            if record_type is Hold:
                self._log(tx, self.get_job(job_id), "AddHold", fields.get("held_by"),
                          fields.get("hold_comments", ""))
        return record

    @_atomic
    def _save_child(self, job_id: int, record: Record, *, deleted: bool = False) -> None:
        job_guid, _ = self._job_entry(job_id)
        with self.transaction() as tx:
            content = self.read_content(record.guid) if isinstance(record, Attachment) else None
            self.write_record(tx, record, guid=record.guid, job_guid=job_guid, content=content,
                              deleted=deleted)

    def holds(self, job_id: int) -> list[Hold]:
        return self._children(job_id, Hold)

    def get_hold(self, job_id: int, hold_id: int) -> Hold:
        return self._child(job_id, Hold, hold_id)

    @_atomic
    def create_hold(self, job_id: int, hold_type_id: int, *, user: str,
                    comments: str = "") -> Hold:
        if self.read_record("hold_type", int_id=int(hold_type_id)) is None:
            raise InvalidRequest(f"Hold type {hold_type_id} does not exist")
        return self._add_child(job_id, Hold, type=int(hold_type_id), held_by=user,
                               hold_date=_utcnow(), hold_comments=comments)

    @_atomic
    def release_hold(self, job_id: int, hold_id: int, *, user: str, comments: str = "") -> Hold:
        hold = self.get_hold(job_id, hold_id)
        if hold.release_date is not None:
            raise InvalidRequest(f"Hold {hold_id} is already released")
        hold = attrs.evolve(hold, released_by=user, release_date=_utcnow(),
                            release_comments=comments)
        self._save_child(job_id, hold)
        return hold

    def get_notes(self, job_id: int) -> str:
        guid, _ = self._job_entry(job_id)
        found = self.read_record("notes", guid=notes_guid(guid))
        return found[1].get("notes", "") if found else ""

    @_atomic
    def set_notes(self, job_id: int, notes: str, *, user: str) -> None:
        job_guid, _ = self._job_entry(job_id)
        with self.transaction() as tx:
            self.write_record(tx, Notes(job_id=int(job_id), notes=notes),
                              guid=notes_guid(job_guid), job_guid=job_guid)

    def activity(self, job_id: int) -> list[Activity]:
        return sorted(self._children(job_id, Activity),
                      key=lambda a: (a.date or datetime.min.replace(tzinfo=timezone.utc)))

    @_atomic
    def log_action(self, job_id: int, activity_type_id: int, *, user: str,
                   comments: str = "") -> Activity:
        activity_type = self._find_config(ActivityType, int(activity_type_id))
        if activity_type is None:
            raise InvalidRequest(f"Activity type {activity_type_id} does not exist")
        message = comments or activity_type.message or activity_type.name
        return self._add_child(job_id, Activity, type=activity_type.id, user=user,
                               date=_utcnow(), message=message)

    def _log(self, tx: Tx, job: Job, activity_name: str, user: Optional[str],
             message: str) -> None:
        """Esri writes history for job events; skipped if the type is not configured."""
        self._write_history(tx, job, self._find_config(ActivityType, activity_name), user,
                            message)

    def _write_history(self, tx: Tx, job: Job, activity_type: Optional[ActivityType],
                       user: Optional[str], message: str) -> None:
        if activity_type is None or activity_type.id is None:  # stored types always have one
            return
        entry = Activity(job_id=job.id, type=activity_type.id, user=user, date=_utcnow(),
                         message=message or activity_type.message)
        self.write_record(tx, entry, job_guid=job.guid)

    def attachments(self, job_id: int) -> list[Attachment]:
        return self._children(job_id, Attachment)

    def add_attachment(self, job_id: int, filename: str, content: bytes = b"", *, user: str,
                       storage_type: int = STORAGE_EMBEDDED,
                       folder: Optional[str] = None) -> Attachment:
        embedded = storage_type == STORAGE_EMBEDDED
        return self._add_child(job_id, Attachment, content=content if embedded else None,
                               filename=filename, storage_type=storage_type, folder=folder,
                               type=storage_type, size=len(content) if embedded else 0)

    def attachment_content(self, job_id: int, attachment_id: int) -> bytes:
        attachment = self._child(job_id, Attachment, attachment_id)
        return self.read_content(attachment.guid) or b""

    @_atomic
    def delete_attachment(self, job_id: int, attachment_id: int, *, user: str) -> None:
        self._save_child(job_id, self._child(job_id, Attachment, attachment_id), deleted=True)

    def dependencies(self, job_id: int) -> list[Dependency]:
        return self._children(job_id, Dependency)

    @_atomic
    def add_dependency(self, job_id: int, dep_job_id: int, *, user: str, held_on_type: int = 3,
                       held_on_value: int = 0, dep_on_type: int = 3,
                       dep_on_value: int = 0) -> Dependency:
        self._job_entry(dep_job_id)
        return self._add_child(job_id, Dependency, dep_job_id=int(dep_job_id),
                               held_on_type=held_on_type, held_on_value=held_on_value,
                               dep_on_type=dep_on_type, dep_on_value=dep_on_value)

    @_atomic
    def delete_dependency(self, job_id: int, dependency_id: int, *, user: str) -> None:
        self._save_child(job_id, self._child(job_id, Dependency, dependency_id), deleted=True)

    def extended_properties(self, job_id: int) -> list[ExtendedPropertyRecord]:
        return self._children(job_id, ExtendedPropertyRecord)

    def add_extended_property(self, job_id: int, table_name: str, values: dict[str, Any], *,
                              user: str) -> ExtendedPropertyRecord:
        return self._add_child(job_id, ExtendedPropertyRecord, table_name=table_name,
                               values=dict(values))

    @_atomic
    def update_extended_property(self, job_id: int, record_id: int, values: dict[str, Any], *,
                                 user: str) -> ExtendedPropertyRecord:
        record = self._child(job_id, ExtendedPropertyRecord, record_id)
        record = attrs.evolve(record, values={**record.values, **values})
        self._save_child(job_id, record)
        return record

    @_atomic
    def delete_extended_property(self, job_id: int, record_id: int, *, user: str) -> None:
        self._save_child(job_id, self._child(job_id, ExtendedPropertyRecord, record_id),
                         deleted=True)

    # --- users and groups --------------------------------------------------------------------

    def users(self) -> list[User]:
        return self.list_config(User)

    def groups(self) -> list[Group]:
        return self.list_config(Group)
