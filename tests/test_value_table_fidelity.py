"""Value tables as Esri's users write them (SPEC §2.2, issue 11 points 2 and 6): Esri's own
sample form is read silently, unknown ``connected`` values skip a Synchronize child, times that
read both ways warn, and malformed rows say what to change."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from wmx.valuetable import ChildRow, ValueTableError, parse_child_rows

ESRI_SAMPLE = (
    "Ohio_Repository true http://ohioServer/arcgis/rest/services/SO/WMServer 2011-08-08 12:00;"
    "AZ_Repository true http://AZServer/arcgis/rest/services/SO/WMServer 2011-08-08 12:00"
)


def local_utc(*parts: int) -> datetime:
    """A naive time is the local time of this machine (SPEC §2.2), stored in UTC."""
    return datetime(*parts).astimezone(timezone.utc)


def test_esris_unquoted_sample_time_is_read_silently():
    rows, warnings = parse_child_rows(ESRI_SAMPLE, synchronize=True)
    assert [row.last_sync_time for row in rows] == [local_utc(2011, 8, 8, 12, 0)] * 2
    assert warnings == []


def test_unquoted_time_with_seconds_and_a_status_word_is_read_silently():
    rows, warnings = parse_child_rows(
        "A true http://a/WMServer 2011-08-08 12:00:30 FAILED", synchronize=True)
    assert rows[0].last_sync_time == local_utc(2011, 8, 8, 12, 0, 30)
    assert warnings == []


@pytest.mark.parametrize("flag", ["no", "disconnected", "NO", "maybe", "#", "off"])
def test_a_synchronize_child_whose_connected_is_not_true_is_skipped_with_a_warning(flag):
    rows, warnings = parse_child_rows(
        f"Ohio true http://ohio/WMServer #;Texas {flag} http://texas/WMServer #",
        synchronize=True)
    assert rows[1] == ChildRow("Texas", False, "http://texas/WMServer", None)
    assert len(warnings) == 1
    shown = "#" if flag == "#" else flag
    assert warnings[0].startswith(f"Row 2: connected is {shown}")
    assert "Texas is skipped" in warnings[0] and "true" in warnings[0]


def test_a_synchronize_child_with_connected_false_is_skipped_without_a_warning():
    rows, warnings = parse_child_rows("Texas false http://texas/WMServer #", synchronize=True)
    assert rows[0].connected is False
    assert warnings == []


def test_replicate_still_refuses_a_connected_value_it_cannot_read():
    """Replicate gives ``false`` a meaning (export to a folder), so it never guesses."""
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows("Texas no http://texas/WMServer", synchronize=False)
    assert caught.value.code == 800


@pytest.mark.parametrize("text, month_first, day_first", [
    ("01/12/2026", (2026, 1, 12), "2026-12-01"),
    ("'03/04/2026 10:00:00'", (2026, 3, 4, 10), "2026-04-03"),
    ("'08/01/2013 11:30:45'", (2013, 8, 1, 11, 30, 45), "2013-01-08"),  # Esri's own example
])
def test_a_time_that_reads_both_ways_is_read_month_first_with_a_warning(
        text, month_first, day_first):
    rows, warnings = parse_child_rows(f"A true http://a/WMServer {text}", synchronize=True)
    assert rows[0].last_sync_time == local_utc(*month_first)
    assert len(warnings) == 1
    assert "month-first" in warnings[0] and "day-first" in warnings[0]
    assert day_first in warnings[0]
    assert "as {:04d}-{:02d}-{:02d}".format(*month_first[:3]) in warnings[0]


@pytest.mark.parametrize("text", ["08/13/2013 11:30:45", "13/01/2026", "12/12/2026",
                                  "2026-01-12 08:00"])
def test_a_time_that_reads_only_one_way_does_not_warn(text):
    try:
        _, warnings = parse_child_rows(f"A true http://a/WMServer '{text}'", synchronize=True)
    except ValueTableError as error:  # 13/01/2026 is no month-first date: refused, not guessed
        assert "month/day/year" in error.message
        return
    assert warnings == []


def test_an_unquoted_path_with_spaces_suggests_quoting_it():
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows("Child1 true C:/My Data/child1.wmxdb", synchronize=True)
    assert "not a date and time" in caught.value.message
    assert "'C:/My Data/child1.wmxdb'" in caught.value.message
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows("Child1 true C:/My Data/child1.wmxdb #", synchronize=True)
    assert "'C:/My Data/child1.wmxdb'" in caught.value.message
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows("Child1 true C:/My Data/child1.wmxdb", synchronize=False)
    assert "'C:/My Data/child1.wmxdb'" in caught.value.message


def test_a_synchronize_row_with_too_few_values_says_three_or_four_are_accepted():
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows("A true", synchronize=True)
    assert "Expected 3 or 4 values" in caught.value.message
    assert "Expected 4 values" not in caught.value.message


def test_synchronize_skips_a_child_marked_no_and_still_succeeds(cluster):
    from wmx import arcpy

    child1, child2 = cluster.child_paths["Child1"], cluster.child_paths["Child2"]
    result = arcpy.SynchronizeJobData_wmx(
        str(cluster.parent_path), "Parent", f"Child1 true {child1} #;Child2 no {child2} #")
    assert result.status == 4 and result[0] == "0"
    assert "connected is no" in result.getMessages(1)
    assert [(row.name, row.status) for row in result.last_sync] == [
        ("Child1", "OK"), ("Child2", "SKIPPED")]


def test_a_connected_cell_whose_repr_raises_still_only_skips_the_child():
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

        __str__ = __repr__

    rows, warnings = parse_child_rows([["Texas", Hostile(), "http://texas/WMServer"]],
                                      synchronize=True)
    assert rows[0].connected is False
    assert "connected is a Hostile" in warnings[0]
