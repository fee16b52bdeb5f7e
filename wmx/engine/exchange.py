"""Exchange files for disconnected children (Esri's Export/Import Job Data, ``.jxl``).

Esri never published the JXL layout, so wmx defines its own, documented in
docs/exchange-format.md: UTF-8 XML, one ``Element`` per element version (tombstones included)
carrying GUID, kind, stamps and the Esri JSON body, attachment bytes in base64. Files are
written and read as streams, so repository size does not drive memory. Like the rest of the
engine, this module sees repositories only through the Repository protocol.
"""

from __future__ import annotations

import base64
import enum
import os
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Optional
from xml.sax.saxutils import escape, quoteattr

import attrs

from wmx import progress
from wmx.model.changes import ROW_FIELDS, Change
from wmx.model.clock import stamp_from_datetime
from wmx.repository.base import ApplyReport, InvalidRequest, NodeInfo, Repository

FORMAT = "wmx-jxl/1"
PAGE_SIZE = 5000


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


def _write_element(out: IO[str], change: Change) -> None:
    attributes = " ".join(
        f"{name}={quoteattr(str(value))}" for name, value in (
            ("guid", change.guid), ("kind", change.kind), ("hlc", change.hlc),
            ("origin", change.origin), ("deleted", int(change.deleted)),
            ("intId", "" if change.int_id is None else change.int_id),
            ("jobGuid", change.job_guid or ""), ("name", change.name or ""),
            ("nameSet", int(change.name is not None))))
    out.write(f"  <Element {attributes}>")
    if change.body is not None:
        out.write(f"<Body>{escape(change.body)}</Body>")
    if change.content is not None:
        out.write(f"<Content>{base64.b64encode(change.content).decode()}</Content>")
    out.write("</Element>\n")


def export_repository(repository: Repository, folder: str | Path, *,
                      since: Optional[datetime] = None, until: Optional[datetime] = None,
                      id_block_start: Optional[int] = None) -> tuple[Path, int]:
    """Write the repository (or the changes stamped in [since, until)) into ``folder``.

    The file appears under its final name only once complete (written beside it, then
    renamed), so a reader never sees half a file. Returns the path and the element count.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidRequest(f"Folder {folder} does not exist")
    info = repository.info()
    now = datetime.now(timezone.utc)
    target = folder / export_file_name(info.name, now)
    header = {"format": FORMAT, "repository": info.name, "nodeId": info.node_id,
              "exportedAt": _iso(now), "since": _iso(since), "until": _iso(until),
              "idBlockStart": "" if id_block_start is None else str(id_block_start)}
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
                _write_element(out, Change.from_row(row))
                count += 1
            out.write("</WMXExchange>\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target, count


def read_header(path: str | Path) -> ExchangeHeader:
    for _, element in ElementTree.iterparse(str(path), events=("start",)):
        if element.tag != "WMXExchange" or element.get("format") != FORMAT:
            raise InvalidRequest(f"{path} is not a wmx exchange file")
        block = element.get("idBlockStart")
        return ExchangeHeader(repository=element.get("repository", ""),
                              node_id=element.get("nodeId", ""),
                              exported_at=_from_iso(element.get("exportedAt")) or
                              datetime.now(timezone.utc),
                              since=_from_iso(element.get("since")),
                              until=_from_iso(element.get("until")),
                              id_block_start=int(block) if block else None)
    raise InvalidRequest(f"{path} is empty")


def read_changes(path: str | Path) -> Iterator[Change]:
    """Stream the element versions of an exchange file."""
    try:
        for _, element in ElementTree.iterparse(str(path), events=("end",)):
            if element.tag != "Element":
                continue
            body = element.findtext("Body")
            content = element.findtext("Content")
            int_id = element.get("intId")
            yield Change(
                guid=element.get("guid", ""), kind=element.get("kind", ""),
                hlc=int(element.get("hlc", "0")), origin=element.get("origin", ""),
                deleted=element.get("deleted") == "1",
                int_id=int(int_id) if int_id else None,
                job_guid=element.get("jobGuid") or None,
                name=element.get("name") if element.get("nameSet") == "1" else None,
                body=body, content=base64.b64decode(content) if content is not None else None)
            element.clear()
    except (ElementTree.ParseError, ValueError) as exc:
        raise InvalidRequest(f"{path} is not a valid exchange file: {exc}") from None


def _batches(changes: Iterator[Change], size: int) -> Iterator[list[Change]]:
    batch: list[Change] = []
    for change in changes:
        batch.append(change)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_file(repository: Repository, path: str | Path,
                mode: MergeMode = MergeMode.COMBINE) -> tuple[ApplyReport, NodeInfo]:
    """Load an exchange file: COMBINE merges (newest version wins, ``_1`` renames);
    REPLACE swaps the repository's contents for the file's, atomically."""
    header = read_header(path)
    local = repository.info()
    report = ApplyReport()
    if mode is MergeMode.REPLACE:
        load_id = repository.begin_load()
        try:
            for batch in progress.track(_batches(read_changes(path), PAGE_SIZE),
                                        f"import {local.name}", size=len):
                repository.load_rows(load_id, [c.to_row() for c in batch])
                report.inserted += len(batch)
            info = repository.commit_load(
                load_id, parent_node_id=header.node_id,
                id_block_start=header.id_block_start or local.id_block_start)
        except BaseException:
            repository.abort_load(load_id)
            raise
        return report, info
    for batch in progress.track(_batches(read_changes(path), PAGE_SIZE), f"import {local.name}",
                                size=len):
        report.add(repository.apply(batch, parent_node=local.node_id,
                                    source_node=header.node_id))
    return report, repository.info()


def stamp_window(header: ExchangeHeader) -> str:
    """Human description of what an exchange file covers (for messages)."""
    if header.since is None and header.until is None:
        return "everything"
    return f"changes from {_iso(header.since) or 'the start'} to {_iso(header.until) or 'now'}"


__all__ = ["FORMAT", "ExchangeHeader", "MergeMode", "export_file_name", "export_repository",
           "import_file", "read_changes", "read_header", "stamp_window"]
