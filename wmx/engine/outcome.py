"""Records the engine hands back: what was asked per child, and what happened to it.

The tools turn these into arcpy messages and the last-sync table; the CLI prints them. Plain
data only, so a dry run and a real run can be compared field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

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

    @property
    def conflicts(self) -> list[ConflictRecord]:
        return self.pulled.conflicts

    def fail(self, error: str) -> None:
        self.status, self.error = FAILED, error
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
