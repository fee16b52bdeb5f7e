"""The tool runner: argument binding, arcpy's ExecuteError layouts, severity levels, and the
module-level messages left behind by every run."""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import threading
from datetime import datetime

import pytest

from wmx import errors
from wmx import messages as m
from wmx.errors import (
    ExecuteError,
    ExecuteWarning,
    WmxConnectionError,
    WmxRuntimeError,
    WmxValidationError,
)
from wmx.messages import MessageLog
from wmx.result import Result
from wmx.tools._base import (
    Parameter,
    ToolFailure,
    ToolSpec,
    ValidationFailure,
    _timestamp,
    run_tool,
)
from wmx.valuetable import parse_child_rows

SYNC = ToolSpec(
    "SynchronizeJobData",
    "Synchronize Job Data",
    [
        Parameter("Input_Parent_Repository_URL", "Parent Repository URL", "String"),
        Parameter("Input_Parent_Repository_Name", "Parent Repository Name", "String"),
        Parameter("Input_Multi_Name", "Child Repository Names and URLs", "Value Table"),
        Parameter(
            "Output_SynchronizeReplicaStatus",
            "Status of Replica Synchronization",
            "Long",
            "Output",
        ),
        Parameter("Output_LastSync", "Last Synchronized", "Value Table", "Output"),
    ],
)
EXPORT = ToolSpec(
    "ExportJobData",
    "Export Job Data",
    [
        Parameter("Input_Folder", "Output Folder", "Folder"),
        Parameter("Input_DatabasePath", "Database Path", "String", required=False),
        Parameter("Output_Status", "Status", "Long", "Output"),
    ],
)
CHILDREN = "Ohio true http://ohio/WMServer 2011-08-08 12:00"
#: A row that warns (SPEC §2.2: a date that reads both ways is read month-first, with a warning).
WARNED_CHILDREN = "Ohio true http://ohio/WMServer 01/12/2026"
START = re.compile(r"^Start Time: \w+day, \w+ \d{1,2}, \d{4} \d{1,2}:\d\d:\d\d [AP]M$")
END = re.compile(
    r"^(Succeeded|Failed) at \w+day, \w+ \d{1,2}, \d{4} \d{1,2}:\d\d:\d\d [AP]M "
    r"\(Elapsed Time: \d+\.\d\d seconds\)$"
)


@pytest.fixture(autouse=True)
def fresh_message_state():
    m.set_last_messages(MessageLog())
    m.SetSeverityLevel(2)
    yield
    m.SetSeverityLevel(2)


def sync_body(context, params):
    """A stand-in tool body: parse the children, report them, return the outputs."""
    children, warnings = parse_child_rows(params["Input_Multi_Name"], synchronize=True)
    for warning in warnings:
        context.add_warning(warning)
    context.add_message(f"Synchronized {len(children)} children")
    return {"Output_SynchronizeReplicaStatus": "0", "Output_LastSync": "table"}


def sync(*args, **kwargs) -> Result:
    return run_tool(SYNC, args, kwargs, sync_body)


# --- success ----------------------------------------------------------------------------------


def test_success_returns_a_result_with_string_outputs():
    result = sync("http://parent/WMServer", "Parent", "Ohio true http://ohio/WMServer")
    assert result.status == 4
    assert result.maxSeverity == 0
    assert list(result) == ["0", "table"]
    assert result.inputCount == 3
    assert result.getInput(2) == "Ohio true http://ohio/WMServer"
    lines = result.getMessages().splitlines()
    assert START.match(lines[0])
    assert lines[1] == "Synchronized 1 children"
    assert END.match(lines[-1]) and lines[-1].startswith("Succeeded at")
    assert result.getAllMessages()[0][0] == 2
    assert result.getAllMessages()[-1][0] == 3
    assert m.GetMessages() == result.getMessages()


def test_keyword_and_mixed_binding():
    by_keyword = sync(
        Input_Multi_Name=CHILDREN,
        Input_Parent_Repository_Name="Parent",
        Input_Parent_Repository_URL="http://parent/WMServer",
    )
    mixed = sync(
        "http://parent/WMServer", Input_Multi_Name=CHILDREN, Input_Parent_Repository_Name="P"
    )
    assert by_keyword.getInput(0) == mixed.getInput(0) == "http://parent/WMServer"
    assert by_keyword.getInput("Input_Multi_Name") == CHILDREN


def test_warnings_do_not_raise_at_the_default_level():
    result = sync("http://parent/WMServer", "Parent", WARNED_CHILDREN)
    assert result.maxSeverity == 1
    assert "could be day-first" in result.getMessages(1)


def test_python_binding_errors_are_type_errors():
    with pytest.raises(TypeError) as caught:
        sync("a", "b", "c", "d")
    assert str(caught.value) == (
        "SynchronizeJobData() takes from 0 to 3 positional arguments but 4 were given"
    )
    with pytest.raises(TypeError, match="unexpected keyword argument 'Input_Parent_URL'"):
        sync(Input_Parent_URL="x")
    with pytest.raises(
        TypeError, match="multiple values for argument 'Input_Parent_Repository_URL'"
    ):
        sync("a", Input_Parent_Repository_URL="b")
    with pytest.raises(TypeError, match="unexpected keyword argument 'Output_LastSync'"):
        sync(Output_LastSync="x")


def test_optional_parameters_may_be_skipped():
    seen = {}

    def body(context, params):
        seen.update(params)
        return {"Output_Status": "0"}

    result = run_tool(EXPORT, ("C:/out", "#"), {}, body)
    assert result.status_code == 0
    assert seen == {"Input_Folder": "C:/out", "Input_DatabasePath": None}


# --- validation failures ----------------------------------------------------------------------


def test_missing_required_values_are_all_reported_in_parameter_order():
    with pytest.raises(ExecuteError) as caught:
        sync(None, "#", "")
    error = caught.value
    assert str(error).split("\n") == [
        "Failed to execute. Parameters are not valid.",
        "ERROR 000735: Parent Repository URL: Value is required",
        "ERROR 000735: Parent Repository Name: Value is required",
        "ERROR 000735: Child Repository Names and URLs: Value is required",
        "Failed to execute (SynchronizeJobData).",
    ]
    assert error.args[0] == str(error)
    assert error.code == 735 == errors.VALUE_REQUIRED
    assert isinstance(error, WmxValidationError)
    assert error.result.status == 5
    assert error.__cause__ is None and error.__context__ is None


def test_get_messages_after_a_caught_execute_error():
    try:
        sync("http://parent/WMServer", "Parent")
    except ExecuteError as error:
        assert m.GetMessages(2) == str(error)
        assert (
            m.GetMessages(2) == "Failed to execute. Parameters are not valid.\n"
            "ERROR 000735: Child Repository Names and URLs: Value is required\n"
            "Failed to execute (SynchronizeJobData)."
        )
        all_lines = m.GetMessages().splitlines()
        assert START.match(all_lines[0]) and all_lines[-1].startswith("Failed at")
        assert m.GetMaxSeverity() == 2
        assert m.GetAllMessages()[1] == [100, -2147467259, all_lines[1]]
        assert m.GetAllMessages()[2][:2] == [100, 735]
        assert error.messages.texts() == all_lines
    else:
        pytest.fail("expected ExecuteError")


def test_value_table_errors_are_validation_failures_of_that_parameter():
    with pytest.raises(WmxValidationError) as caught:
        sync("http://parent/WMServer", "Parent", "Ohio true http://a;OHIO true http://b")
    assert str(caught.value).split("\n") == [
        "Failed to execute. Parameters are not valid.",
        "ERROR 000589: Child Repository Names and URLs: Row 2, child_repository: "
        "Duplicate child repository name OHIO (also in row 1).",
        "Failed to execute (SynchronizeJobData).",
    ]
    assert caught.value.code == 589


def test_body_validation_failure_lists_every_issue():
    def body(context, params):
        raise ValidationFailure(
            [
                (errors.DATASET_NOT_FOUND, context.spec.label_of("Input_Parent_Repository_Name"),
                 errors.dataset_not_found_text("Parent")),
                (errors.PARENT_UNREACHABLE, "Parent Repository URL", "Cannot reach http://p"),
            ]
        )  # fmt: skip

    with pytest.raises(WmxValidationError) as caught:
        run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, body)
    assert str(caught.value).split("\n") == [
        "Failed to execute. Parameters are not valid.",
        "ERROR 000732: Parent Repository Name: Dataset Parent does not exist or is not supported",
        "ERROR 999980: Parent Repository URL: Cannot reach http://p",
        "Failed to execute (SynchronizeJobData).",
    ]
    assert caught.value.code == 732


def test_validation_failure_needs_an_issue():
    with pytest.raises(ValueError):
        ValidationFailure([])


# --- runtime failures -------------------------------------------------------------------------


def test_tool_failure_uses_the_runtime_layout_and_a_specific_class():
    def body(context, params):
        context.add_message("Pulling Ohio")
        raise ToolFailure(errors.CHILD_UNREACHABLE, "Child Ohio: cannot reach http://ohio")

    with pytest.raises(WmxConnectionError) as caught:
        run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, body)
    error = caught.value
    assert str(error).split("\n") == [
        "ERROR 999981: Child Ohio: cannot reach http://ohio",
        "Failed to execute (SynchronizeJobData).",
    ]
    assert isinstance(error, WmxRuntimeError) and isinstance(error, ExecuteError)
    assert error.code == errors.CHILD_UNREACHABLE
    assert "Pulling Ohio" in error.messages.texts()


def test_add_error_in_the_body_fails_the_run_after_it_returns():
    def body(context, params):
        context.add_error("Child AZ failed", errors.SYNC_INCOMPLETE)
        m.AddError("also via arcpy.AddError")
        return {"Output_SynchronizeReplicaStatus": "1", "Output_LastSync": "t"}

    with pytest.raises(WmxRuntimeError) as caught:
        run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, body)
    assert str(caught.value).split("\n") == [
        "ERROR 999986: Child AZ failed",
        "also via arcpy.AddError",
        "Failed to execute (SynchronizeJobData).",
    ]
    assert caught.value.result.getOutput(0) == "1"


def test_unexpected_exceptions_become_execute_errors(caplog):
    def body(context, params):
        raise ZeroDivisionError("division by zero")

    debug_logs = caplog.at_level(logging.DEBUG, logger="wmx.tools")
    with debug_logs, pytest.raises(WmxRuntimeError) as caught:
        run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, body)
    assert str(caught.value).split("\n") == [
        "ERROR 999999: Error executing function. ZeroDivisionError: division by zero",
        "Failed to execute (SynchronizeJobData).",
    ]
    assert caught.value.code == errors.UNEXPECTED_ERROR
    assert caught.value.__context__ is None
    assert any(record.exc_info for record in caplog.records)


def test_a_body_returning_unknown_outputs_is_an_unexpected_error():
    with pytest.raises(WmxRuntimeError, match="unknown outputs"):
        run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, lambda c, p: {"Nope": "1"})
    with pytest.raises(WmxRuntimeError, match="not a mapping"):
        run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, lambda c, p: ["0"])


def test_execute_error_pickles_with_its_data():
    with pytest.raises(ExecuteError) as caught:
        sync()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is WmxValidationError
    assert str(copy) == str(caught.value)
    assert copy.code == 735
    assert copy.messages.texts() == caught.value.messages.texts()


# --- severity levels --------------------------------------------------------------------------


def test_level_zero_returns_a_failed_result_instead_of_raising():
    def body(context, params):
        raise ToolFailure(
            errors.SYNC_INCOMPLETE, "1 of 2 children failed", {"Output_LastSync": "t"}
        )

    m.SetSeverityLevel(0)
    result = run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, body)
    assert result.status == 5
    assert result.maxSeverity == 2
    assert list(result) == ["", "t"]
    assert (
        m.GetMessages(2)
        == "ERROR 999986: 1 of 2 children failed\nFailed to execute (SynchronizeJobData)."
    )
    assert sync().status == 5


def test_level_one_raises_execute_warning_on_warnings():
    m.SetSeverityLevel(1)
    with pytest.raises(ExecuteWarning) as caught:
        sync("http://parent/WMServer", "Parent", WARNED_CHILDREN)
    warning = caught.value
    assert not isinstance(warning, ExecuteError)
    assert "could be day-first" in str(warning)
    assert warning.result.status == 4
    assert m.GetMaxSeverity() == 1
    with pytest.raises(WmxValidationError):
        sync()
    assert sync("http://p", "Parent", "Ohio true http://ohio/WMServer").status == 4


def test_level_two_ignores_warnings():
    assert sync("http://parent/WMServer", "Parent", WARNED_CHILDREN).maxSeverity == 1


# --- message state ----------------------------------------------------------------------------


def test_arcpy_add_functions_inside_a_body_write_to_that_run():
    def body(context, params):
        m.AddMessage("from arcpy.AddMessage")
        m.AddWarning("from arcpy.AddWarning")
        return {}

    result = run_tool(EXPORT, ("C:/out",), {}, body)
    assert "from arcpy.AddMessage" in result.getMessages()
    assert result.getMessages(1) == "from arcpy.AddWarning"


def test_a_kept_result_never_changes_afterwards():
    result = sync("http://p", "Parent", "Ohio true http://ohio/WMServer")
    count = result.messageCount
    m.AddMessage("after the run")
    with pytest.raises(ExecuteError):
        sync()
    assert result.messageCount == count
    assert "after the run" not in result.getMessages()
    assert m.GetMessages(2).endswith("Failed to execute (SynchronizeJobData).")


def test_runs_in_other_threads_do_not_touch_this_threads_messages():
    sync("http://p", "Parent", "Ohio true http://ohio/WMServer")
    mine = m.GetMessages()

    def worker():
        with contextlib.suppress(ExecuteError):
            sync()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert m.GetMessages() == mine


def test_timestamp_layout_is_english_whatever_the_locale():
    assert _timestamp(datetime(2026, 11, 21, 10, 0, 0)) == "Saturday, November 21, 2026 10:00:00 AM"
    assert _timestamp(datetime(2026, 1, 5, 0, 7, 9)) == "Monday, January 5, 2026 12:07:09 AM"
    assert _timestamp(datetime(2026, 1, 5, 12, 30, 0)) == "Monday, January 5, 2026 12:30:00 PM"
    assert _timestamp(datetime(2026, 1, 5, 23, 59, 59)) == "Monday, January 5, 2026 11:59:59 PM"


def test_parameter_direction_is_checked():
    with pytest.raises(ValueError):
        Parameter("x", "X", "String", "Sideways")
    with pytest.raises(KeyError):
        SYNC.label_of("Nope")
    assert [p.name for p in SYNC.outputs] == ["Output_SynchronizeReplicaStatus", "Output_LastSync"]


def test_wmx_codes_form_one_block_and_choose_the_runtime_class():
    block = [
        errors.PARENT_UNREACHABLE,
        errors.CHILD_UNREACHABLE,
        errors.NOT_AUTHORIZED,
        errors.REPLICATION_CONFLICT,
        errors.NOT_A_REPLICA,
        errors.INCOMPATIBLE_REPOSITORY,
        errors.SYNC_INCOMPLETE,
        errors.INVALID_RESPONSE,
        errors.TIMED_OUT,
        errors.REPOSITORY_LOCKED,
    ]
    assert block == list(errors.WMX_CODES)
    assert errors.runtime_error_class(errors.NOT_AUTHORIZED) is errors.WmxAuthorizationError
    assert errors.runtime_error_class(errors.REPLICATION_CONFLICT) is errors.WmxConflictError
    assert errors.runtime_error_class(errors.TIMED_OUT) is WmxConnectionError
    assert errors.runtime_error_class(None) is WmxRuntimeError
    assert errors.runtime_error_class(errors.VALUE_REQUIRED) is WmxRuntimeError


def test_execute_error_can_be_raised_by_scripts_with_plain_text():
    error = ExecuteError("something broke")
    assert str(error) == error.args[0] == "something broke"
    assert error.code is None
    assert len(error.messages) == 0
    assert error.result is None


def test_an_exception_whose_text_cannot_be_read_still_becomes_an_execute_error():
    class Sullen(Exception):
        def __str__(self):
            raise RuntimeError("no text")

    def body(context, params):
        raise Sullen()

    with pytest.raises(WmxRuntimeError, match=r"ERROR 999999: Error executing function\. Sullen: "):
        run_tool(SYNC, ("http://p", "Parent", CHILDREN), {}, body)
