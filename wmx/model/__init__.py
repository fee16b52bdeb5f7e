"""The repository model: records, versions and the clock. No storage, no transport."""

from wmx.model.changes import Change, ConflictPolicy
from wmx.model.clock import HybridLogicalClock
from wmx.model.records import (
    CONFIG_KINDS,
    RECORD_TYPES,
    Activity,
    ActivityType,
    Attachment,
    ConfigProperty,
    Dependency,
    ExtendedPropertyRecord,
    Group,
    Hold,
    HoldType,
    Job,
    JobStatus,
    JobType,
    Notes,
    Priority,
    Record,
    User,
)

__all__ = [
    "CONFIG_KINDS", "RECORD_TYPES", "Activity", "ActivityType", "Attachment", "Change",
    "ConfigProperty", "ConflictPolicy", "Dependency", "ExtendedPropertyRecord", "Group",
    "Hold", "HoldType", "HybridLogicalClock", "Job", "JobStatus", "JobType", "Notes",
    "Priority", "Record", "User",
]
