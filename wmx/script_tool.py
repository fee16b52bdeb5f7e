"""arcpy's script-tool functions for stand-alone scripts: the parameter functions
(``GetParameterAsText``, ``GetParameter``, ``SetParameterAsText``, ``SetParameter``,
``GetArgumentCount``) and ``AddIDMessage``.

As ArcGIS does for a script run outside a tool dialog, parameter ``i`` is ``sys.argv[i + 1]``
(read when asked, so ``wmx run script.py a b`` and ``python script.py a b`` agree), ``#`` is an
empty value, and a parameter the command line did not give reads as ``""``. A value set with
``SetParameter*`` is read back by the ``Get*`` functions (a derived output). This module must
never parse a value (a value table stays text) and never touch anything but ``sys.argv``
and the current message log.

``AddIDMessage`` writes Esri's text for the message IDs wmx's own tools use (000725, 000732,
000733, 000735); for any other ID the arguments stand in for Esri's text, with the ID kept.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from wmx.errors import (
    DATASET_EXISTS,
    DATASET_NOT_FOUND,
    SAME_AS_INPUT,
    VALUE_REQUIRED,
    VALUE_REQUIRED_TEXT,
    dataset_exists_text,
    dataset_not_found_text,
    same_as_input_text,
)
from wmx.messages import ERROR, INFORMATIVE, WARNING, Message, add_to_current

_UNSET = object()
_set_values: dict[int, Any] = {}


def _checked(index: Any) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"A parameter index is an int, not {type(index).__name__}.")
    if index < 0:
        raise IndexError(f"The index {index} is out of range.")
    return index


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _argument(index: int) -> str:
    """``sys.argv[index + 1]``; ``#`` (arcpy's "not given") and a missing one read as ``""``."""
    position = index + 1
    text = sys.argv[position] if position < len(sys.argv) else ""
    return "" if text == "#" else text


def GetArgumentCount() -> int:
    """How many arguments the script was given (``sys.argv`` without the script itself)."""
    return max(len(sys.argv) - 1, 0)


def GetParameterAsText(index: int) -> str:
    """Parameter ``index`` as text: ``""`` when it was not given or given as ``#``."""
    index = _checked(index)
    value = _set_values.get(index, _UNSET)
    return _argument(index) if value is _UNSET else _text(value)


def GetParameter(index: int) -> Any:
    """Parameter ``index``: the value a ``SetParameter`` call stored, else the command-line
    text (a stand-alone script has no typed parameters), ``None`` when it was not given."""
    index = _checked(index)
    value = _set_values.get(index, _UNSET)
    if value is not _UNSET:
        return value
    return _argument(index) or None


def SetParameterAsText(index: int, text: Any) -> None:
    """Set parameter ``index`` (a derived output) to ``text``."""
    _set_values[_checked(index)] = _text(text)


def SetParameter(index: int, value: Any) -> None:
    """Set parameter ``index`` (a derived output) to a Python value."""
    _set_values[_checked(index)] = value


def clear_parameters() -> None:
    """Forget values set with ``SetParameter*``: ``wmx run`` starts each script afresh."""
    _set_values.clear()


_SEVERITIES = {"INFORMATIVE": INFORMATIVE, "WARNING": WARNING, "ERROR": ERROR}
_ID_TEXTS: dict[int, Callable[[str, str], str]] = {
    VALUE_REQUIRED: lambda label, _other: f"{label}: {VALUE_REQUIRED_TEXT}",
    DATASET_EXISTS: lambda label, dataset: f"{label}: {dataset_exists_text(dataset)}",
    DATASET_NOT_FOUND: lambda label, dataset: f"{label}: {dataset_not_found_text(dataset)}",
    SAME_AS_INPUT: lambda label, other: f"{label}: {same_as_input_text(other)}",
}


def AddIDMessage(message_type: str, message_ID: int, add_argument1: Any = None,
                 add_argument2: Any = None) -> None:
    """Add message ``message_ID`` (``ERROR 000735: <arg1>: Value is required``) with type
    ``ERROR``, ``WARNING`` or ``INFORMATIVE``; an informative one reads
    ``Message 000735: ...`` so its ID shows in ``GetMessages``."""
    severity = _SEVERITIES.get(str(message_type).strip().upper())
    if severity is None:
        raise ValueError(f"AddIDMessage: the message type is ERROR, WARNING or INFORMATIVE, "
                         f"not {message_type!r}")
    if isinstance(message_ID, bool) or not isinstance(message_ID, int) or message_ID < 0:
        raise TypeError(f"AddIDMessage: the message ID is a whole number, not {message_ID!r}")
    first, second = _text(add_argument1), _text(add_argument2)
    template = _ID_TEXTS.get(message_ID)
    text = template(first, second) if template else " ".join(a for a in (first, second) if a)
    if severity == INFORMATIVE:
        text = f"Message {message_ID:06d}: {text}"
    add_to_current(Message(severity, message_ID, text))
