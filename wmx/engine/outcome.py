"""Records the engine hands back: what was asked per child, and what happened to it.

The tools turn these into arcpy messages and the last-sync table; the CLI prints them. Plain
data only, so a dry run and a real run can be compared field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional, Union

import attrs

from wmx.repository.base import ApplyReport, ConflictRecord

OK, FAILED, SKIPPED = "OK", "FAILED", "SKIPPED"


@attrs.frozen
class ChildTarget:
    """One row of the value table, validated: which child, where, and since when."""

    name: str
    url: str
    connected: bool = True
    last_sync_time: Optional[datetime] = None


@attrs.define
class ChildOutcome:
    target: ChildTarget
    status: str = OK
    error: Optional[str] = None
    last_sync_time: Optional[datetime] = None
    pulled: ApplyReport = attrs.Factory(ApplyReport)
    pushed: ApplyReport = attrs.Factory(ApplyReport)
    loaded_rows: int = 0
    export_file: Optional[str] = None
    cause: Optional[Exception] = attrs.field(default=None, eq=False, repr=False)
    """The exception that failed this child's part of the run: its class tells the tools
    which code to report and which node (this child, or the parent while serving it) failed."""

    notice: Optional[str] = None
    """Something the administrator should know although the child succeeded (it was
    recognized as restored from a backup, its content was saved before a replicate...)."""
    saved_file: Optional[str] = None
    """An exchange file holding what the child held before a replicate replaced it, when that
    was not this cluster's data (see :func:`wmx.engine.replicate.replicate`)."""

    @property
    def conflicts(self) -> list[ConflictRecord]:
        """Conflicts met consolidating the child's changes and pushing the parent's to it."""
        return self.pulled.conflicts + self.pushed.conflicts

    def fail(self, cause: Union[Exception, str]) -> None:
        """``cause``: the exception (or only its text, when the caller has no exception)."""
        self.status, self.error = FAILED, str(cause)
        self.cause = cause if isinstance(cause, Exception) else None
        self.last_sync_time = self.target.last_sync_time


@attrs.define
class RunOutcome:
    """The result of one replicate or synchronize run over all children."""

    parent_name: str
    started_at: datetime
    children: list[ChildOutcome] = attrs.Factory(list)
    dry_run: bool = False

    @property
    def failed(self) -> list[ChildOutcome]:
        return [child for child in self.children if child.status == FAILED]

    @property
    def status_code(self) -> int:
        """0 when every processed child succeeded, else the number of failed children."""
        return len(self.failed)

    @property
    def conflicts(self) -> list[ConflictRecord]:
        return [c for child in self.children for c in child.conflicts]
