"""Messages: rendering, severity filters, GetAllMessages numbering, and arcpy's module-level
message functions backed by context-local state."""

from __future__ import annotations

import contextvars
import threading

import pytest

from wmx import messages as m
from wmx.messages import Message, MessageLog


@pytest.fixture(autouse=True)
def fresh_message_state():
    """Each test starts with an empty "last tool" log and the default severity level."""
    m.set_last_messages(MessageLog())
    m.SetSeverityLevel(2)
    yield
    m.set_last_messages(MessageLog())
    m.SetSeverityLevel(2)


@pytest.fixture
def failed_log() -> MessageLog:
    log = MessageLog()
    log.add_message(
        "Start Time: Saturday, November 21, 2026 10:00:00 AM", message_type=m.TYPE_START
    )
    log.add_warning("Child AZ answered slowly", 999988)
    log.add_warning("uncoded warning")
    log.add_error("Failed to execute. Parameters are not valid.")
    log.add_error("Input Rows: Value is required", 735)
    log.add_error("Failed to execute (GetCount).")
    log.add_message("Failed at Saturday, November 21, 2026 10:00:01 AM", message_type=m.TYPE_STOP)
    return log


def test_coded_errors_and_warnings_are_zero_padded_to_six_digits():
    assert Message(2, 735, "Input Rows: Value is required").rendered == (
        "ERROR 000735: Input Rows: Value is required"
    )
    assert Message(1, 12, "x already exists").rendered == "WARNING 000012: x already exists"
    assert str(Message(2, 999999, "Error executing function.")) == (
        "ERROR 999999: Error executing function."
    )


def test_uncoded_and_informative_messages_are_plain_text():
    assert Message(2, None, "Failed to execute (X).").rendered == "Failed to execute (X)."
    assert Message(0, 5, "informative").rendered == "informative"


@pytest.mark.parametrize("severity", [-1, 3, True, "2"])
def test_message_rejects_unknown_severity(severity):
    with pytest.raises(ValueError):
        Message(severity, None, "x")


def test_get_messages_filters_like_arcpy(failed_log):
    assert failed_log.get_messages(0).splitlines()[0].startswith("Start Time:")
    assert len(failed_log.texts(0)) == 7
    assert failed_log.texts(1) == ["WARNING 999988: Child AZ answered slowly", "uncoded warning"]
    assert failed_log.get_messages(2) == (
        "Failed to execute. Parameters are not valid.\n"
        "ERROR 000735: Input Rows: Value is required\n"
        "Failed to execute (GetCount)."
    )


def test_max_severity_and_first_code(failed_log):
    assert failed_log.max_severity == 2
    assert failed_log.first_code() == 735
    assert failed_log.first_code(m.WARNING) == 999988
    assert MessageLog().max_severity == 0
    warned = MessageLog()
    warned.add_warning("w")
    assert warned.max_severity == 1


def test_all_messages_uses_arcpy_type_numbers_and_return_codes(failed_log):
    assert failed_log.all_messages() == [
        [2, 0, "Start Time: Saturday, November 21, 2026 10:00:00 AM"],
        [50, 999988, "WARNING 999988: Child AZ answered slowly"],
        [50, 0, "uncoded warning"],
        [100, -2147467259, "Failed to execute. Parameters are not valid."],
        [100, 735, "ERROR 000735: Input Rows: Value is required"],
        [100, -2147467259, "Failed to execute (GetCount)."],
        [3, 0, "Failed at Saturday, November 21, 2026 10:00:01 AM"],
    ]


def test_get_message_and_severity_by_index(failed_log):
    assert failed_log.get_message(4) == "ERROR 000735: Input Rows: Value is required"
    assert failed_log.get_severity(1) == 1
    with pytest.raises(IndexError, match=r"^The index 7 is out of range\.$"):
        failed_log.get_message(7)
    with pytest.raises(IndexError):
        failed_log.get_severity(-1)
    with pytest.raises(TypeError, match="Invalid argument type"):
        failed_log.get_message("0")


def test_copy_is_a_snapshot(failed_log):
    snapshot = failed_log.copy()
    failed_log.add_message("later")
    assert len(snapshot) == 7
    assert len(failed_log) == 8


def test_module_functions_read_the_last_tool_log(failed_log):
    m.set_last_messages(failed_log)
    assert m.GetMessages(2) == failed_log.get_messages(2)
    assert m.GetMessages() == failed_log.get_messages(0)
    assert m.GetMessageCount() == 7
    assert m.GetMessage(4) == "ERROR 000735: Input Rows: Value is required"
    assert m.GetSeverity(4) == 2
    assert m.GetMaxSeverity() == 2
    assert m.GetAllMessages() == failed_log.all_messages()


def test_message_functions_start_empty():
    assert m.GetMessages() == ""
    assert m.GetMessageCount() == 0
    assert m.GetMaxSeverity() == 0
    assert m.GetAllMessages() == []


def test_get_messages_rejects_unknown_severity():
    with pytest.raises(ValueError):
        m.GetMessages(3)


def test_add_functions_append_and_never_raise():
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no")

    m.AddMessage("hello")
    m.AddWarning("careful")
    m.AddError("broken")
    m.AddMessage(42)
    m.AddError(Unprintable())
    assert m.GetMessages(1) == "careful"
    assert m.GetMessages(2).splitlines()[0] == "broken"
    assert "Unprintable object" in m.GetMessage(4)
    assert m.GetMaxSeverity() == 2


def test_add_return_message_copies_from_the_last_tool(failed_log):
    running = MessageLog()
    m.set_last_messages(failed_log)
    with m.collecting(running):
        m.AddReturnMessage(4)
        m.AddReturnMessage(99)  # out of range: ignored, never raises
        m.AddReturnMessage("x")
    assert running.texts() == ["ERROR 000735: Input Rows: Value is required"]


def test_collecting_routes_add_functions_into_the_running_tool():
    previous = MessageLog()
    m.set_last_messages(previous)
    running = MessageLog()
    with m.collecting(running):
        m.AddWarning("inside")
    m.AddMessage("outside")
    assert running.texts() == ["inside"]
    assert previous.texts() == ["outside"]


def test_severity_level_default_and_validation():
    assert m.GetSeverityLevel() == 2
    for level in (0, 1, 2):
        m.SetSeverityLevel(level)
        assert m.GetSeverityLevel() == level
    for bad in (3, -1, "1", None, True):
        with pytest.raises(ValueError):
            m.SetSeverityLevel(bad)
    assert m.GetSeverityLevel() == 2


def test_state_is_context_local():
    m.AddMessage("main thread")
    m.SetSeverityLevel(0)
    seen = {}

    def worker():
        seen["count"] = m.GetMessageCount()
        seen["level"] = m.GetSeverityLevel()
        m.AddMessage("worker")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"count": 0, "level": 2}
    assert m.GetMessages() == "main thread"

    def in_copy():
        m.set_last_messages(MessageLog())
        m.AddMessage("copied context")

    contextvars.copy_context().run(in_copy)
    assert m.GetMessages() == "main thread"


def test_progressor_functions_are_no_ops():
    assert m.SetProgressor("step", "Syncing", 0, 10, 1) is None
    assert m.SetProgressor() is None
    assert m.SetProgressorLabel("label") is None
    assert m.SetProgressorPosition(3) is None
    assert m.SetProgressorPosition() is None
    assert m.ResetProgressor() is None
