"""The JSON form of replication records on the wire (the WMServer ``replication/x-…`` extension).

Shared by the server (``wmx.server``) and the REST client (``wmx.repository.rest``) so both
ends agree byte for byte: change and snapshot rows are arrays in ``ROW_FIELDS`` order with the
attachment ``content`` base64-encoded; records are objects with camelCase keys and dates as
epoch milliseconds. Every decoder validates what it reads and raises :class:`WireError` for
malformed input. Pure functions: this module must never do I/O or import a web framework.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import typing
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import attrs

from wmx.model.changes import ROW_FIELDS, Change
from wmx.model.clock import is_valid_stamp
from wmx.model.records import _camel as camel_case
from wmx.model.records import from_millis as _from_millis
from wmx.model.records import to_millis
from wmx.model.validation import INT64_MAX, INT64_MIN, InvalidElement, check_row
from wmx.repository.base import ApplyReport, ConflictRecord, NodeInfo, NodeRecord

if TYPE_CHECKING:
    from attrs import AttrsInstance

T = TypeVar("T", bound="AttrsInstance")

JOB_PARAMS: dict[str, str] = {
    "name": "name",
    "description": "description",
    "startDate": "start_date",
    "dueDate": "due_date",
    "priority": "priority",
    "status": "status",
    "parentJobId": "parent_job_id",
    "dataWorkspaceId": "data_workspace_id",
    "parentVersion": "parent_version",
    "versionName": "version_name",
    "ownedBy": "owned_by",
    "assignedType": "assigned_type",
    "assignedTo": "assigned_to",
    "percent": "percentage_complete",
    "aoi": "aoi",
    "poi": "poi",
}
"""Esri's ``jobs/{id}/update`` keys (``properties`` JSON or individual parameters) and the
:class:`wmx.model.records.Job` fields they set. ``percent`` is the input spelling of the job's
``percentageComplete``."""

JOB_CREATE_PARAMS = frozenset(JOB_PARAMS) - {"status", "versionName", "percent"}
"""The subset ``jobs/create`` documents (the rest can only be set by an update)."""


"""The integers the wire carries and a repository stores (SQLite's INTEGER): ids, stamps and
log positions beyond them are malformed, not merely large."""


class WireError(ValueError):
    """A payload does not have the documented shape; the message names the offending part."""


def is_int64(value: Any) -> bool:
    """An ``int`` (not a ``bool``) within :data:`INT64_MIN`..:data:`INT64_MAX`."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def position_from_wire(value: Any, what: str) -> int:
    """A log position or cursor: an ``int`` from 0 to :data:`INT64_MAX` (a checkpoint beyond
    would overflow the store that records it)."""
    if not is_int64(value) or value < 0:
        raise WireError(f"{what} must be a non-negative 64-bit integer")
    return value


def flag_from_wire(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise WireError(f"{what} must be true or false")
    return value


def from_millis(value: Any, what: str = "date") -> Optional[datetime]:
    """Epoch milliseconds (an int, or digits in a string) to an aware UTC datetime."""
    if isinstance(value, (bool, float, datetime)):
        raise WireError(f"{what} must be epoch milliseconds")
    try:
        return _from_millis(value)
    except (TypeError, ValueError, OverflowError, OSError):
        raise WireError(f"{what} must be epoch milliseconds") from None


# --- rows -------------------------------------------------------------------------------------

_CONTENT = ROW_FIELDS.index("content")
_WIDTH = len(ROW_FIELDS)

INLINE_CONTENT_BYTES = 4 * 1024 * 1024
"""Content up to this size travels inside its row; larger content travels in parts of
:data:`PART_BYTES` and its row carries a :class:`ContentRef` (``docs/wmserver-extension.md``,
"Big content"), so no request or answer has to hold an element whole."""
PART_BYTES = 4 * 1024 * 1024
_SHA256_HEX = frozenset("0123456789abcdef")

Splitter = Callable[[str, bytes], dict[str, Any]]
"""Given an element's GUID and its content, sends (or keeps ready) the content's parts and
answers its reference object."""


@attrs.frozen
class ContentRef:
    """Where the parts of one content are, how long it is and its SHA-256 (hex): the receiver
    checks both once it has joined the parts."""

    id: str
    size: int
    sha256: str

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "size": self.size, "sha256": self.sha256}

    @classmethod
    def of(cls, id: str, content: bytes) -> ContentRef:
        return cls(id, len(content), hashlib.sha256(content).hexdigest())

    def check(self, content: bytes, source: str) -> bytes:
        if len(content) != self.size or hashlib.sha256(content).hexdigest() != self.sha256:
            raise WireError(f"content {self.id} from {source} does not match its size and "
                            "checksum")
        return content


def content_ref_from_wire(value: Any, what: str = "content") -> ContentRef:
    if not isinstance(value, dict):
        raise WireError(f"{what} must be base64 text or a content reference")
    ref_id, size, digest = value.get("id"), value.get("size"), value.get("sha256")
    if not (type(ref_id) is str and 0 < len(ref_id) <= 200 and ref_id.isprintable()):
        raise WireError(f"{what}.id must be a short text")
    checked_size = position_from_wire(size, f"{what}.size")
    if not (type(digest) is str and len(digest) == 64 and set(digest) <= _SHA256_HEX):
        raise WireError(f"{what}.sha256 must be 64 lower-case hex digits")
    return ContentRef(ref_id, checked_size, digest)


def join_rows(value: Any, fetch: Callable[[ContentRef], bytes], what: str = "rows") -> Any:
    """Replace, in decoded JSON rows, each content reference by the bytes ``fetch`` joins
    (checked against the reference); anything else is left for :func:`rows_from_wire`."""
    if not isinstance(value, list):
        return value
    for index, row in enumerate(value):
        if type(row) is list and len(row) == _WIDTH and isinstance(row[_CONTENT], dict):
            ref = content_ref_from_wire(row[_CONTENT], f"{what}[{index}].content")
            row[_CONTENT] = fetch(ref)
    return value


def _content_to_wire(guid: str, content: bytes, split: Optional[Splitter]) -> Any:
    if split is not None and len(content) > INLINE_CONTENT_BYTES:
        return split(guid, content)
    return base64.b64encode(content).decode("ascii")


def rows_to_wire(rows: Iterable[tuple], split: Optional[Splitter] = None) -> list[tuple]:
    """Rows in ``ROW_FIELDS`` order, content bytes replaced by base64 text, or (with
    ``split``, above :data:`INLINE_CONTENT_BYTES`) by the reference ``split`` answers."""
    return [row if row[_CONTENT] is None else
            (*row[:_CONTENT], _content_to_wire(row[0], row[_CONTENT], split),
             *row[_CONTENT + 1:])
            for row in rows]


def _optional(value: Any, kind: type) -> bool:
    return value is None or type(value) is kind


def _row_from_wire(row: Any, admit: bool = True) -> tuple:
    """One row, type-checked field by field (unrolled: this runs for every replicated row),
    and (``admit``) checked for what its kind needs. Errors name the part after the row's own
    position, which the caller prefixes."""
    if type(row) is not list or len(row) != _WIDTH:
        raise WireError(f" must be an array of {_WIDTH} values")
    guid, kind, int_id, job_guid, name, body, content, hlc, origin, deleted = row
    checks = (type(guid) is str, type(kind) is str,
              int_id is None or is_int64(int_id),
              _optional(job_guid, str), _optional(name, str),
              type(body) is str or (body is None and deleted == 1),  # None: a tombstone
              content is None or type(content) in (str, bytes),  # bytes: joined from parts
              is_valid_stamp(hlc),
              type(origin) is str, type(deleted) in (int, bool) and deleted in (0, 1))
    if not all(checks):
        raise WireError(f".{ROW_FIELDS[checks.index(False)]} has the wrong type or range")
    if type(content) is str:
        try:
            content = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise WireError(".content is not base64") from None
    decoded = (guid, kind, int_id, job_guid, name, body, content, hlc, origin, int(deleted))
    if admit:
        try:
            check_row(decoded)  # what its kind needs: refused here, before any store sees it
        except InvalidElement as exc:
            raise WireError(f": {exc}") from None
    return decoded


def rows_from_wire(value: Any, what: str = "rows", *, admit: bool = True) -> list[tuple]:
    """Validate and decode rows sent by :func:`rows_to_wire` back to store tuples.
    ``admit=False`` leaves what each kind needs to the caller: a store that refuses
    inadmissible rows itself (``wmx.store.rows.refuse_inadmissible``), which would otherwise
    parse every body twice."""
    if not isinstance(value, list):
        raise WireError(f"{what} must be a list of rows")
    try:
        return [_row_from_wire(row, admit) for row in value]
    except WireError as exc:
        index = next(i for i, row in enumerate(value) if _fails(row, admit))
        raise WireError(f"{what}[{index}]{exc}") from None


def _fails(row: Any, admit: bool) -> bool:
    try:
        _row_from_wire(row, admit)
    except WireError:
        return True
    return False


def changes_to_wire(changes: Iterable[Change], split: Optional[Splitter] = None
                    ) -> list[tuple]:
    return rows_to_wire((change.to_row() for change in changes), split)


def changes_from_wire(value: Any, what: str = "changes", *, admit: bool = True
                      ) -> list[Change]:
    return [Change.from_row(row) for row in rows_from_wire(value, what, admit=admit)]


# --- records ----------------------------------------------------------------------------------

@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def record_to_wire(record: Any) -> dict[str, Any]:
    """An attrs record as a camelCase object (datetimes as epoch ms, nested lists kept)."""
    out: dict[str, Any] = {}
    for field in attrs.fields(type(record)):
        value = getattr(record, field.name)
        out[camel_case(field.name)] = to_millis(value) if isinstance(value, datetime) else value
    return out


def _check(expected: Any, value: Any, key: str) -> Any:
    args = typing.get_args(expected)
    if type(None) in args:
        if value is None:
            return None
        expected = next(arg for arg in args if arg is not type(None))
    if expected is datetime:
        return from_millis(value, key)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = is_int64(value)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise WireError(f"{key} has the wrong type or range")
    return value


def record_from_wire(cls: type[T], data: Any, what: str = "") -> T:
    """Validate a camelCase object and build ``cls`` from it (simple-typed fields only)."""
    what = what or cls.__name__
    if not isinstance(data, dict):
        raise WireError(f"{what} must be an object")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for field in attrs.fields(cls):
        key = camel_case(field.name)
        if key not in data:
            if field.default is attrs.NOTHING:
                raise WireError(f"{what}.{key} is required")
            continue
        kwargs[field.name] = _check(hints[field.name], data[key], f"{what}.{key}")
    return cls(**kwargs)


def node_info_from_wire(data: Any) -> NodeInfo:
    return record_from_wire(NodeInfo, data)


def node_record_from_wire(data: Any) -> NodeRecord:
    return record_from_wire(NodeRecord, data)


def conflict_from_wire(data: Any) -> ConflictRecord:
    return record_from_wire(ConflictRecord, data)


def report_to_wire(report: ApplyReport, split: Optional[Splitter] = None) -> dict[str, Any]:
    return {
        "seqBefore": report.seq_before, "seqAfter": report.seq_after,
        "inserted": report.inserted, "updated": report.updated, "deleted": report.deleted,
        "unchanged": report.unchanged, "renamed": report.renamed,
        "conflicts": [record_to_wire(conflict) for conflict in report.conflicts],
        "written": changes_to_wire(report.written, split),
        "renumbered": changes_to_wire(report.renumbered, split),
        "refused": report.refused,
    }


def report_from_wire(data: Any) -> ApplyReport:
    if not isinstance(data, dict):
        raise WireError("ApplyReport must be an object")
    conflicts = data.get("conflicts", [])
    if not isinstance(conflicts, list):
        raise WireError("ApplyReport.conflicts must be a list")
    counts = {name: data.get(camel_case(name), 0) for name in
              ("seq_before", "seq_after", "inserted", "updated", "deleted", "unchanged",
               "renamed")}
    for name, value in counts.items():
        position_from_wire(value, f"ApplyReport.{camel_case(name)}")
    refused = _check(bool, data.get("refused", False), "ApplyReport.refused")
    return ApplyReport(**counts, conflicts=[conflict_from_wire(c) for c in conflicts],
                       written=changes_from_wire(data.get("written", []), "written"),
                       renumbered=changes_from_wire(data.get("renumbered", []), "renumbered"),
                       refused=refused)


__all__ = [
    "INLINE_CONTENT_BYTES", "INT64_MAX", "INT64_MIN", "JOB_CREATE_PARAMS", "JOB_PARAMS",
    "PART_BYTES", "ContentRef", "WireError", "changes_from_wire", "changes_to_wire",
    "conflict_from_wire", "content_ref_from_wire", "flag_from_wire", "from_millis", "is_int64",
    "join_rows", "node_info_from_wire", "node_record_from_wire", "position_from_wire",
    "record_from_wire", "record_to_wire", "report_from_wire", "report_to_wire", "rows_from_wire",
    "rows_to_wire", "to_millis",
]
