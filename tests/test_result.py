"""Result: arcpy's members and Python protocol, plus the typed extras and the notebook view."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest

from wmx.messages import TYPE_START, TYPE_STOP, MessageLog
from wmx.result import Result
from wmx.valuetable import LastSyncRow, ValueTable, format_last_sync

NOON = datetime(2011, 8, 8, 12, tzinfo=timezone.utc)
LAST_SYNC = format_last_sync(
    [
        LastSyncRow("Ohio", True, "http://ohio/WMServer", NOON, "OK"),
        LastSyncRow("AZ", True, "http://az/WMServer", None, "FAILED"),
    ]
)


@pytest.fixture
def log() -> MessageLog:
    log = MessageLog()
    log.add_message("Start Time: Saturday, November 21, 2026 10:00:00 AM", message_type=TYPE_START)
    log.add_warning("Child AZ <b>unreachable</b> & skipped", 999981)
    log.add_message("Succeeded at Saturday, November 21, 2026 10:00:01 AM", message_type=TYPE_STOP)
    return log


@pytest.fixture
def result(log) -> Result:
    return Result(
        "SynchronizeJobData",
        [
            ("Input_Parent_Repository_URL", "http://parent/WMServer"),
            ("Input_Parent_Repository_Name", "Parent"),
            ("Input_Multi_Name", [["Ohio", True, "http://ohio/WMServer", NOON]]),
        ],
        [("Output_SynchronizeReplicaStatus", "0"), ("Output_LastSync", LAST_SYNC)],
        log,
    )


def test_arcpy_properties(result):
    assert result.outputCount == 2
    assert result.inputCount == 3
    assert result.messageCount == 3
    assert result.maxSeverity == 1
    assert result.status == 4
    assert result.resultID == ""


def test_get_output_by_index_and_name_returns_strings(result):
    assert result.getOutput(0) == "0"
    assert result.getOutput("Output_LastSync") == LAST_SYNC
    assert result.getOutput("output_lastsync") == LAST_SYNC
    assert int(result.getOutput(0)) == 0


def test_get_input_echoes_values_as_strings(result):
    assert result.getInput(0) == "http://parent/WMServer"
    assert result.getInput("Input_Multi_Name") == (
        "Ohio true http://ohio/WMServer 2011-08-08T12:00:00Z"
    )


def test_out_of_range_and_bad_keys(result):
    with pytest.raises(IndexError) as caught:
        result.getOutput(2)
    assert str(caught.value) == "The index 2 is out of range."
    with pytest.raises(IndexError, match=r"^The index -3 is out of range\.$"):
        result[-3]
    with pytest.raises(IndexError, match=r"^The index Nope is out of range\.$"):
        result["Nope"]
    for key in (1.0, None, (0,)):
        with pytest.raises(TypeError) as caught:
            result[key]
        assert str(caught.value) == "Invalid argument type."
    with pytest.raises(TypeError, match="Invalid argument type"):
        result.getOutput(1.0)
    with pytest.raises(IndexError):
        result.getInput(3)


def test_python_protocol(result):
    assert result[0] == "0"
    assert result[-1] == LAST_SYNC
    assert result[0:2] == ["0", LAST_SYNC]
    assert result[::-1] == [LAST_SYNC, "0"]
    assert result["Output_SynchronizeReplicaStatus"] == "0"
    assert len(result) == 2
    assert list(result) == ["0", LAST_SYNC]
    assert str(result) == "0"
    assert repr(result) == "<Result '0'>"
    assert int(result[0]) == 0


def test_result_without_outputs(log):
    empty = Result("ClearJobReplicationInfo", [], [], log)
    assert str(empty) == ""
    assert repr(empty) == "<Result ''>"
    assert empty.status_code is None
    assert empty.last_sync == []


def test_messages(result):
    assert result.getMessages(1) == "WARNING 999981: Child AZ <b>unreachable</b> & skipped"
    assert result.getMessages().splitlines()[0].startswith("Start Time:")
    assert result.getMessage(2).startswith("Succeeded at")
    assert result.getSeverity(1) == 1
    assert result.getAllMessages()[1] == [
        50,
        999981,
        "WARNING 999981: Child AZ <b>unreachable</b> & skipped",
    ]
    assert result.cancel() is None
    assert result.messages.max_severity == 1


def test_failed_status(log):
    failed = Result("X", [], [("Output_Status", "")], log, status=5)
    assert failed.status == 5
    assert failed.status_code is None


def test_typed_status_and_values(result, log):
    assert result.status_code == 0
    assert result.value(0) == 0
    assert result.value("Output_LastSync") == LAST_SYNC
    negative = Result("ExportJobData", [], [("Output_Status", "-2"), ("Output_File", "a.jxl")], log)
    assert negative.status_code == -2
    assert negative.value(1) == "a.jxl"
    with pytest.raises(ValueError, match="not an integer status"):
        _ = Result("X", [], [("Output_File", "a.jxl")], log).status_code


def test_last_sync_rows(result):
    assert result.last_sync == [
        LastSyncRow("Ohio", True, "http://ohio/WMServer", NOON, "OK"),
        LastSyncRow("AZ", True, "http://az/WMServer", None, "FAILED"),
    ]
    assert result.to_rows()[0] == {
        "name": "Ohio",
        "connected": True,
        "url": "http://ohio/WMServer",
        "last_sync_time": NOON,
        "status": "OK",
    }


def test_to_dataframe_without_pandas_explains_itself(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_dataframe()


def test_to_dataframe_with_pandas(result):
    pandas = pytest.importorskip("pandas")
    frame = result.to_dataframe()
    assert isinstance(frame, pandas.DataFrame)
    # the last-sync columns first, then the per-child message and counts (result.children)
    assert list(frame.columns[:5]) == ["name", "connected", "url", "last_sync_time", "status"]
    assert "message" in frame.columns
    assert len(frame) == 2


def test_html_view_escapes_and_colours(result):
    page = result._repr_html_()
    assert "<b>unreachable</b>" not in page
    assert "&lt;b&gt;unreachable&lt;/b&gt; &amp; skipped" in page
    assert "color:#9a6700" in page
    assert "Output_LastSync" in page
    assert "Succeeded" in page


def test_html_view_escapes_outputs_and_tool_name(log):
    page = Result("<Tool>", [], [("Out", "<script>alert(1)</script>")], log)._repr_html_()
    assert "<script>" not in page
    assert "&lt;Tool&gt;" in page


def test_inputs_accept_value_tables_and_flags(log):
    vt = ValueTable(3)
    vt.addRow("A true 'http://a b'")
    echoed = Result("X", [("VT", vt), ("Flag", False), ("None", None), ("N", 3)], [], log)
    assert [echoed.getInput(i) for i in range(4)] == ["A true 'http://a b'", "false", "", "3"]
