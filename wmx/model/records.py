"""attrs records for what a Workflow Manager repository holds: jobs, their sub-records, and
configuration elements, with Esri's field names (camelCase on the wire, snake_case in Python).

A record converts to and from the Esri REST JSON shape (dates as epoch milliseconds); that JSON
is also what the change log stores, so one codec serves the store, the server and the client.
This module must never touch storage or the network.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, ClassVar, Optional, TypeVar

import attrs

R = TypeVar("R", bound="Record")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def to_millis(value: Optional[datetime]) -> Optional[int]:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone()
    return int(value.timestamp() * 1000)


def from_millis(value: Any) -> Optional[datetime]:
    """Accept epoch milliseconds or a datetime (naive = local time); return aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)


_DATE = {"date": True}
"""Field metadata of a date: epoch milliseconds on the wire. Each date field is spelled
``attrs.field(default=None, converter=from_millis, metadata=_DATE)`` in full, so that type
checkers see the converter (and accept milliseconds as well as datetimes)."""


@attrs.define(slots=True)
class Record:
    """Base of every stored record: Esri JSON in and out, plus the element GUID."""

    KIND: ClassVar[str] = ""
    ID_FIELD: ClassVar[Optional[str]] = "id"
    NAME_FIELD: ClassVar[Optional[str]] = None

    guid: str = ""
    """Every record redeclares it as its last field (attrs then keeps it last), so that fields
    without a default may precede it."""

    def to_esri(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in attrs.fields(type(self)):
            if field.name == "guid":
                continue
            value = getattr(self, field.name)
            out[_camel(field.name)] = to_millis(value) if field.metadata.get("date") else value
        return out

    @classmethod
    def from_esri(cls: type[R], data: dict[str, Any], guid: str = "") -> R:
        names = {field.name for field in attrs.fields(cls)}
        kwargs = {_snake(key): value for key, value in data.items() if _snake(key) in names}
        kwargs.pop("guid", None)
        return cls(guid=guid, **kwargs)

    @property
    def int_id(self) -> Optional[int]:
        return getattr(self, self.ID_FIELD) if self.ID_FIELD else None

    @property
    def unique_name(self) -> Optional[str]:
        return getattr(self, self.NAME_FIELD) if self.NAME_FIELD else None


# --- jobs and their sub-records -------------------------------------------------------------

STAGE_CREATED, STAGE_READY, STAGE_WORKING, STAGE_DONE, STAGE_CLOSED = 1, 2, 3, 4, 5
ASSIGNED_UNASSIGNED, ASSIGNED_USER, ASSIGNED_GROUP = 0, 1, 2


@attrs.define(slots=True)
class Job(Record):
    KIND: ClassVar[str] = "job"

    id: int
    job_type_id: int
    name: str = ""
    description: str = ""
    status: Optional[int] = None
    priority: int = 0
    stage: int = STAGE_CREATED
    assigned_type: int = ASSIGNED_UNASSIGNED
    assigned_to: Optional[str] = None
    owned_by: Optional[str] = None
    created_by: Optional[str] = None
    created_date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    start_date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    started_date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    due_date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    end_date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    percentage_complete: int = 0
    parent_job_id: int = 0
    data_workspace_id: Optional[str] = None
    version_name: Optional[str] = None
    parent_version: Optional[str] = None
    aoi: Optional[dict] = None
    poi: Optional[dict] = None
    guid: str = ""


@attrs.define(slots=True)
class Hold(Record):
    KIND: ClassVar[str] = "hold"

    id: int
    job_id: int
    type: int
    held_by: Optional[str] = None
    hold_date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    hold_comments: str = ""
    released_by: Optional[str] = None
    release_date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    release_comments: str = ""
    guid: str = ""


@attrs.define(slots=True)
class Activity(Record):
    """One row of a job's activity log (history)."""

    KIND: ClassVar[str] = "activity"
    ID_FIELD: ClassVar[Optional[str]] = None

    job_id: int
    type: int
    user: Optional[str] = None
    date: Optional[datetime] = attrs.field(
        default=None, converter=from_millis, metadata=_DATE)
    message: str = ""
    guid: str = ""


@attrs.define(slots=True)
class Notes(Record):
    """Esri keeps one free-text notes blob per job, replaced wholesale by ``notes/update``."""

    KIND: ClassVar[str] = "notes"
    ID_FIELD: ClassVar[Optional[str]] = None

    job_id: int
    notes: str = ""
    guid: str = ""


STORAGE_LINKED_FILE, STORAGE_EMBEDDED, STORAGE_URL = 1, 2, 3


@attrs.define(slots=True)
class Attachment(Record):
    KIND: ClassVar[str] = "attachment"

    id: int
    job_id: int
    filename: str = ""
    storage_type: int = STORAGE_EMBEDDED
    folder: Optional[str] = None
    type: int = STORAGE_EMBEDDED
    size: int = 0
    guid: str = ""


@attrs.define(slots=True)
class Dependency(Record):
    KIND: ClassVar[str] = "dependency"

    id: int
    job_id: int
    dep_job_id: int
    held_on_type: int = 3
    held_on_value: int = 0
    dep_on_type: int = 3
    dep_on_value: int = 0
    guid: str = ""


@attrs.define(slots=True)
class ExtendedPropertyRecord(Record):
    """One record of a job's extended-property table (``jobs/{id}/extendedProperties``)."""

    KIND: ClassVar[str] = "extended_property"

    id: int
    job_id: int
    table_name: str
    values: dict = attrs.Factory(dict)
    guid: str = ""


# --- configuration elements -----------------------------------------------------------------

@attrs.define(slots=True)
class JobType(Record):
    KIND: ClassVar[str] = "job_type"
    NAME_FIELD: ClassVar[Optional[str]] = "name"

    id: Optional[int]
    name: str
    description: str = ""
    category: str = ""
    state: int = 1
    default_priority: int = 0
    default_job_duration: int = 0
    default_description: str = ""
    job_naming_scheme: str = ""
    guid: str = ""


@attrs.define(slots=True)
class JobStatus(Record):
    KIND: ClassVar[str] = "status"
    NAME_FIELD: ClassVar[Optional[str]] = "name"

    id: Optional[int]
    name: str
    description: str = ""
    caption: str = ""
    guid: str = ""


@attrs.define(slots=True)
class Priority(Record):
    KIND: ClassVar[str] = "priority"
    ID_FIELD: ClassVar[Optional[str]] = "value"
    NAME_FIELD: ClassVar[Optional[str]] = "name"

    value: int
    name: str
    description: str = ""
    guid: str = ""


@attrs.define(slots=True)
class ActivityType(Record):
    KIND: ClassVar[str] = "activity_type"
    NAME_FIELD: ClassVar[Optional[str]] = "name"

    id: Optional[int]
    name: str
    description: str = ""
    message: str = ""
    guid: str = ""


@attrs.define(slots=True)
class HoldType(Record):
    KIND: ClassVar[str] = "hold_type"
    NAME_FIELD: ClassVar[Optional[str]] = "name"

    id: Optional[int]
    name: str
    description: str = ""
    guid: str = ""


PRIV_ADMINISTRATOR = "AdministratorAccess"
PRIV_MANAGE_REPLICATION = "ManageReplication"


@attrs.define(slots=True)
class User(Record):
    KIND: ClassVar[str] = "user"
    ID_FIELD: ClassVar[Optional[str]] = None
    NAME_FIELD: ClassVar[Optional[str]] = "user_name"

    user_name: str
    full_name: str = ""
    email: str = ""
    guid: str = ""


@attrs.define(slots=True)
class Group(Record):
    KIND: ClassVar[str] = "group"
    NAME_FIELD: ClassVar[Optional[str]] = "name"

    id: Optional[int]
    name: str
    description: str = ""
    users: list = attrs.Factory(list)
    privileges: list = attrs.Factory(list)
    guid: str = ""


@attrs.define(slots=True)
class ConfigProperty(Record):
    KIND: ClassVar[str] = "config_property"
    ID_FIELD: ClassVar[Optional[str]] = None
    NAME_FIELD: ClassVar[Optional[str]] = "key"

    key: str
    value: str = ""
    guid: str = ""


JOB_RECORDS: tuple[type[Record], ...] = (Hold, Activity, Notes, Attachment, Dependency,
                                        ExtendedPropertyRecord)
CONFIG_RECORDS: tuple[type[Record], ...] = (JobType, JobStatus, Priority, ActivityType, HoldType,
                                           User, Group, ConfigProperty)
ALL_RECORDS: tuple[type[Record], ...] = (Job, *JOB_RECORDS, *CONFIG_RECORDS)
RECORD_TYPES: dict[str, type[Record]] = {cls.KIND: cls for cls in ALL_RECORDS}
CONFIG_KINDS = frozenset(cls.KIND for cls in CONFIG_RECORDS)
JOB_SUB_KINDS = frozenset(cls.KIND for cls in JOB_RECORDS)
JOB_KINDS = JOB_SUB_KINDS | {Job.KIND}
"""Jobs and what belongs to them: a repository's own work, as opposed to its configuration."""
NAMED_KINDS = frozenset(cls.KIND for cls in CONFIG_RECORDS if cls.NAME_FIELD)
RENUMBERED_KINDS = frozenset(cls.KIND for cls in ALL_RECORDS if cls.ID_FIELD == "id")
"""Kinds whose integer ids come from a node's id block (:data:`ID_BLOCK_SIZE`): when one
arrives at the parent holding an id another element already has, the newcomer is given the
next free id of its block instead of being refused (SPEC §3: both are kept, the clash is
reported). Such a clash comes from a node restored from a backup handing out ids again, or
an id chosen by hand; an element that referred to the newcomer by its old id (a job created
on the restored node with a job type made there) keeps that id. A priority's id is its value
(a rank, not an allocated number): a clash there stays a refused, logged conflict."""

ID_BLOCK_SIZE = 10_000_000
"""Integer ids a node may allocate: [block start, block start + size). Replicate hands every
child its own block, so ids created independently on different nodes never collide."""

NODE_LOCAL_PROPERTIES = frozenset({"JOB_ID_START_VALUE", "REPOSITORY_NAME"})
"""Configuration properties that describe one node and never replicate."""
