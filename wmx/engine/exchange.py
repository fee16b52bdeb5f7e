"""Exchange files for disconnected children (Esri's Export/Import Job Data, ``.jxl``).

Esri never published the JXL layout, so wmx defines its own, documented in
docs/exchange-format.md: UTF-8 XML, one ``Element`` per element version (tombstones included)
carrying GUID, kind, stamps and the Esri JSON body, attachment bytes in base64, and a trailing
SHA-256 checksum of the header and every element. A file is verified completely (checksum,
element count, every element valid for its kind, the cluster it came from) in a first
streaming pass, and only then imported in a second, so a truncated, altered or foreign file is
refused with nothing written. Files are written and read as streams, so repository size does
not drive memory. Like the rest of the engine, this module sees repositories only through the
Repository protocol.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import os
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, BinaryIO, Optional, Protocol
from xml.sax.saxutils import escape, quoteattr

import attrs

from wmx import progress
from wmx.model.changes import ROW_FIELDS, Change
from wmx.model.clock import stamp_from_datetime
from wmx.model.validation import InvalidElement, check_row
from wmx.repository.base import ApplyReport, InvalidRequest, NodeInfo, Repository

FORMAT = "wmx-jxl/2"
OLD_FORMATS = frozenset({"wmx-jxl/1"})
"""Formats of earlier wmx versions: no checksum, no cluster identity; refused."""
CHECKSUM_ALGORITHM = "sha256"
PAGE_SIZE = 5000
_HEADER_KEYS = ("format", "repository", "nodeId", "parentNodeId", "exportedAt", "since",
                "until", "idBlockStart")
"""Header attributes, in the order the checksum covers them."""
_ELEMENT_KEYS = ("guid", "kind", "hlc", "origin", "deleted", "intId", "jobGuid", "name",
                 "nameSet")
_ABSENT = (1 << 64) - 1
"""The length prefix the checksum gives a missing value (no body, no content, no attribute)."""


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


class ExchangeFileRefused(InvalidRequest):
    """The file is damaged, incomplete, of an older format, or from another cluster: it was
    refused before anything was written."""


class MergeMode(str, enum.Enum):
    COMBINE = "COMBINE"
    REPLACE = "REPLACE"


@attrs.frozen
class ExchangeHeader:
    repository: str
    node_id: str
    exported_at: datetime
    since: Optional[datetime] = None
    until: Optional[datetime] = None
    id_block_start: Optional[int] = None
    parent_node_id: Optional[str] = None
    """The exporting node's parent (``None``: the exporter is the root of its cluster)."""


def export_file_name(repository_name: str, moment: datetime) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in repository_name)
    return f"{safe}_{moment.strftime('%Y%m%dT%H%M%SZ')}.jxl"


def _iso(moment: Optional[datetime]) -> str:
    return "" if moment is None else moment.astimezone(timezone.utc).isoformat()


def _from_iso(text: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(text) if text else None


def _rows(repository: Repository, since: Optional[datetime],
          until: Optional[datetime]) -> Iterator[tuple]:
    low = stamp_from_datetime(since) if since else None
    high = stamp_from_datetime(until) if until else None
    cursor = 0
    while True:
        page = repository.snapshot(cursor, PAGE_SIZE)
        for row in page.rows:
            hlc = row[ROW_FIELDS.index("hlc")]
            if (low is None or hlc >= low) and (high is None or hlc < high):
                yield row
        cursor = page.cursor
        if not page.more:
            return


def _digest(hasher: _Hasher, *values: Optional[str]) -> None:
    """Feed values to the checksum, each length-prefixed, so no two sequences of values share
    a byte stream (a missing value has its own prefix)."""
    for value in values:
        if value is None:
            hasher.update(_ABSENT.to_bytes(8, "big"))
            continue
        data = value.encode("utf-8", "surrogatepass")
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)


def _element_values(change: Change) -> tuple[dict[str, str], Optional[str], Optional[str]]:
    """An element's attribute texts, body and base64 content: what is written, and what the
    checksum covers (a reader recomputes it from the same texts as parsed)."""
    attributes = {
        "guid": change.guid, "kind": change.kind, "hlc": str(change.hlc),
        "origin": change.origin, "deleted": str(int(change.deleted)),
        "intId": "" if change.int_id is None else str(change.int_id),
        "jobGuid": change.job_guid or "", "name": change.name or "",
        "nameSet": str(int(change.name is not None))}
    content = None if change.content is None else base64.b64encode(change.content).decode()
    return attributes, change.body, content


def _write_element(out: IO[str], hasher: _Hasher, change: Change) -> None:
    attributes, body, content = _element_values(change)
    _digest(hasher, *(attributes[key] for key in _ELEMENT_KEYS), body, content)
    text = " ".join(f"{key}={quoteattr(value)}" for key, value in attributes.items())
    out.write(f"  <Element {text}>")
    if body is not None:
        out.write(f"<Body>{escape(body)}</Body>")
    if content is not None:
        out.write(f"<Content>{content}</Content>")
    out.write("</Element>\n")


class OutputExists(InvalidRequest):
    """The export file would replace one already there (``overwriteOutput`` is off); the
    message is the file's path."""


def export_repository(repository: Repository, folder: str | Path, *,
                      since: Optional[datetime] = None, until: Optional[datetime] = None,
                      id_block_start: Optional[int] = None,
                      replace_existing: bool = True) -> tuple[Path, int]:
    """Write the repository (or the changes stamped in [since, until)) into ``folder``.

    The file appears under its final name only once complete (written beside it, then
    renamed), so a reader never sees half a file. Returns the path and the element count.
    Without ``replace_existing`` (arcpy's ``overwriteOutput`` off) a file already there under
    that name is never replaced: :class:`OutputExists`, and nothing is written.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidRequest(f"Folder {folder} does not exist")
    info = repository.info()
    now = datetime.now(timezone.utc)
    target = folder / export_file_name(info.name, now)
    if not replace_existing and target.exists():
        raise OutputExists(str(target))
    header = {"format": FORMAT, "repository": info.name, "nodeId": info.node_id,
              "parentNodeId": info.parent_node_id or "", "exportedAt": _iso(now),
              "since": _iso(since), "until": _iso(until),
              "idBlockStart": "" if id_block_start is None else str(id_block_start)}
    hasher = hashlib.sha256()
    _digest(hasher, *(header[key] for key in _HEADER_KEYS))
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    count = 0
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            attributes = " ".join(f"{k}={quoteattr(v)}" for k, v in header.items())
            out.write(f"<WMXExchange {attributes}>\n")
            whole = since is None and until is None
            for row in progress.track(_rows(repository, since, until), f"export {info.name}",
                                      total=progress.size_of(repository) if whole else None):
                _write_element(out, hasher, Change.from_row(row))
                count += 1
            out.write(f'  <Checksum algorithm="{CHECKSUM_ALGORITHM}" elements="{count}">'
                      f"{hasher.hexdigest()}</Checksum>\n")
            out.write("</WMXExchange>\n")
        if replace_existing:
            os.replace(temporary, target)
        else:  # a link never replaces: a file that appeared meanwhile is kept
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise OutputExists(str(target)) from None
            Path(temporary).unlink()
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target, count


# --- reading ----------------------------------------------------------------------------------

def _header(path: str | Path, root: ElementTree.Element) -> ExchangeHeader:
    file_format = root.get("format")
    if root.tag != "WMXExchange":
        raise ExchangeFileRefused(f"{path} is not a wmx exchange file")
    if file_format in OLD_FORMATS:
        raise ExchangeFileRefused(
            f"{path} was written by an earlier wmx ({file_format}), without a checksum or the "
            "identity of its cluster: export it again with ExportJobData from the repository "
            "it came from")
    if file_format != FORMAT:
        raise ExchangeFileRefused(f"{path} is an exchange file of an unknown format "
                                  f"({file_format}); this wmx reads {FORMAT}")
    try:
        block = root.get("idBlockStart")
        return ExchangeHeader(repository=root.get("repository", ""),
                              node_id=root.get("nodeId", ""),
                              exported_at=_from_iso(root.get("exportedAt")) or
                              datetime.now(timezone.utc),
                              since=_from_iso(root.get("since")),
                              until=_from_iso(root.get("until")),
                              id_block_start=int(block) if block else None,
                              parent_node_id=root.get("parentNodeId") or None)
    except ValueError as exc:
        raise ExchangeFileRefused(f"{path} has a damaged header: {exc}") from None


def read_header(path: str | Path) -> ExchangeHeader:
    """The header of an exchange file (not yet verified: :func:`verify_file` does that)."""
    try:
        for _, element in ElementTree.iterparse(str(path), events=("start",)):
            return _header(path, element)
    except ElementTree.ParseError as exc:
        raise ExchangeFileRefused(f"{path} is not a wmx exchange file ({exc})") from None
    raise ExchangeFileRefused(f"{path} is empty")


def _change(element: ElementTree.Element) -> Change:
    int_id = element.get("intId")
    content = element.findtext("Content")
    return Change(
        guid=element.get("guid", ""), kind=element.get("kind", ""),
        hlc=int(element.get("hlc", "")), origin=element.get("origin", ""),
        deleted=element.get("deleted") == "1",
        int_id=int(int_id) if int_id else None,
        job_guid=element.get("jobGuid") or None,
        name=element.get("name") if element.get("nameSet") == "1" else None,
        body=element.findtext("Body"),
        content=base64.b64decode(content, validate=True) if content is not None else None)


def _scan(handle: BinaryIO, path: str | Path) -> Iterator[ExchangeHeader | Change]:
    """One streaming pass: the header first, then every element version; raises
    :class:`ExchangeFileRefused` on the first damage, or at the end if the checksum or the
    element count disagrees, or the file stops short of its checksum (truncated)."""
    handle.seek(0)
    hasher = hashlib.sha256()
    root: Optional[ElementTree.Element] = None
    count, trailer = 0, None
    try:
        for event, element in ElementTree.iterparse(handle, events=("start", "end")):
            if root is None:
                root = element
                header = _header(path, root)
                _digest(hasher, *(root.get(key) for key in _HEADER_KEYS))
                yield header
            elif event == "end" and element.tag == "Element" and element is not root:
                if trailer is not None:
                    raise ExchangeFileRefused(f"{path} has elements after its checksum")
                _digest(hasher, *(element.get(key) for key in _ELEMENT_KEYS),
                        element.findtext("Body"), element.findtext("Content"))
                count += 1
                yield _change(element)
                root.clear()  # cleared elements would otherwise pile up under the root
            elif event == "end" and element.tag == "Checksum":
                trailer = element
    except ElementTree.ParseError as exc:
        raise ExchangeFileRefused(f"{path} is truncated or damaged ({exc}): nothing was "
                                  "imported; copy or export the file again") from None
    except (ValueError, binascii.Error) as exc:
        raise ExchangeFileRefused(f"{path} has a damaged element (after {count} good ones): "
                                  f"{exc}") from None
    if trailer is None:
        raise ExchangeFileRefused(f"{path} has no checksum (truncated?): nothing was imported")
    if (trailer.get("algorithm") != CHECKSUM_ALGORITHM or trailer.get("elements") != str(count)
            or (trailer.text or "").strip() != hasher.hexdigest()):
        raise ExchangeFileRefused(f"{path} does not match its checksum (the file was altered "
                                  "or damaged): nothing was imported; export it again")


def verify_file(handle: BinaryIO, path: str | Path) -> ExchangeHeader:
    """The first pass: the whole file checked (checksum, count, every element valid for its
    kind) without keeping more than one element in memory; returns its header."""
    header: Optional[ExchangeHeader] = None
    invalid: Optional[InvalidElement] = None
    for item in _scan(handle, path):  # raises on damage, a wrong checksum or count
        if isinstance(item, ExchangeHeader):
            header = item
        elif invalid is None:
            try:
                check_row(item.to_row())
            except InvalidElement as exc:
                invalid = exc  # reported once the checksum is known to match
    if invalid is not None:
        raise ExchangeFileRefused(f"{path} holds an element no repository may store: "
                                  f"{invalid}; nothing was imported")
    assert header is not None  # _scan yields the header first or raises
    return header


def _batches(changes: Iterator[Change], size: int) -> Iterator[list[Change]]:
    batch: list[Change] = []
    for change in changes:
        batch.append(change)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_related(header: ExchangeHeader, local: NodeInfo, mode: MergeMode,
                  path: str | Path) -> None:
    """Refuse a file from outside this repository's cluster before anything is written.

    COMBINE takes what a directly related node exported: this repository's parent or one of
    its children (the two directions of disconnected synchronization), a sibling (same
    parent), or itself. REPLACE takes only its parent's copy, or, into a repository that has
    no parent yet, the file ReplicateJobData wrote for a new disconnected child (it carries
    the child's job-id block): the repository then becomes that parent's child.
    """
    me, parent = local.node_id, local.parent_node_id
    source, source_parent = header.node_id, header.parent_node_id
    if mode is MergeMode.COMBINE:
        if me in (source, source_parent) or (parent is not None and parent in
                                             (source, source_parent)):
            return
        raise ExchangeFileRefused(
            f"{path} comes from another cluster: it was exported by {header.repository} "
            f"({source}), which is neither this repository, its parent, one of its children "
            "nor a sibling; nothing was imported")
    if source == parent or (parent is None and header.id_block_start is not None
                            and me not in (source, source_parent)):
        return
    raise ExchangeFileRefused(
        f"{path} cannot replace this repository's contents: REPLACE takes a file exported by "
        f"its parent (or, for a repository with no parent, one ReplicateJobData wrote for a "
        f"disconnected child), and this one was exported by {header.repository} ({source}); "
        "nothing was imported")


def import_file(repository: Repository, path: str | Path,
                mode: MergeMode = MergeMode.COMBINE) -> tuple[ApplyReport, NodeInfo]:
    """Load an exchange file: COMBINE merges (newest version wins, ``_1`` renames);
    REPLACE swaps the repository's contents for the file's, atomically.

    The whole file is verified first (:func:`verify_file`, :func:`check_related`); the second
    pass reads the same open file, so a file replaced meanwhile is not the one imported."""
    local = repository.info()
    with open(path, "rb") as handle:
        header = verify_file(handle, path)
        check_related(header, local, mode, path)
        changes = (item for item in _scan(handle, path) if isinstance(item, Change))
        batches = progress.track(_batches(changes, PAGE_SIZE), f"import {local.name}",
                                 size=len)
        if mode is MergeMode.COMBINE:
            report = ApplyReport()
            for batch in batches:
                report.add(repository.apply(batch, parent_node=local.node_id,
                                            source_node=header.node_id))
            return report, repository.info()
        return _replace(repository, batches, header, local)


def _replace(repository: Repository, batches: Iterator[list[Change]], header: ExchangeHeader,
             local: NodeInfo) -> tuple[ApplyReport, NodeInfo]:
    report = ApplyReport()
    load_id = repository.begin_load()
    try:
        for batch in batches:
            repository.load_rows(load_id, [c.to_row() for c in batch])
            report.inserted += len(batch)
        info = repository.commit_load(
            load_id, parent_node_id=header.node_id,
            id_block_start=header.id_block_start or local.id_block_start)
    except BaseException:
        repository.abort_load(load_id)
        raise
    return report, info


def stamp_window(header: ExchangeHeader) -> str:
    """Human description of what an exchange file covers (for messages)."""
    if header.since is None and header.until is None:
        return "everything"
    return f"changes from {_iso(header.since) or 'the start'} to {_iso(header.until) or 'now'}"


__all__ = ["FORMAT", "ExchangeFileRefused", "ExchangeHeader", "MergeMode", "check_related",
           "export_file_name", "export_repository", "import_file", "read_header",
           "stamp_window", "verify_file"]
