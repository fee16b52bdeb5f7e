"""The exceptions a wmx tool raises (``ExecuteError`` and its subclasses, ``ExecuteWarning``),
the message codes they carry, and the standard message texts arcpy users recognise.

``str(err)`` is exactly arcpy's text: the error-severity lines of the tool's messages joined by
newlines. The same facts are kept as data (``err.code``, ``err.messages``). This module must
never decide *when* a tool fails (that is the tool runner's job) and must never format a
message from anything but its arguments (no tokens, no environment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from wmx.messages import ERROR, WARNING, MessageLog

if TYPE_CHECKING:
    from wmx.result import Result

# --- Esri message IDs (the text is rendered "ERROR 000735: ...") ---------------------------

#: ``<Label>: Value is required`` (no trailing period at runtime).
VALUE_REQUIRED = 735
#: ``The value is not a member of a | b | c.``
NOT_A_MEMBER = 800
#: ``<Label>: Dataset <x> does not exist or is not supported``
DATASET_NOT_FOUND = 732
#: ``<Label>: Dataset <x> already exists.``
DATASET_EXISTS = 725
#: ``<Label>: Same as input <other label>``
SAME_AS_INPUT = 733
#: ``Failed to execute (<tool label>). Parameters are not valid.`` — a Python value could not
#: be converted to the parameter's type (arcpy's wrapper, before validation).
CANNOT_CONVERT = 622
#: ``Cannot set input into parameter <name>.`` (follows 000622).
CANNOT_SET_INPUT = 628
#: ``Invalid value type for parameter <name>.``
INVALID_VALUE_TYPE = 623
#: ``Input to parameter <name> not within domain.``
INPUT_NOT_WITHIN_DOMAIN = 621
#: ``<Label>: The input is not within the defined domain.``
NOT_WITHIN_DOMAIN = 864
#: Esri's generic "invalid value for <value>" — used for value-table text wmx cannot parse.
INVALID_VALUE = 589
#: Esri's "Error executing function.": an unexpected failure inside a tool.
UNEXPECTED_ERROR = 999999

# --- wmx's own runtime codes: the block 999980-999989 (see docs/errors.md) ------------------
# Which repository failure gets which code is decided in one place, wmx.tools.failures.

#: The parent (or the one repository a tool works on) cannot be reached, is missing, or full.
PARENT_UNREACHABLE = 999980
#: A child cannot be reached, names no wmx repository, or its disk is full.
CHILD_UNREACHABLE = 999981
#: A token was missing or refused, or the acting user lacks Manage Replication.
NOT_AUTHORIZED = 999982
#: A WARNING per conflict (kept in the conflict log); never stops a run.
REPLICATION_CONFLICT = 999983
#: The child is not a replica of this parent (run ReplicateJobData first).
NOT_A_REPLICA = 999984
#: ImportJobData refused an exchange file (damaged, truncated, foreign) before writing.
INCOMPATIBLE_REPOSITORY = 999985
#: The closing WARNING of a partial run: some children failed, the others were done.
SYNC_INCOMPLETE = 999986
#: The other side answered with no valid WMServer reply, or refused what it was sent.
INVALID_RESPONSE = 999987
#: A request took longer than the replication timeout.
TIMED_OUT = 999988
#: Another process held the repository's write lock longer than the wait allows.
REPOSITORY_LOCKED = 999989

WMX_CODES = range(999980, 999990)

# --- standard texts -------------------------------------------------------------------------

PARAMETERS_NOT_VALID = "Failed to execute. Parameters are not valid."
VALUE_REQUIRED_TEXT = "Value is required"


def failed_to_execute(tool_name: str) -> str:
    """The last error line of every failure: the tool *name*, never its label or alias."""
    return f"Failed to execute ({tool_name})."


def not_a_member_text(choices: list[str]) -> str:
    return f"The value is not a member of {' | '.join(choices)}."


def dataset_not_found_text(dataset: str) -> str:
    return f"Dataset {dataset} does not exist or is not supported"


def dataset_exists_text(dataset: str) -> str:
    return f"Dataset {dataset} already exists."


def same_as_input_text(other_label: str) -> str:
    return f"Same as input {other_label}"


# --- exceptions -----------------------------------------------------------------------------


class _ToolException(Exception):
    """Shared shape of ExecuteError and ExecuteWarning (which arcpy keeps unrelated)."""

    _severity = ERROR

    def __init__(
        self,
        *args: Any,
        code: Optional[int] = None,
        messages: Optional[MessageLog] = None,
        result: Optional[Result] = None,
    ) -> None:
        if not args and messages is not None:
            args = (messages.get_messages(self._severity),)
        super().__init__(*args)
        self.messages: MessageLog = messages if messages is not None else MessageLog()
        self.code: Optional[int] = (
            code if code is not None else self.messages.first_code(self._severity)
        )
        #: The failed run's Result (status 5, outputs as far as the tool got), when there is one.
        self.result: Optional[Result] = result

    def __reduce__(self) -> tuple:
        # Keep code/messages/result when pickled (multiprocessing on Windows pickles errors).
        return (type(self), self.args, self.__dict__)


class ExecuteError(_ToolException):
    """A tool failed. ``str(err)`` / ``err.args[0]`` = arcpy's error lines."""


class ExecuteWarning(_ToolException):
    """A tool warned while ``SetSeverityLevel(1)`` is in force. ``str(err)`` = warning lines."""

    _severity = WARNING


class WmxValidationError(ExecuteError):
    """Parameters were not valid; nothing was read or written."""


class WmxRuntimeError(ExecuteError):
    """The tool started and then failed."""


class WmxConnectionError(WmxRuntimeError):
    """A parent or child repository could not be reached, or answered nonsense."""


class WmxAuthorizationError(WmxRuntimeError):
    """The caller lacks the Manage Replication privilege or a valid token."""


class WmxConflictError(WmxRuntimeError):
    """A replication conflict could not be settled automatically."""


_RUNTIME_CLASSES: dict[int, type[WmxRuntimeError]] = {
    PARENT_UNREACHABLE: WmxConnectionError,
    CHILD_UNREACHABLE: WmxConnectionError,
    INVALID_RESPONSE: WmxConnectionError,
    TIMED_OUT: WmxConnectionError,
    NOT_AUTHORIZED: WmxAuthorizationError,
    REPLICATION_CONFLICT: WmxConflictError,
}


def runtime_error_class(code: Optional[int]) -> type[WmxRuntimeError]:
    """The most specific runtime exception class for a message code."""
    return _RUNTIME_CLASSES.get(code, WmxRuntimeError) if code is not None else WmxRuntimeError


def validation_error(log: MessageLog, result: Optional[Result] = None) -> WmxValidationError:
    """Build the exception for a validation failure from the tool's finished log."""
    return WmxValidationError(messages=log.copy(), result=result)


def runtime_error(log: MessageLog, result: Optional[Result] = None) -> WmxRuntimeError:
    """Build the exception for a runtime failure; the class follows the first error code."""
    snapshot = log.copy()
    return runtime_error_class(snapshot.first_code(ERROR))(messages=snapshot, result=result)


def execute_warning(log: MessageLog, result: Optional[Result] = None) -> ExecuteWarning:
    """Build the ExecuteWarning raised at severity level 1 for a run that only warned."""
    return ExecuteWarning(messages=log.copy(), result=result)
