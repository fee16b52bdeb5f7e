"""Value tables: the string grammar, arcpy's ValueTable API, last-sync times, the WMX child rows
of Input_Multi_Name and the Output_LastSync round trip."""

from __future__ import annotations

import contextlib
import doctest
import pickle
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmx.valuetable import (
    ChildRow,
    LastSyncRow,
    ValueTable,
    ValueTableError,
    format_cell,
    format_last_sync,
    format_time,
    format_value_table,
    parse_bool,
    parse_child_rows,
    parse_last_sync,
    parse_time,
    parse_value_table,
)

ESRI_SYNC_SAMPLE = (
    "Ohio_Repository true http://ohioServer/arcgis/rest/services/SO/WMServer 2011-08-08 12:00;"
    "AZ_Repository true http://AZServer/arcgis/rest/services/SO/WMServer 2011-08-08 12:00"
)
ESRI_REPLICATE_SAMPLE = (
    "Ohio_Repository true http://ohioServer/arcgis/services/SO/WMServer;\n"
    "AZ_Repository true http://AZServer/arcgis/services/SO/WMServer"
)
UTC = timezone.utc


def local_as_utc(*parts: int) -> datetime:
    """What a naive time means: local time of this machine, converted to UTC."""
    return datetime(*parts).astimezone(UTC)


# --- grammar ----------------------------------------------------------------------------------


def test_rows_split_on_semicolons_and_columns_on_white_space():
    assert parse_value_table("counties 2;parcels 1") == [["counties", "2"], ["parcels", "1"]]
    assert parse_value_table("a\tb \n c ;\r\n d") == [["a", "b", "c"], ["d"]]


def test_quoted_values_hold_spaces_semicolons_and_line_breaks():
    assert parse_value_table("'c:/temp/land use.shp' 2") == [["c:/temp/land use.shp", "2"]]
    assert parse_value_table("'a;b' \"c d\";'x\ny'") == [["a;b", "c d"], ["x\ny"]]


def test_doubled_quotes_escape_a_quote():
    assert parse_value_table('\'it\'\'s\' "say ""hi"""') == [["it's", 'say "hi"']]
    assert parse_value_table("''''") == [["'"]]


def test_hash_is_an_empty_cell_but_a_quoted_hash_is_text():
    assert parse_value_table("a # '#' #x ''") == [["a", None, "#", "#x", ""]]


def test_quotes_inside_an_unquoted_value_are_literal():
    assert parse_value_table("O'Brien true") == [["O'Brien", "true"]]


def test_empty_rows_and_empty_text_are_skipped():
    assert parse_value_table("") == []
    assert parse_value_table(" ;\n; ") == []
    assert parse_value_table("a;;b;") == [["a"], ["b"]]


@pytest.mark.parametrize(
    ("text", "row", "fragment"),
    [
        ("'never closed", 1, "never closed"),
        ("a b;c 'd", 2, "character 7 is never closed"),
        ('"x', 1, "never closed"),
        ("'a'b", 1, "must be followed by"),
        ("x;'a''''b'c", 2, "must be followed by"),
    ],
)
def test_text_the_grammar_cannot_parse_is_rejected(text, row, fragment):
    with pytest.raises(ValueTableError) as caught:
        parse_value_table(text)
    assert caught.value.row == row
    assert fragment in str(caught.value)
    assert caught.value.code == 589


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, "#"),
        ("", "''"),
        ("#", "'#'"),
        ("plain", "plain"),
        ("two words", "'two words'"),
        ("a;b", "'a;b'"),
        ("it's", "'it''s'"),
        ('say "x"', "'say \"x\"'"),
        ("line\nbreak", "'line\nbreak'"),
        ("#x", "#x"),
    ],
)
def test_format_cell_quotes_only_when_needed(value, written):
    assert format_cell(value) == written


def test_format_value_table_joins_rows_with_semicolons():
    assert format_value_table([["a b", None], ["c", ""]]) == "'a b' #;c ''"


# --- ValueTable -------------------------------------------------------------------------------


def test_value_table_constructor_forms():
    assert ValueTable().columnCount == 1
    assert ValueTable(3).columnCount == 3
    assert ValueTable("GPLong").columnCount == 1
    assert ValueTable(["GPFeatureLayer", "GPLong"]).columnCount == 2
    assert ValueTable(None).columnCount == 0
    with pytest.raises(ValueError):
        ValueTable(-1)
    with pytest.raises(TypeError):
        ValueTable([1, 2])


def test_value_table_rows_and_values():
    vt = ValueTable(["GPFeatureLayer", "GPLong"])
    vt.addRow("'c:/temp/land use.shp' 2")
    vt.addRow(["parcels", 1])
    assert vt.rowCount == 2
    assert vt.getRow(0) == "'c:/temp/land use.shp' 2"
    assert vt.getValue(0, 0) == "c:/temp/land use.shp"
    assert vt.getValue(1, 1) == "1"
    assert vt.getTrueValue(1, 1) == 1
    assert vt.getTrueRow(0) == ["c:/temp/land use.shp", 2]
    assert vt.exportToString() == "'c:/temp/land use.shp' 2;parcels 1"
    assert str(vt) == vt.exportToString()
    vt.setRow(0, "roads 5")
    vt.setValue(1, 1, 7)
    assert vt.exportToString() == "roads 5;parcels 7"
    vt.removeRow(0)
    assert vt.exportToString() == "parcels 7"
    assert "rows=1" in repr(vt)


def test_true_values_by_column_type():
    vt = ValueTable(["GPString", "GPLong", "GPDouble", "GPBoolean", "GPDate"])
    vt.addRow(["x", "12", 1.5, True, datetime(2011, 8, 8, 12, 0, tzinfo=UTC)])
    assert vt.getRow(0) == "x 12 1.5 true 2011-08-08T12:00:00Z"
    assert vt.getTrueRow(0) == ["x", 12, 1.5, True, datetime(2011, 8, 8, 12, tzinfo=UTC)]
    vt.addRow("y # # FALSE '08/01/2013 11:30:45'")
    assert vt.getTrueRow(1) == ["y", None, None, False, local_as_utc(2013, 8, 1, 11, 30, 45)]
    assert vt.getValue(1, 1) == ""


def test_missing_trailing_cells_are_empty_and_extra_cells_are_rejected():
    vt = ValueTable(3)
    vt.addRow("a")
    assert vt.getRow(0) == "a # #"
    with pytest.raises(ValueTableError, match="4 values given for 3 columns"):
        vt.addRow("a b c d")
    with pytest.raises(ValueTableError, match="exactly one row"):
        vt.addRow("a;b")


def test_typed_cells_are_checked_on_entry():
    vt = ValueTable(["GPString", "GPLong"])
    with pytest.raises(ValueTableError, match="not a valid GPLong"):
        vt.addRow("a many")
    vt.addRow("a 1")
    with pytest.raises(ValueTableError):
        vt.setValue(0, 1, "x")
    with pytest.raises(ValueTableError):
        vt.setValue(0, 0, {"not": "a cell"})
    assert vt.getRow(0) == "a 1"


def test_index_errors_use_arcpy_wording():
    vt = ValueTable(2)
    vt.addRow("a b")
    with pytest.raises(IndexError, match=r"^The index 1 is out of range\.$"):
        vt.getRow(1)
    with pytest.raises(IndexError):
        vt.getValue(0, 2)
    with pytest.raises(IndexError):
        vt.removeRow(-1)
    with pytest.raises(TypeError, match="Invalid argument type"):
        vt.getValue("0", 0)
    with pytest.raises(TypeError):
        vt.setRow(0, ["a", "b"])


def test_load_from_string_replaces_rows_and_widens_columns():
    vt = ValueTable(1)
    vt.addRow("old")
    vt.loadFromString("a b;c")
    assert vt.columnCount == 2
    assert vt.rowCount == 2
    assert vt.getTrueRow(1) == ["c", None]
    with pytest.raises(ValueTableError):
        vt.loadFromString("'broken")
    assert vt.exportToString() == "a b;c #"


def test_columns_can_be_added_and_set():
    vt = ValueTable(1)
    vt.addRow("a")
    vt.addColumns(["GPLong"])
    assert vt.getRow(0) == "a #"
    vt.setValue(0, 1, 3)
    vt.setColumns(["GPString", "GPString", "GPString"])
    assert vt.getTrueRow(0) == ["a", "3", None]
    with pytest.raises(ValueTableError):
        vt.setColumns(1)
    with pytest.raises(ValueTableError):
        vt.setColumns(["GPString", "GPBoolean", "GPString"])
    assert vt.columnCount == 3


def test_a_table_without_columns_refuses_rows():
    with pytest.raises(ValueTableError, match="no columns"):
        ValueTable(0).addRow("a")


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2011-08-08T12:00:00Z", datetime(2011, 8, 8, 12, tzinfo=UTC)),
        ("2011-08-08T12:00:00+02:00", datetime(2011, 8, 8, 10, tzinfo=UTC)),
        ("2011-08-08 12:00:30-0500", datetime(2011, 8, 8, 17, 0, 30, tzinfo=UTC)),
        ("2011-08-08t12:00z", datetime(2011, 8, 8, 12, tzinfo=UTC)),
        ("  2011-08-08T12:00:00.250Z ", datetime(2011, 8, 8, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time_with_a_zone(text, expected):
    assert parse_time(text) == expected
    assert parse_time(text).tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("2011-08-08 12:00", (2011, 8, 8, 12, 0)),
        ("2011-08-08 12:00:05", (2011, 8, 8, 12, 0, 5)),
        ("2011-08-08T12:00", (2011, 8, 8, 12, 0)),
        ("2011-08-08", (2011, 8, 8)),
        ("08/01/2013 11:30:45", (2013, 8, 1, 11, 30, 45)),
        ("8/1/2013 11:30", (2013, 8, 1, 11, 30)),
        ("12/09/2010 2:14:30 PM", (2010, 12, 9, 14, 14, 30)),
        ("12/09/2010 12:14:30 am", (2010, 12, 9, 0, 14, 30)),
        ("12/09/2010 12:00:00PM", (2010, 12, 9, 12, 0, 0)),
    ],
)
def test_parse_time_without_a_zone_is_local_time(text, parts):
    assert parse_time(text) == local_as_utc(*parts)


def test_parse_time_accepts_datetime_and_date_objects():
    aware = datetime(2011, 8, 8, 12, tzinfo=timezone(timedelta(hours=-7)))
    assert parse_time(aware) == datetime(2011, 8, 8, 19, tzinfo=UTC)
    assert parse_time(datetime(2011, 8, 8, 12)) == local_as_utc(2011, 8, 8, 12)
    assert parse_time(date(2011, 8, 8)) == local_as_utc(2011, 8, 8)


@pytest.mark.parametrize(
    "text",
    [
        "13/08/2013 10:00:00",  # day first: never guessed
        "08/01/13 10:00:00",  # two-digit year
        "01.08.2013 10:00",
        "Aug 8 2011 12:00",
        "2011-08-08 25:00",
        "2011-02-30",
        "12/09/2010 13:14:30 PM",
        "yesterday",
        "",
        "2011-08-08 12:00 extra",
    ],
)
def test_parse_time_rejects_ambiguous_or_unparsable_text(text):
    with pytest.raises(ValueTableError) as caught:
        parse_time(text)
    assert caught.value.column == "last_sync_time"
    assert "YYYY-MM-DD" in caught.value.message


def test_parse_time_rejects_other_types():
    with pytest.raises(ValueTableError) as caught:
        parse_time(1312804800)
    assert caught.value.code == 623


def test_format_time_is_iso_utc_and_drops_sub_seconds():
    moment = datetime(2011, 8, 8, 14, 0, 5, 999999, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2011-08-08T12:00:05Z"
    assert format_time(datetime(2011, 8, 8, 12)) == format_time(local_as_utc(2011, 8, 8, 12))


# --- child rows -------------------------------------------------------------------------------


def test_esri_synchronize_sample_parses_silently():
    rows, warnings = parse_child_rows(ESRI_SYNC_SAMPLE, synchronize=True)
    noon = local_as_utc(2011, 8, 8, 12, 0)
    assert rows == [
        ChildRow(
            "Ohio_Repository", True, "http://ohioServer/arcgis/rest/services/SO/WMServer", noon
        ),
        ChildRow("AZ_Repository", True, "http://AZServer/arcgis/rest/services/SO/WMServer", noon),
    ]
    assert warnings == []  # SPEC §2.2: Esri's documented unquoted form is read silently


def test_esri_multi_line_replicate_sample():
    rows, warnings = parse_child_rows(ESRI_REPLICATE_SAMPLE, synchronize=False)
    assert [(r.name, r.connected, r.url, r.last_sync_time) for r in rows] == [
        ("Ohio_Repository", True, "http://ohioServer/arcgis/services/SO/WMServer", None),
        ("AZ_Repository", True, "http://AZServer/arcgis/services/SO/WMServer", None),
    ]
    assert warnings == []


def test_quoted_time_and_us_time_need_no_warning():
    rows, warnings = parse_child_rows(
        "A true http://a/WMServer '08/13/2013 11:30:45';B FALSE C:/exchange #", synchronize=True
    )
    assert rows[0].last_sync_time == local_as_utc(2013, 8, 13, 11, 30, 45)
    assert rows[1] == ChildRow("B", False, "C:/exchange", None)
    assert warnings == []


def test_synchronize_rows_may_omit_the_time():
    rows, _ = parse_child_rows("A true http://a/WMServer", synchronize=True)
    assert rows[0].last_sync_time is None


def test_trailing_status_word_is_ignored():
    text = "A true http://a/WMServer 2011-08-08T12:00:00Z ok;B false http://b # SKIPPED"
    rows, warnings = parse_child_rows(text, synchronize=True)
    assert [r.last_sync_time for r in rows] == [datetime(2011, 8, 8, 12, tzinfo=UTC), None]
    assert warnings == []
    joined, warnings = parse_child_rows(
        "A true http://a/WMServer 2011-08-08 12:00 FAILED", synchronize=True
    )
    assert joined[0].last_sync_time == local_as_utc(2011, 8, 8, 12)
    assert warnings == []


def test_list_of_rows_with_python_values():
    noon = datetime(2011, 8, 8, 12, tzinfo=UTC)
    rows, _ = parse_child_rows(
        [
            ("Ohio", True, "http://ohio/WMServer", noon),
            ["AZ", "TRUE", Path("exchange"), None],
            ["NM", 0, "http://nm/WMServer", "#", "OK"],
            "TX 1 http://tx/WMServer '2011-08-08 12:00'",
        ],
        synchronize=True,
    )
    assert rows[0] == ChildRow("Ohio", True, "http://ohio/WMServer", noon)
    assert rows[1] == ChildRow("AZ", True, "exchange", None)
    assert rows[2].connected is False
    assert rows[3].name == "TX"


def test_value_table_input():
    vt = ValueTable(4)
    vt.addRow(["Ohio", True, "http://ohio/WMServer", "2011-08-08 12:00"])
    vt.addRow("AZ false C:/exchange")
    rows, warnings = parse_child_rows(vt, synchronize=True)
    assert [r.name for r in rows] == ["Ohio", "AZ"]
    assert warnings == []
    loaded = ValueTable(4)
    loaded.loadFromString(ESRI_SYNC_SAMPLE)  # five tokens per row: widened to 5 columns
    rows, warnings = parse_child_rows(loaded, synchronize=True)
    assert len(rows) == 2 and warnings == []


@pytest.mark.parametrize("flag", ["true", "True", "TRUE", "1", True, 1])
def test_connected_true_spellings(flag):
    rows, _ = parse_child_rows([["A", flag, "http://a"]], synchronize=False)
    assert rows[0].connected is True


@pytest.mark.parametrize("flag", ["yes", "T", "2", 2, None, "#", 1.0])
def test_connected_other_values_are_not_members(flag):
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows([["A", flag, "http://a"]], synchronize=False)
    error = caught.value
    assert (error.code, error.row, error.column) == (800, 1, "connected")
    assert str(error) == "Row 1, connected: The value is not a member of true | false."


def test_empty_name_or_url_is_value_required():
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows("A true http://a;# true http://b", synchronize=False)
    assert (caught.value.code, caught.value.row, caught.value.column) == (735, 2, "child_name")
    assert caught.value.message == "Value is required"
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows([["A", True, "  "]], synchronize=True)
    assert (caught.value.code, caught.value.column) == (735, "URL")


@pytest.mark.parametrize("empty", ["", " ; ", [], None])
def test_no_rows_is_value_required(empty):
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows(empty, synchronize=True)
    assert caught.value.code == 735


def test_wrong_column_count_names_the_row():
    with pytest.raises(ValueTableError, match=r"Row 2: Expected 3 values .* found 4"):
        parse_child_rows("A true http://a;B true http://b extra", synchronize=False)
    with pytest.raises(ValueTableError, match="Expected 3 or 4 values"):
        parse_child_rows("A true", synchronize=True)
    with pytest.raises(ValueTableError, match="Expected 3 or 4 values"):
        parse_child_rows([["A", True, "http://a", None, "x"]], synchronize=True)


def test_duplicate_child_names_are_rejected_case_insensitively():
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows(
            "Ohio true http://a;AZ true http://b;OHIO true http://c", synchronize=False
        )
    assert caught.value.row == 3
    assert "also in row 1" in caught.value.message


def test_unparsable_time_names_row_and_column():
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows("A true http://a 31/12/2011", synchronize=True)
    assert (caught.value.row, caught.value.column, caught.value.code) == (1, "last_sync_time", 589)


@pytest.mark.parametrize(
    "child_url",
    [
        "http://parent/arcgis/rest/services/P/WMServer",
        "HTTP://PARENT/arcgis/rest/services/p/wmserver//",
    ],
)
def test_a_child_cannot_be_its_parent_url(child_url):
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows(
            [["P", True, child_url]],
            synchronize=False,
            parent_url="http://parent/arcgis/rest/services/P/WMServer/",
        )
    assert (caught.value.code, caught.value.column) == (733, "URL")
    assert "Same as input Parent Repository URL" in str(caught.value)


def test_a_child_cannot_be_its_parent_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parent = str(tmp_path / "parent.wmxdb")
    with pytest.raises(ValueTableError):
        parse_child_rows("P true ./parent.wmxdb", synchronize=False, parent_url=parent)
    with pytest.raises(ValueTableError):
        parse_child_rows("P true parent.wmxdb", synchronize=False, parent_url="sqlite:///" + parent)
    rows, _ = parse_child_rows("C true child.wmxdb", synchronize=False, parent_url=parent)
    assert rows[0].url == "child.wmxdb"


@pytest.mark.parametrize(
    "junk",
    [
        {"A": "true"},
        42,
        [{"A": 1}],
        [["A", True, {"url": 1}]],
        [["A", True, ["nested"]]],
        [[b"A", True, "http://a"]],
        [["A", True, "http://a", 3.5]],
        (("A", True, "http://a", object()),),
    ],
)
def test_junk_types_give_value_table_errors(junk):
    with pytest.raises(ValueTableError) as caught:
        parse_child_rows(junk, synchronize=True)
    assert caught.value.code == 623


def test_parse_bool_is_shared_by_value_tables():
    assert parse_bool(" false ") is False
    with pytest.raises(ValueTableError):
        parse_bool("no")


# --- last-sync table --------------------------------------------------------------------------


def test_last_sync_table_round_trips_into_synchronize():
    rows = [
        LastSyncRow(
            "Ohio", True, "http://ohio/WMServer", datetime(2011, 8, 8, 12, tzinfo=UTC), "OK"
        ),
        LastSyncRow("Arizona Office", False, "C:/with space/x", None, "skipped"),
    ]
    text = format_last_sync(rows)
    assert text == (
        "Ohio true http://ohio/WMServer 2011-08-08T12:00:00Z OK;"
        "'Arizona Office' false 'C:/with space/x' # SKIPPED"
    )
    assert parse_last_sync(text) == [rows[0], LastSyncRow(*attrs_tuple(rows[1])[:4], "SKIPPED")]
    children, warnings = parse_child_rows(text, synchronize=True)
    assert [(c.name, c.connected, c.url, c.last_sync_time) for c in children] == [
        attrs_tuple(r)[:4] for r in rows
    ]
    assert warnings == []


def attrs_tuple(row: LastSyncRow) -> tuple:
    return (row.name, row.connected, row.url, row.last_sync_time, row.status)


def test_last_sync_status_must_be_known():
    with pytest.raises(ValueTableError) as caught:
        LastSyncRow("A", True, "http://a", None, "MAYBE")
    assert caught.value.code == 800
    with pytest.raises(ValueTableError, match="Row 1, status"):
        parse_last_sync("A true http://a # MAYBE")
    with pytest.raises(ValueTableError, match="Expected 5 values"):
        parse_last_sync("A true http://a #")
    assert parse_last_sync("") == []


# --- properties -------------------------------------------------------------------------------

cell_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(
        ["", "#", "'", "''", '"', ";", " ", "a b", "it's", "\n", "#a", "é ü 字", "\u00a0"]
    ),
)
tables = st.integers(min_value=1, max_value=4).flatmap(
    lambda width: st.lists(st.lists(cell_values, min_size=width, max_size=width), max_size=5)
)


@settings(max_examples=200, deadline=None)
@given(tables)
def test_export_then_load_is_exact(rows):
    width = len(rows[0]) if rows else 1
    table = ValueTable(width)
    for row in rows:
        table.addRow(list(row))
    copy = ValueTable(width)
    copy.loadFromString(table.exportToString())
    assert [copy.getTrueRow(i) for i in range(copy.rowCount)] == rows
    assert parse_value_table(format_value_table(rows)) == rows


names = st.text(min_size=1, max_size=15).map(str.strip).filter(lambda s: s not in ("", "#"))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
times = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1971, 1, 2), max_value=datetime(2999, 12, 30), timezones=offsets
    ).map(lambda moment: moment.replace(microsecond=0)),
)
last_sync_rows = st.builds(
    LastSyncRow, names, st.booleans(), names, times, st.sampled_from(["OK", "FAILED", "SKIPPED"])
)


@settings(max_examples=200, deadline=None)
@given(st.lists(last_sync_rows, min_size=1, max_size=5, unique_by=lambda r: r.name.casefold()))
def test_random_last_sync_rows_round_trip(rows):
    text = format_last_sync(rows)
    children, warnings = parse_child_rows(text, synchronize=True)
    assert warnings == []
    assert [(c.name, c.connected, c.url, c.last_sync_time) for c in children] == [
        (r.name, r.connected, r.url, r.last_sync_time) for r in rows
    ]
    assert [attrs_tuple(r) for r in parse_last_sync(text)] == [attrs_tuple(r) for r in rows]


garbage_text = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            ["a", "true", "FALSE", "1", "#", "'", '"', ";", " ", "\n", "http://x", "2011-08-08",
             "12:00", "08/01/2013", "OK", "''", "é"]
        ),
        max_size=20,
    ).map("".join),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(garbage_text, st.booleans())
def test_garbage_strings_only_ever_raise_value_table_error(text, synchronize):
    with contextlib.suppress(ValueTableError):
        parse_child_rows(text, synchronize=synchronize, parent_url="http://x")
    with contextlib.suppress(ValueTableError):
        parse_last_sync(text)
    with contextlib.suppress(ValueTableError):
        ValueTable(["GPString", "GPLong", "GPDate"]).loadFromString(text)


junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=20),
        st.binary(max_size=5),
        st.datetimes(),
        st.dates(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(junk, st.booleans())
def test_junk_structures_only_ever_raise_value_table_error(value, synchronize):
    try:
        rows, _ = parse_child_rows(value, synchronize=synchronize)
    except ValueTableError:
        return
    assert all(isinstance(row, ChildRow) for row in rows)


def test_the_value_tables_doc_examples_run():
    doc = Path(__file__).resolve().parent.parent / "docs" / "value-tables.md"
    outcome = doctest.testfile(str(doc), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert outcome.attempted > 20
    assert outcome.failed == 0


def test_windows_style_paths_survive_the_grammar():
    path = r"C:\Program Files\WMX\exchange"
    rows, _ = parse_child_rows(format_value_table([["A", "false", path]]), synchronize=False)
    assert rows[0].url == path


def test_value_table_errors_pickle_with_their_fields():
    error = ValueTableError(800, "connected", "bad", row=3, parameter="Input_Multi_Name")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.column, copy.message, copy.row, copy.parameter) == (
        800,
        "connected",
        "bad",
        3,
        "Input_Multi_Name",
    )
    assert str(copy) == "Row 3, connected: bad"
