"""The generic geoprocessing-tool runner: binds arguments to a tool's parameters, checks required
values, runs the tool body, writes arcpy's message layout, honours the severity level, and turns
every outcome into a ``Result`` or an ``ExecuteError``.

This is the single place where an exception becomes an ``ExecuteError`` (a repository failure
gets its code from :mod:`wmx.tools.failures`). It holds no replication logic and must never let
a raw traceback from a tool body reach the user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Callable, Optional

import attrs

from wmx.errors import (
    PARAMETERS_NOT_VALID,
    UNEXPECTED_ERROR,
    VALUE_REQUIRED,
    VALUE_REQUIRED_TEXT,
    execute_warning,
    failed_to_execute,
    runtime_error,
    validation_error,
)
from wmx.messages import (
    ERROR,
    TYPE_START,
    TYPE_STOP,
    WARNING,
    GetSeverityLevel,
    MessageLog,
    collecting,
    safe_text,
    set_last_messages,
)
from wmx.repository.base import RepositoryError
from wmx.result import FAILED, SUCCEEDED, Result
from wmx.tools.failures import UNNAMED, classify
from wmx.valuetable import ValueTableError

LOGGER = logging.getLogger("wmx.tools")

#: Values that mean "not supplied", as in arcpy.
_SKIP_MARKERS = ("", "#")
_VALUE_TABLE_TYPES = ("value table", "gpvaluetable")
_VERBS = {None: "Succeeded", "validation": "Failed", "runtime": "Failed",
          "incomplete": "Completed with errors"}
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


@attrs.frozen
class Parameter:
    """One tool parameter: Esri ``name`` (keyword), display ``label`` (used in messages)."""

    name: str
    label: str
    datatype: str
    direction: str = attrs.field(
        default="Input", validator=attrs.validators.in_(("Input", "Output"))
    )
    required: bool = True


def _parameter_tuple(parameters: Iterable[Parameter]) -> tuple[Parameter, ...]:
    return tuple(parameters)


@attrs.frozen
class ToolSpec:
    """A tool's identity and parameters; ``name`` is what ``Failed to execute (...)`` shows."""

    name: str
    label: str
    parameters: tuple[Parameter, ...] = attrs.field(converter=_parameter_tuple)

    @property
    def inputs(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.direction == "Input")

    @property
    def outputs(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.direction == "Output")

    def label_of(self, name: str) -> str:
        """The display label of parameter ``name`` (messages name parameters by label)."""
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter.label
        raise KeyError(name)


class ToolContext:
    """What a tool body may do to its run's messages."""

    def __init__(self, spec: ToolSpec, log: MessageLog) -> None:
        self.spec = spec
        self._log = log
        self.incomplete = False

    def add_message(self, text: str) -> None:
        self._log.add_message(text)

    def add_warning(self, text: str, code: Optional[int] = None) -> None:
        self._log.add_warning(text, code)

    def add_error(self, text: str, code: Optional[int] = None) -> None:
        """Record an error without stopping the body; the run fails when the body returns."""
        self._log.add_error(text, code)

    def mark_incomplete(self) -> None:
        """Part of the work failed (its warnings say which) and the rest was done: the run
        returns its Result, status Failed, closing "Completed with errors", never raising."""
        self.incomplete = True


class ValidationFailure(Exception):
    """Raised by a body: parameters are not valid. Issues are ``(code, label, text)``; each
    becomes ``ERROR 000NNN: <label>: <text>`` (no label: ``ERROR 000NNN: <text>``)."""

    def __init__(self, issues: Iterable[tuple[Optional[int], str, str]]) -> None:
        self.issues = [(code, label, text) for code, label, text in issues]
        if not self.issues:
            raise ValueError("ValidationFailure needs at least one issue")
        super().__init__("; ".join(_issue_text(label, text) for _code, label, text in self.issues))


class ToolFailure(Exception):
    """Raised by a body: the tool started and failed. ``outputs`` are the outputs as far as
    the tool got (a failed run's Result still shows them)."""

    def __init__(
        self, code: Optional[int], text: str, outputs: Optional[Mapping[str, str]] = None
    ) -> None:
        self.code = code
        self.text = text
        self.outputs = dict(outputs or {})
        super().__init__(text)


Body = Callable[[ToolContext, dict[str, Any]], Optional[Mapping[str, str]]]


def run_tool(spec: ToolSpec, args: tuple, kwargs: dict, body: Body) -> Result:
    """Run one tool call the way arcpy does and return its Result (or raise ExecuteError)."""
    values = _bind(spec, args, kwargs)
    log = MessageLog()
    clock = time.perf_counter()
    log.add_message(f"Start Time: {_timestamp(datetime.now())}", message_type=TYPE_START)
    missing = [p for p in spec.inputs if p.required and values[p.name] is None]
    failure: Optional[str]
    outputs: dict[str, str]
    if missing:
        issues = [(VALUE_REQUIRED, p.label, VALUE_REQUIRED_TEXT) for p in missing]
        failure, outputs = _write_validation(log, spec, issues), {}
    else:
        failure, outputs = _call_body(spec, body, values, log)
    verb = _VERBS[failure]
    elapsed = time.perf_counter() - clock
    log.add_message(
        f"{verb} at {_timestamp(datetime.now())} (Elapsed Time: {elapsed:.2f} seconds)",
        message_type=TYPE_STOP,
    )
    set_last_messages(log)
    result = Result(
        spec.name,
        [(p.name, values[p.name]) for p in spec.inputs],
        [(p.name, outputs.get(p.name, "")) for p in spec.outputs],
        log.copy(),
        FAILED if failure else SUCCEEDED,
    )
    _log_outcome(spec, log, verb, elapsed)
    level = GetSeverityLevel()
    if failure == "validation" and level > 0:
        raise validation_error(log, result)
    if failure == "runtime" and level > 0:
        raise runtime_error(log, result)
    if level == 1 and log.max_severity == WARNING:
        raise execute_warning(log, result)
    return result


def _bind(spec: ToolSpec, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Positional and keyword arguments → {input name: value or None}, as Python would."""
    inputs = spec.inputs
    if len(args) > len(inputs):
        raise TypeError(
            f"{spec.name}() takes from 0 to {len(inputs)} positional arguments "
            f"but {len(args)} were given"
        )
    values: dict[str, Any] = {p.name: None for p in inputs}
    values.update((p.name, value) for p, value in zip(inputs, args))
    for key, value in kwargs.items():
        if key not in values:
            raise TypeError(f"{spec.name}() got an unexpected keyword argument '{key}'")
        if any(p.name == key for p in inputs[: len(args)]):
            raise TypeError(f"{spec.name}() got multiple values for argument '{key}'")
        values[key] = value
    return {name: None if _is_skip(value) else value for name, value in values.items()}


def _is_skip(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value in _SKIP_MARKERS)


def _call_body(
    spec: ToolSpec, body: Body, values: dict[str, Any], log: MessageLog
) -> tuple[Optional[str], dict[str, str]]:
    """Run the body; return (None | "validation" | "runtime" | "incomplete", outputs)."""
    ctx = ToolContext(spec, log)
    try:
        with collecting(log):
            returned = body(ctx, dict(values))
        outputs = _outputs(spec, returned)
    except ValidationFailure as failure:
        return _write_validation(log, spec, failure.issues), {}
    except ValueTableError as error:
        issue = (error.code, _value_table_label(spec, error.parameter), error.detail)
        return _write_validation(log, spec, [issue]), {}
    except ToolFailure as failure:
        log.add_error(failure.text, failure.code)
        return _write_runtime(log, spec), failure.outputs
    except RepositoryError as error:  # a repository failed where the tool did not expect it
        known = classify(error, UNNAMED)
        log.add_error(known.text, known.code)
        return _write_runtime(log, spec), {}
    except Exception as error:
        LOGGER.debug("Unexpected error in %s", spec.name, exc_info=True)
        log.add_error(
            f"Error executing function. {type(error).__name__}: {safe_text(error)}",
            UNEXPECTED_ERROR,
        )
        return _write_runtime(log, spec), {}
    if log.max_severity == ERROR:  # the body called add_error / AddError and returned
        return _write_runtime(log, spec), outputs
    return ("incomplete" if ctx.incomplete else None), outputs


def _outputs(spec: ToolSpec, returned: Optional[Mapping[str, str]]) -> dict[str, str]:
    """Check the body's return value names only this tool's outputs."""
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        raise TypeError(f"the tool body returned {type(returned).__name__}, not a mapping")
    unknown = sorted(set(returned) - {p.name for p in spec.outputs})
    if unknown:
        raise TypeError(f"the tool body returned unknown outputs {unknown}")
    return dict(returned)


def _issue_text(label: str, text: str) -> str:
    return f"{label}: {text}" if label else text


def _write_validation(
    log: MessageLog, spec: ToolSpec, issues: Iterable[tuple[Optional[int], str, str]]
) -> str:
    log.add_error(PARAMETERS_NOT_VALID)
    for code, label, text in issues:
        log.add_error(_issue_text(label, text), code)
    log.add_error(failed_to_execute(spec.name))
    return "validation"


def _write_runtime(log: MessageLog, spec: ToolSpec) -> str:
    log.add_error(failed_to_execute(spec.name))
    return "runtime"


def _value_table_label(spec: ToolSpec, parameter: Optional[str]) -> str:
    """The label a ValueTableError is reported under: its parameter, else the tool's first
    value-table input."""
    for p in spec.inputs:
        if p.name == parameter:
            return p.label
    for p in spec.inputs:
        if p.datatype.casefold() in _VALUE_TABLE_TYPES:
            return p.label
    return ""


def _timestamp(moment: datetime) -> str:
    """``Saturday, November 21, 2026 10:00:00 AM`` — English names whatever the locale."""
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return (
        f"{_DAYS[moment.weekday()]}, {_MONTHS[moment.month - 1]} {moment.day}, {moment.year} "
        f"{hour}:{moment.minute:02d}:{moment.second:02d} {half}"
    )


def _log_outcome(spec: ToolSpec, log: MessageLog, verb: str, elapsed: float) -> None:
    errors = log.texts(ERROR)
    if errors:
        LOGGER.info("%s failed in %.2f s: %s", spec.name, elapsed, " | ".join(errors))
    else:
        LOGGER.info("%s %s in %.2f s", spec.name, verb.lower(), elapsed)
