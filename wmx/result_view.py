"""What a Result says per child, and its notebook view: the records behind ``result.children``
and ``to_dataframe()``, the status badge, and the HTML ``Result._repr_html_`` returns.

Everything is read from the Result itself (its status, the status output, ``Output_LastSync``
and the messages), so a kept Result renders the same in any later session. The badge follows
the status output and the children, never the closing verb alone: a run with a FAILED child is
never shown as a success. This module must never run a tool or change a Result.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Optional

import attrs

from wmx.errors import REPLICATION_CONFLICT
from wmx.messages import ERROR, INFORMATIVE, WARNING, Message
from wmx.result import FAILED, LAST_SYNC_OUTPUT, Result
from wmx.valuetable import LastSyncRow, ValueTableError, format_time

_SYNC_COUNTS = re.compile(
    r"(?P<pulled_new>\d+) new, (?P<pulled_changed>\d+) changed, (?P<pulled_deleted>\d+) deleted "
    r"element\(s\) consolidated into the parent; (?P<pushed_new>\d+) new, "
    r"(?P<pushed_changed>\d+) changed, (?P<pushed_deleted>\d+) deleted element\(s\) sent"
)
_COPIED = re.compile(r"\((?P<copied>\d+) element\(s\)\)|exported (?P<exported>\d+) element\(s\)")

GREEN, AMBER, RED, GREY = "#1a7f37", "#9a6700", "#cf222e", "#57606a"
_STATUS_COLOURS = {"OK": GREEN, "FAILED": RED, "SKIPPED": GREY}
_SEVERITY_COLOURS = {WARNING: AMBER, ERROR: RED}


@attrs.frozen
class ChildReport:
    """One child of a replicate or synchronize run: its ``Output_LastSync`` row, the message
    the tool wrote about it, and the element counts that message gives (None when it gives
    none, e.g. for a failed or skipped child)."""

    name: str
    connected: bool
    url: str
    last_sync_time: Optional[datetime]
    status: str
    message: Optional[str] = None
    pulled_new: Optional[int] = None
    pulled_changed: Optional[int] = None
    pulled_deleted: Optional[int] = None
    pushed_new: Optional[int] = None
    pushed_changed: Optional[int] = None
    pushed_deleted: Optional[int] = None
    copied: Optional[int] = None

    @property
    def counts(self) -> str:
        """``pulled 0 new, 1 changed, 0 deleted; pushed ...`` or ``copied 120``; "" if none."""
        if self.pulled_new is not None:
            return (f"pulled {self.pulled_new} new, {self.pulled_changed} changed, "
                    f"{self.pulled_deleted} deleted; pushed {self.pushed_new} new, "
                    f"{self.pushed_changed} changed, {self.pushed_deleted} deleted")
        return f"copied {self.copied}" if self.copied is not None else ""


def _about(message: Message, name: str) -> bool:
    """The tools start a child's lines with ``Name: `` or ``Name (location) failed``."""
    return message.text.startswith((f"{name}: ", f"{name} ("))


def conflict_lines(messages: Sequence[Message]) -> list[str]:
    """The conflict warnings of a run, as the tool wrote them."""
    return [m.text for m in messages if m.code == REPLICATION_CONFLICT]


def child_reports(rows: Sequence[LastSyncRow], messages: Sequence[Message]) -> list[ChildReport]:
    """One report per last-sync row; a child's message is its most severe line."""
    reports = []
    for row in rows:
        lines = [m for m in messages if _about(m, row.name)]
        line = max(lines, key=lambda m: m.severity, default=None)
        text = line.text if line is not None else None
        counts: dict[str, int] = {}
        if text is not None:
            found = _SYNC_COUNTS.search(text) or _COPIED.search(text)
            if found:
                counts = {key: int(value) for key, value in found.groupdict().items()
                          if value is not None}
                if "exported" in counts:
                    counts["copied"] = counts.pop("exported")
        reports.append(ChildReport(row.name, row.connected, row.url, row.last_sync_time,
                                   row.status, text, **counts))
    return reports


def _readable_children(result: Result) -> list[ChildReport]:
    """The children, or [] when the last-sync output cannot be read (a hand-built Result):
    the view then shows that output as text rather than failing to render."""
    try:
        return result.children
    except ValueTableError:
        return []


def badge(result: Result) -> tuple[str, str]:
    """(text, colour): red when the tool failed and no child succeeded, amber when a child
    failed or the status output is non-zero, or when there were warnings, else green."""
    children = _readable_children(result)
    failed = [c for c in children if c.status == "FAILED"]
    succeeded = [c for c in children if c.status == "OK"]
    try:
        status_output = result.status_code
    except ValueError:
        status_output = None
    if (result.status == FAILED or failed) and not succeeded:
        return "Failed", RED
    if failed or status_output or result.status == FAILED:
        return "Completed with errors", AMBER
    if result.maxSeverity > INFORMATIVE:
        return "Succeeded with warnings", AMBER
    return "Succeeded", GREEN


def _cell(text: str, colour: Optional[str] = None) -> str:
    style = f" style='color:{colour};font-weight:bold'" if colour else ""
    return f"<td{style}>{html.escape(text)}</td>"


def _children_table(children: Sequence[ChildReport]) -> str:
    head = "".join(f"<th>{label}</th>" for label in
                   ("Child", "Location", "Status", "Last sync", "Counts", "Message"))
    body = "".join(
        "<tr>" + _cell(c.name) + _cell(c.url) + _cell(c.status, _STATUS_COLOURS.get(c.status))
        + _cell(format_time(c.last_sync_time) if c.last_sync_time else "") + _cell(c.counts)
        + _cell(c.message or "") + "</tr>"
        for c in children
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(children: Sequence[ChildReport]) -> str:
    processed = [c for c in children if c.status != "SKIPPED"]
    failed = [c for c in processed if c.status == "FAILED"]
    skipped = len(children) - len(processed)
    parts = [f"{len(failed)} of {len(processed)} children failed" if failed
             else f"{len(processed)} children OK"]
    if skipped:
        parts.append(f"{skipped} skipped")
    return ", ".join(parts)


def _output_text(name: str, value: str, children: Sequence[ChildReport]) -> str:
    """An output as shown; the last-sync table is the per-child table, not its string."""
    if children and name.casefold() == LAST_SYNC_OUTPUT.casefold():
        return f"(the per-child table above: {len(children)} rows)"
    return value


def render_html(result: Result) -> str:
    """The notebook view: badge, per-child table, conflicts, other outputs, messages."""
    esc = html.escape
    text, colour = badge(result)
    children = _readable_children(result)
    status_line = f"status {esc(result[0])}" if result.outputCount else ""
    if children:
        status_line += f" &middot; {esc(_summary(children))}"
    parts = [
        "<div class='wmx-result'>",
        f"<p><span class='wmx-badge' style='background:{colour};color:#fff;padding:1px 8px;"
        f"border-radius:8px'>{esc(text)}</span> <b>{esc(result.tool_name)}</b> {status_line}</p>",
    ]
    if children:
        parts.append(_children_table(children))
    if result.conflicts:
        items = "".join(f"<li>{esc(line)}</li>" for line in result.conflicts)
        parts.append(f"<details open><summary>Conflicts ({len(result.conflicts)})</summary>"
                     f"<ul>{items}</ul></details>")
    outputs = "".join(
        f"<tr><td>{index}</td><td>{esc(name)}</td><td style='text-align:left;"
        f"white-space:pre-wrap'>{esc(_output_text(name, value, children))}</td></tr>"
        for index, (name, value) in enumerate(result.outputs)
    )
    parts.append("<details><summary>Outputs</summary><table><thead><tr><th>#</th>"
                 f"<th>Output</th><th>Value</th></tr></thead><tbody>{outputs}</tbody></table>"
                 "</details>")
    lines = "".join(
        f"<div style='color:{_SEVERITY_COLOURS[m.severity]}'>{esc(m.rendered)}</div>"
        if m.severity in _SEVERITY_COLOURS else f"<div>{esc(m.rendered)}</div>"
        for m in result.messages
    )
    parts.append("<details open><summary>Messages</summary>"
                 f"<div style='font-family:monospace'>{lines}</div></details></div>")
    return "".join(parts)
