"""What travels between repositories: one element version, and the rule that orders versions.

An element (a job, a hold, a job type, ...) is identified by its GUID. Every write produces a
new version stamped with the writer's hybrid-logical-clock value and node id; a delete produces
a tombstone version. Replication moves versions and never edits them, so a version applied twice
is a no-op. This module must stay free of storage and transport code.
"""

from __future__ import annotations

import enum
from typing import Optional

import attrs


class ConflictPolicy(str, enum.Enum):
    """Which version survives when the same element changed on both sides since the last sync."""

    NEWEST = "newest"
    PARENT = "parent"
    CHILD = "child"


@attrs.frozen(slots=True)
class Change:
    """One version of one element, as stored in the change log and sent over the wire.

    ``body`` is the element's Esri-shaped JSON text (``None`` for a tombstone); ``content`` holds
    embedded attachment bytes. ``int_id``, ``job_guid`` and ``name`` are copies of body fields
    that repositories index (Esri integer id, owning job, unique configuration name).
    """

    guid: str
    kind: str
    hlc: int
    origin: str
    deleted: bool = False
    int_id: Optional[int] = None
    job_guid: Optional[str] = None
    name: Optional[str] = None
    body: Optional[str] = None
    content: Optional[bytes] = None

    @property
    def version(self) -> tuple[int, str]:
        return (self.hlc, self.origin)

    def to_row(self) -> tuple:
        return (self.guid, self.kind, self.int_id, self.job_guid, self.name, self.body,
                self.content, self.hlc, self.origin, int(self.deleted))

    @classmethod
    def from_row(cls, row: tuple) -> Change:
        guid, kind, int_id, job_guid, name, body, content, hlc, origin, deleted = row[:10]
        return cls(guid=guid, kind=kind, int_id=int_id, job_guid=job_guid, name=name, body=body,
                   content=content, hlc=hlc, origin=origin, deleted=bool(deleted))


ROW_FIELDS = ("guid", "kind", "int_id", "job_guid", "name", "body", "content", "hlc", "origin",
              "deleted")
"""Column order of :meth:`Change.to_row`, shared by every backend and the wire format."""


def precedence(hlc: int, origin: str, parent_node: str) -> tuple[int, bool, str]:
    """Total order of versions: newest stamp first, ties to the parent, then by node id."""
    return (hlc, origin == parent_node, origin)


def twin_order(deleted: bool, body: Optional[str], content: Optional[bytes]) -> tuple:
    """Order of two different versions that share one stamp (one node stamped twice alike: a
    repository put back from a backup, whose clock had not yet passed the stamps it gave since,
    makes new versions under stamps its lost ones had, which other repositories still hold).
    Any fixed order of what they say makes every repository keep the same one."""
    return (bool(deleted), body or "", content or b"")


def incoming_wins(local: tuple[int, str], incoming: tuple[int, str], parent_node: str,
                  policy: ConflictPolicy = ConflictPolicy.NEWEST, conflict: bool = False,
                  incoming_from_child: bool = False) -> bool:
    """Decide whether an incoming version replaces the local one.

    Without a conflict (or under the ``newest`` policy) the version with the higher precedence
    wins, which is what makes every repository converge to the same state whatever order
    children are processed in. The ``parent``/``child`` policies only arbitrate true conflicts
    detected at the parent while pulling from a child.
    """
    if conflict and policy is not ConflictPolicy.NEWEST and incoming_from_child:
        return policy is ConflictPolicy.CHILD
    return precedence(*incoming, parent_node) > precedence(*local, parent_node)
