"""Starting configurations for a new repository (``wmx init --config minimum|quick``).

Built-in elements get GUIDs derived from their kind and name, so independently initialised
repositories agree on them and never see them as name clashes. The OS login running ``init``
becomes an administrator, so local tools and REST calls with ``user=<login>`` are authorized.
"""

from __future__ import annotations

import getpass
import uuid
from pathlib import Path
from typing import Any, Optional

from wmx.model.records import (
    PRIV_ADMINISTRATOR,
    PRIV_MANAGE_REPLICATION,
    ActivityType,
    ConfigProperty,
    Group,
    HoldType,
    JobStatus,
    JobType,
    Priority,
    Record,
    User,
)
from wmx.repository.embedded import EmbeddedRepository

BUILTIN_NAMESPACE = uuid.UUID("0d6f6a2e-2b7b-4a4e-8f43-7d3c5b9e1c42")
CONFIGURATIONS = ("minimum", "quick")

ALL_PRIVILEGES = [PRIV_ADMINISTRATOR, PRIV_MANAGE_REPLICATION, "CreateJob", "CloseJob",
                  "DeleteJobs", "AssignAnyJob", "ManageHolds", "ManageAttachments", "ManageAOI",
                  "UpdateJobProperties", "ReopenClosedJobs"]

MINIMUM: tuple[Record, ...] = (
    *(JobStatus(id=i, name=n, caption=n) for i, n in enumerate(
        ("Created", "Ready To Work", "Working", "Done Working", "Closed", "On Hold",
         "Assigned", "Unassigned"), start=1)),
    Priority(value=0, name="None"), Priority(value=1, name="Low"),
    Priority(value=2, name="Medium"), Priority(value=3, name="High"),
    Priority(value=4, name="Critical"),
    *(ActivityType(id=i, name=n, message=m) for i, (n, m) in enumerate((
        ("CreateJob", "Job created"), ("AssignJob", "Job assigned"),
        ("CloseJob", "Job closed"), ("ReopenJob", "Job reopened"),
        ("AddHold", "Hold added"), ("ReleaseHold", "Hold released"),
        ("Comment", "Comment"), ("StatusChanged", "Status changed")), start=1)),
    HoldType(id=1, name="Waiting for Information"),
    ConfigProperty(key="AUTOSTATUSASSIGN", value="true"),
    ConfigProperty(key="AOIOVERLAP", value="allow"),
    ConfigProperty(key="AUTOCLOSEJOB", value="false"),
    ConfigProperty(key="USER_STORE", value="traditional"),
)

QUICK: tuple[Record, ...] = (
    JobType(id=1, name="Data Edits", description="Edit production data", category="Editing",
            default_priority=2),
    JobType(id=2, name="Map Production", description="Produce a map product",
            category="Cartography", default_priority=1),
    JobType(id=3, name="Quality Control", description="Review edits", category="QA",
            default_priority=2),
    HoldType(id=2, name="Waiting for Data"),
    HoldType(id=3, name="Waiting for Approval"),
    User(user_name="editor1", full_name="Editor One"),
    User(user_name="editor2", full_name="Editor Two"),
    User(user_name="reviewer1", full_name="Reviewer One"),
    Group(id=2, name="Editors", users=["editor1", "editor2"],
          privileges=["CreateJob", "CloseJob", "ManageHolds", "ManageAttachments"]),
    Group(id=3, name="Reviewers", users=["reviewer1"], privileges=["CloseJob", "ManageHolds"]),
)


def builtin_guid(record: Record) -> str:
    return str(uuid.uuid5(BUILTIN_NAMESPACE, f"{record.KIND}:{record.unique_name}"))


def _store_class(location: str) -> type[Any]:
    """The store a new repository is created in: PostgreSQL for ``postgresql://`` locations
    (a schema, SPEC §2.7), else a SQLite file."""
    if location.lower().startswith(("postgresql://", "postgres://")):
        from wmx.store.postgres import PostgresRepository

        return PostgresRepository
    return EmbeddedRepository


def initialise(location: str | Path, *, name: str, config: str = "minimum",
               job_id_start: int = 1, admin: Optional[str] = None) -> Any:
    """Create a repository (a file, or a PostgreSQL schema) and load a starting configuration
    into it."""
    if config not in CONFIGURATIONS:
        raise ValueError(f"config must be one of {', '.join(CONFIGURATIONS)}")
    admin = admin or getpass.getuser()
    repository = _store_class(str(location)).create(str(location), name=name,
                                                    job_id_start=job_id_start)
    records = list(MINIMUM) + (list(QUICK) if config == "quick" else [])
    records.append(User(user_name=admin, full_name=f"{admin} (administrator)"))
    records.append(Group(id=1, name="Administrators", users=[admin],
                         privileges=list(ALL_PRIVILEGES)))
    for record in records:
        repository.create_config(record, guid=builtin_guid(record))
    return repository
