"""The notebook view of a Result (issue 11, point 9): a badge that tells the truth about a
partly failed run, a per-child table instead of one long value-table string, conflicts listed,
and the same per-child data as records (``result.children``) and as a DataFrame."""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser

import pytest

from tests.conftest import ADMIN, make_cluster
from wmx import arcpy
from wmx.messages import TYPE_START, TYPE_STOP, MessageLog
from wmx.result import FAILED, SUCCEEDED, Result
from wmx.valuetable import LastSyncRow, format_last_sync


class _Cells(HTMLParser):
    """The text of every table cell, row by row, and the badge's text and colour."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.badge: tuple[str, str] = ("", "")
        self._in_cell = self._in_badge = False
        self._style = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._in_cell = True
            self.rows[-1].append("")
        elif "wmx-badge" in (attributes.get("class") or ""):
            self._in_badge, self._style = True, attributes.get("style") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False
        elif tag == "span" and self._in_badge:
            self._in_badge = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data
        if self._in_badge:
            self.badge = (self.badge[0] + data, self._style)


def view(result: Result) -> _Cells:
    parsed = _Cells()
    parsed.feed(result._repr_html_())
    return parsed


GREEN, AMBER, RED = "#1a7f37", "#9a6700", "#cf222e"


@pytest.fixture(scope="module")
def partly_failed(tmp_path_factory) -> Result:
    """A real sync: Child1 synchronized with a conflict (the parent's newer edit wins and is
    sent to it), Child2 skipped, Texas missing. Built once: the tests only read it."""
    tmp_path = tmp_path_factory.mktemp("partly_failed")
    cluster = make_cluster(tmp_path)
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    cluster.sync()
    with cluster.child("Child1") as child:
        child.update_job(job.id, user=ADMIN, description="from Ohio")
    with cluster.parent() as parent:
        parent.update_job(job.id, user=ADMIN, description="from the parent")
    child1, child2 = cluster.child_paths["Child1"], cluster.child_paths["Child2"]
    return arcpy.SynchronizeJobData_wmx(
        str(cluster.parent_path), "Parent",
        f"Child1 true {child1} #;Child2 false {child2} #;Texas true {tmp_path / 'gone.wmxdb'} #")


def test_a_partly_failed_sync_shows_an_amber_badge_never_succeeded(partly_failed):
    assert partly_failed[0] == "1"
    shown = view(partly_failed)
    text, style = shown.badge
    assert text == "Completed with errors"
    assert AMBER in style
    assert "1 of 2 children failed" in partly_failed._repr_html_()


def test_the_per_child_table_has_name_location_status_time_counts_and_message(partly_failed):
    rows = view(partly_failed).rows
    header = rows[0]
    assert header == ["Child", "Location", "Status", "Last sync", "Counts", "Message"]
    by_name = {row[0]: row for row in rows[1:4]}
    assert set(by_name) == {"Child1", "Child2", "Texas"}
    assert by_name["Child1"][1].endswith("child1.wmxdb")
    assert [by_name[n][2] for n in ("Child1", "Child2", "Texas")] == ["OK", "SKIPPED", "FAILED"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", by_name["Child1"][3])
    assert by_name["Texas"][3] == ""
    assert by_name["Child1"][4] == ("pulled 0 new, 0 changed, 0 deleted; "
                                    "pushed 0 new, 1 changed, 0 deleted")
    assert "does not exist" in by_name["Texas"][5]
    assert "not connected" in by_name["Child2"][5]
    assert "Child1 true" not in partly_failed._repr_html_()  # no raw value-table string


def test_conflicts_are_listed(partly_failed):
    page = partly_failed._repr_html_()
    assert "Conflicts (1)" in page
    assert partly_failed.conflicts and "changed on both sides" in partly_failed.conflicts[0]
    assert partly_failed.conflicts[0] in page.replace("&#x27;", "'")


def test_children_records_and_the_dataframe_hold_the_same_data_as_the_table(partly_failed):
    children = partly_failed.children
    assert [(c.name, c.status) for c in children] == [
        ("Child1", "OK"), ("Child2", "SKIPPED"), ("Texas", "FAILED")]
    ohio = children[0]
    assert (ohio.pulled_new, ohio.pulled_changed, ohio.pulled_deleted) == (0, 0, 0)
    assert (ohio.pushed_new, ohio.pushed_changed, ohio.pushed_deleted) == (0, 1, 0)
    assert ohio.last_sync_time is not None and ohio.connected is True
    assert children[2].pulled_changed is None and "does not exist" in children[2].message
    pandas = pytest.importorskip("pandas")
    frame = partly_failed.to_dataframe()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame["name"]) == ["Child1", "Child2", "Texas"]
    assert list(frame.columns[:5]) == ["name", "connected", "url", "last_sync_time", "status"]
    assert "message" in frame.columns and "pulled_changed" in frame.columns


def test_to_dataframe_without_pandas_says_what_to_install(partly_failed, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install pandas.*result\.children"):
        partly_failed.to_dataframe()


def _made(status: int, status_output: str, rows: list[LastSyncRow], warn: bool = False,
          verb: str = "Succeeded") -> Result:
    log = MessageLog()
    log.add_message("Start Time: Saturday, November 21, 2026 10:00:00 AM", message_type=TYPE_START)
    if warn:
        log.add_warning("Row 1: something to look at")
    log.add_message(f"{verb} at Saturday, November 21, 2026 10:00:01 AM", message_type=TYPE_STOP)
    return Result("SynchronizeJobData", [],
                  [("Output_SynchronizeReplicaStatus", status_output),
                   ("Output_LastSync", format_last_sync(rows))], log, status)


OK_ROW = LastSyncRow("Ohio", True, "http://ohio/WMServer", None, "OK")
FAILED_ROW = LastSyncRow("AZ", True, "http://az/WMServer", None, "FAILED")


@pytest.mark.parametrize("result, text, colour", [
    (_made(SUCCEEDED, "0", [OK_ROW]), "Succeeded", GREEN),
    (_made(SUCCEEDED, "0", [OK_ROW], warn=True), "Succeeded with warnings", AMBER),
    # the closing verb alone would say Succeeded: the status output and the child say otherwise
    (_made(SUCCEEDED, "1", [OK_ROW, FAILED_ROW]), "Completed with errors", AMBER),
    (_made(FAILED, "1", [FAILED_ROW], verb="Failed"), "Failed", RED),
    (_made(FAILED, "", [], verb="Failed"), "Failed", RED),
])
def test_the_badge_follows_the_status_output_and_the_children(result, text, colour):
    badge_text, style = view(result).badge
    assert badge_text == text
    assert colour in style


def test_a_result_whose_last_sync_output_cannot_be_read_still_renders_it_as_text():
    broken = Result("SynchronizeJobData", [], [("Output_SynchronizeReplicaStatus", "0"),
                                              ("Output_LastSync", "'never closed")], MessageLog())
    page = broken._repr_html_()
    assert "&#x27;never closed" in page
    assert view(broken).badge[0] == "Succeeded"
