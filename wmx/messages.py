"""Geoprocessing messages: the ordered log a tool writes, and arcpy's module-level message
functions (``GetMessages``, ``AddMessage``, ``SetSeverityLevel`` ...) over "the last tool run".

The "last tool" state lives in :mod:`contextvars`, not in a plain global, so threads and asyncio
tasks never see each other's messages. This module must never raise from ``AddMessage``,
``AddWarning`` or ``AddError`` (arcpy documents that they do not throw), and it must never know
about tools, results or replication.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Optional

import attrs

INFORMATIVE = 0
WARNING = 1
ERROR = 2

# GetAllMessages() "type" numbers (arcpy's numbering, distinct from severity).
TYPE_INFORMATIVE = 0
TYPE_DEFINITION = 1
TYPE_START = 2
TYPE_STOP = 3
TYPE_WARNING = 50
TYPE_ERROR = 100
TYPE_EMPTY = 101
TYPE_GDB_ERROR = 102
TYPE_ABORT = 200

# Return code arcpy reports for an error message that has no message ID (E_FAIL).
UNCODED_ERROR_RETURN_CODE = -2147467259

_DEFAULT_TYPE = {INFORMATIVE: TYPE_INFORMATIVE, WARNING: TYPE_WARNING, ERROR: TYPE_ERROR}
_PREFIX = {WARNING: "WARNING", ERROR: "ERROR"}


def _check_severity(severity: int) -> None:
    """Reject anything but the three arcpy severities, bools included."""
    if isinstance(severity, bool) or severity not in (INFORMATIVE, WARNING, ERROR):
        raise ValueError(f"severity must be 0, 1 or 2, not {severity!r}")


@attrs.frozen
class Message:
    """One message line. ``code`` is the Esri-style message ID (``735`` for ERROR 000735)."""

    severity: int = attrs.field()
    code: Optional[int]
    text: str
    message_type: int = attrs.field()

    @severity.validator
    def _valid_severity(self, _attribute: attrs.Attribute, value: int) -> None:
        _check_severity(value)

    @message_type.default
    def _type_from_severity(self) -> int:
        return _DEFAULT_TYPE.get(self.severity, TYPE_INFORMATIVE)  # validated just after

    @property
    def rendered(self) -> str:
        """The text as arcpy shows it: coded warnings and errors get ``ERROR 000735: ``."""
        if self.code is not None and self.severity in _PREFIX:
            return f"{_PREFIX[self.severity]} {self.code:06d}: {self.text}"
        return self.text

    @property
    def return_code(self) -> int:
        """The ``return_code`` column of ``GetAllMessages``."""
        if self.code is not None:
            return self.code
        return UNCODED_ERROR_RETURN_CODE if self.severity == ERROR else 0

    def __str__(self) -> str:
        return self.rendered


class MessageLog:
    """The ordered messages of one tool run; a ``Result`` and an ``ExecuteError`` each keep one."""

    def __init__(self, messages: Optional[list[Message]] = None) -> None:
        self._messages: list[Message] = list(messages or [])

    def add(self, message: Message) -> Message:
        self._messages.append(message)
        for listener in _listeners.get():
            listener(message)
        return message

    def add_message(self, text: str, *, message_type: int = TYPE_INFORMATIVE) -> Message:
        return self.add(Message(INFORMATIVE, None, str(text), message_type))

    def add_warning(self, text: str, code: Optional[int] = None) -> Message:
        return self.add(Message(WARNING, code, str(text)))

    def add_error(self, text: str, code: Optional[int] = None) -> Message:
        return self.add(Message(ERROR, code, str(text)))

    def copy(self) -> MessageLog:
        """A snapshot, so later ``AddMessage`` calls never change a kept Result."""
        return MessageLog(self._messages)

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(tuple(self._messages))

    def __getitem__(self, index: int) -> Message:
        return self._messages[index]

    def __repr__(self) -> str:
        return f"<MessageLog {len(self._messages)} messages, max severity {self.max_severity}>"

    def texts(self, severity: int = 0) -> list[str]:
        """Rendered lines filtered like ``GetMessages``: 0 all, 1 warnings only, 2 errors only."""
        _check_severity(severity)
        return [
            m.rendered for m in self._messages if severity == INFORMATIVE or m.severity == severity
        ]

    def get_messages(self, severity: int = 0) -> str:
        return "\n".join(self.texts(severity))

    def get_message(self, index: int) -> str:
        return self._message_at(index).rendered

    def get_severity(self, index: int) -> int:
        return self._message_at(index).severity

    def _message_at(self, index: int) -> Message:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("Invalid argument type.")
        if not 0 <= index < len(self._messages):
            raise IndexError(f"The index {index} is out of range.")
        return self._messages[index]

    @property
    def max_severity(self) -> int:
        return max((m.severity for m in self._messages), default=INFORMATIVE)

    def first_code(self, severity: int = ERROR) -> Optional[int]:
        """The first message ID of that severity: the ``.code`` an ExecuteError carries."""
        return next(
            (m.code for m in self._messages if m.severity == severity and m.code is not None),
            None,
        )

    def all_messages(self) -> list[list]:
        """``GetAllMessages`` form: ``[type, return_code, text]`` per message."""
        return [[m.message_type, m.return_code, m.rendered] for m in self._messages]


# --- module-level state: "the last tool run" -----------------------------------------------

_last_log: ContextVar[MessageLog] = ContextVar("wmx_last_tool_messages")
_target_log: ContextVar[Optional[MessageLog]] = ContextVar(
    "wmx_running_tool_messages", default=None
)
_severity_level: ContextVar[int] = ContextVar("wmx_severity_level", default=ERROR)
_listeners: ContextVar[tuple[Callable[[Message], None], ...]] = ContextVar(
    "wmx_message_listeners", default=()
)


def _last() -> MessageLog:
    """The last tool's log; a fresh empty one the first time a context asks."""
    log = _last_log.get(None)
    if log is None:
        log = MessageLog()
        _last_log.set(log)
    return log


def _target() -> MessageLog:
    """Where ``AddMessage`` writes: the running tool's log, else the last tool's."""
    running = _target_log.get()
    return running if running is not None else _last()


def set_last_messages(log: MessageLog) -> None:
    """Record ``log`` as the last tool's messages (called by the tool runner)."""
    _last_log.set(log)


@contextlib.contextmanager
def listening(listener: Callable[[Message], None]) -> Iterator[None]:
    """Call ``listener`` with each message as it is written, while the block runs (the
    command line prints a tool's messages as they happen, not only when it ends)."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


@contextlib.contextmanager
def collecting(log: MessageLog) -> Iterator[MessageLog]:
    """While a tool body runs, route ``AddMessage``/``AddWarning``/``AddError`` into its log."""
    token = _target_log.set(log)
    try:
        yield log
    finally:
        _target_log.reset(token)


def GetMessages(severity: int = 0) -> str:
    """The last tool's messages joined by newlines; 0 all, 1 warnings, 2 errors."""
    return _last().get_messages(severity)


def GetMessage(index: int) -> str:
    return _last().get_message(index)


def GetMessageCount() -> int:
    return len(_last())


def GetSeverity(index: int) -> int:
    return _last().get_severity(index)


def GetMaxSeverity() -> int:
    return _last().max_severity


def GetAllMessages() -> list[list]:
    return _last().all_messages()


def add_to_current(message: Message) -> None:
    """Add ``message`` where ``AddMessage`` writes (the running tool's log, else the last
    tool's): for message functions that build coded messages (``AddIDMessage``)."""
    _target().add(message)


def AddMessage(message: object) -> None:
    """Add an informative message; never raises."""
    _target().add_message(safe_text(message))


def AddWarning(message: object) -> None:
    """Add a warning (severity 1); never raises."""
    _target().add_warning(safe_text(message))


def AddError(message: object) -> None:
    """Add an error (severity 2); never raises — as in arcpy, it does not stop the script."""
    _target().add_error(safe_text(message))


def AddReturnMessage(index: int) -> None:
    """Copy message ``index`` of the last tool run into the current messages; never raises.

    Inside a running tool the copy lands in that tool's log; outside any tool the "current"
    log is the last tool's own, so the message appears twice there.
    """
    log = _last()
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(log):
        _target().add(log[index])


_RETRIES_EXCEEDED = re.compile(
    r"HTTPS?ConnectionPool\(host='(?P<host>[^']*)', port=(?P<port>\d+)\): Max retries exceeded "
    r"with url: \S+ \(Caused by \w+\((?P<reason>.*)\)\)",
    re.DOTALL,
)
_CONNECTION_REPR = re.compile(r"\bHTTPS?Connection(?:Pool)?\(host='([^']*)', port=(\d+)\)")
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>(?:: )?")


def user_text(text: str) -> str:
    """``text`` without urllib3's wrapping (pool and connection reprs, object addresses,
    "Max retries exceeded ... Caused by"): the host, the port and the reason, as a user
    would say it. Transport details belong in DEBUG logs, never in messages."""
    text = _RETRIES_EXCEEDED.sub(lambda m: m["reason"].strip("'\""), text)
    text = _OBJECT_REPR.sub("", text)
    return _CONNECTION_REPR.sub(r"\1:\2", text)


def safe_text(message: object) -> str:
    """The string form of any object, even one whose ``__str__`` raises, in the user's
    terms (:func:`user_text`)."""
    try:
        text = str(message)
    except Exception:  # a broken __str__ must not make AddMessage raise
        return object.__repr__(message)
    return user_text(text)


def SetSeverityLevel(level: int) -> None:
    """0: never raise; 1: raise ExecuteWarning on warnings (and ExecuteError on errors);
    2 (default): raise ExecuteError on errors only. Context-local: a new thread starts at 2."""
    try:
        _check_severity(level)
    except ValueError:
        raise ValueError(f"The severity level must be 0, 1 or 2, not {level!r}.") from None
    _severity_level.set(level)


def GetSeverityLevel() -> int:
    return _severity_level.get()


def SetProgressor(
    type: str = "default",
    message: str = "",
    min_range: int = 0,
    max_range: int = 100,
    step_value: int = 1,
) -> None:
    """No-op: there is no progress dialog outside ArcGIS."""


def SetProgressorLabel(label: str) -> None:
    """No-op: there is no progress dialog outside ArcGIS."""


def SetProgressorPosition(position: Optional[int] = None) -> None:
    """No-op: there is no progress dialog outside ArcGIS."""


def ResetProgressor() -> None:
    """No-op: there is no progress dialog outside ArcGIS."""
