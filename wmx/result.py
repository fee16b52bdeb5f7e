"""``Result``: what a wmx tool returns, behaving like arcpy's Result (string outputs, ``<Result
'0'>`` repr, indexing, messages), plus typed accessors for new code and a notebook view.

A Result is a read-only snapshot of one finished run: it keeps its own copy of the messages, so
later tool runs or ``AddMessage`` calls never change it. This module must never run a tool or
decide success; the tool runner builds Results.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Optional, Union

import attrs

from wmx.messages import MessageLog
from wmx.valuetable import (
    LastSyncRow,
    ValueTable,
    ValueTableError,
    format_cell,
    format_time,
    parse_last_sync,
)

NEW = 0
SUCCEEDED = 4
FAILED = 5

_STATUS_NAMES = {
    0: "New",
    1: "Submitted",
    2: "Waiting",
    3: "Executing",
    4: "Succeeded",
    5: "Failed",
    6: "Timed out",
    7: "Cancelling",
    8: "Cancelled",
    9: "Deleting",
    10: "Deleted",
}
LAST_SYNC_OUTPUT = "Output_LastSync"
_INTEGER = re.compile(r"[+-]?\d+")

if TYPE_CHECKING:
    from wmx.result_view import ChildReport


def _input_text(value: Any) -> str:
    """An input value as arcpy echoes it: text, ``true``/``false``, value tables as strings."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, ValueTable):
        return value.exportToString()
    if isinstance(value, (list, tuple)):
        return ";".join(_row_text(item) for item in value)
    if isinstance(value, (datetime, date)):
        try:
            return format_time(value)
        except ValueTableError:  # beyond what UTC can express: echo it as given
            return str(value)
    return str(value)


def _row_text(item: Any) -> str:
    """One row of a list-of-lists value table; a plain item is already a row string."""
    if isinstance(item, (list, tuple)):
        return " ".join(format_cell(None if cell is None else _input_text(cell)) for cell in item)
    return _input_text(item)


class Result:
    """One tool run: outputs as strings, in parameter order, plus the run's messages."""

    def __init__(
        self,
        tool_name: str,
        inputs: Sequence[tuple[str, Any]],
        outputs: Sequence[tuple[str, str]],
        messages: MessageLog,
        status: int = SUCCEEDED,
    ) -> None:
        self._tool_name = tool_name
        self._inputs = [(name, _input_text(value)) for name, value in inputs]
        self._outputs = [(name, _input_text(value)) for name, value in outputs]
        self._messages = messages
        self._status = status

    # --- arcpy properties ---
    @property
    def outputCount(self) -> int:
        return len(self._outputs)

    @property
    def inputCount(self) -> int:
        return len(self._inputs)

    @property
    def messageCount(self) -> int:
        return len(self._messages)

    @property
    def maxSeverity(self) -> int:
        return self._messages.max_severity

    @property
    def status(self) -> int:
        return self._status

    @property
    def resultID(self) -> str:
        """Always ``""``: wmx tools run locally, never as a geoprocessing-service job."""
        return ""

    # --- arcpy methods ---
    def getOutput(self, index: Union[int, str]) -> str:
        return self._lookup(self._outputs, index)

    def getInput(self, index: Union[int, str]) -> str:
        return self._lookup(self._inputs, index)

    def getMessages(self, severity: int = 0) -> str:
        return self._messages.get_messages(severity)

    def getMessage(self, index: int) -> str:
        return self._messages.get_message(index)

    def getSeverity(self, index: int) -> int:
        return self._messages.get_severity(index)

    def getAllMessages(self) -> list[list]:
        return self._messages.all_messages()

    def cancel(self) -> None:
        """No-op: a local run has already finished when its Result exists."""

    # --- Python protocol ---
    def __getitem__(self, key: Union[int, slice, str]) -> Any:
        if isinstance(key, slice):
            return [value for _name, value in self._outputs[key]]
        if isinstance(key, int) and not isinstance(key, bool):
            position = key + len(self._outputs) if key < 0 else key
            return self._lookup(self._outputs, position, shown=key)
        if isinstance(key, str):
            return self._lookup(self._outputs, key)
        raise TypeError("Invalid argument type.")

    def __len__(self) -> int:
        return len(self._outputs)

    def __iter__(self) -> Iterator[str]:
        return iter([value for _name, value in self._outputs])

    def __str__(self) -> str:
        return self._outputs[0][1] if self._outputs else ""

    def __repr__(self) -> str:
        return f"<Result '{self}'>"

    @staticmethod
    def _lookup(pairs: list[tuple[str, str]], index: Union[int, str], shown: Any = None) -> str:
        if isinstance(index, str):
            exact = [value for name, value in pairs if name == index]
            folded = [value for name, value in pairs if name.casefold() == index.casefold()]
            if exact or folded:
                return (exact or folded)[0]
            raise IndexError(f"The index {index} is out of range.")
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("Invalid argument type.")
        if not 0 <= index < len(pairs):
            raise IndexError(f"The index {index if shown is None else shown} is out of range.")
        return pairs[index][1]

    # --- typed extras (not in arcpy) ---
    @property
    def tool_name(self) -> str:
        return self._tool_name

    @property
    def messages(self) -> MessageLog:
        return self._messages

    @property
    def status_code(self) -> Optional[int]:
        """Output 0 as an int (the tools' Long status, 0 = success); None when it is empty."""
        text = str(self).strip()
        if not text:
            return None
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"Output 0 of {self._tool_name} is {text!r}, not an integer status.")
        return int(text)

    def value(self, index: Union[int, str]) -> Union[int, str]:
        """An output, as an int when its text is an integer, else the string."""
        text = self[index]
        return int(text) if _INTEGER.fullmatch(text.strip()) else text

    @property
    def last_sync(self) -> list[LastSyncRow]:
        """The ``Output_LastSync`` table as rows with real datetimes; [] without that output."""
        for name, text in self._outputs:
            if name.casefold() == LAST_SYNC_OUTPUT.casefold():
                return parse_last_sync(text)
        return []

    def to_rows(self) -> list[dict[str, Any]]:
        """The last-sync table as dicts (``name, connected, url, last_sync_time, status``)."""
        return [attrs.asdict(row) for row in self.last_sync]

    @property
    def outputs(self) -> list[tuple[str, str]]:
        """(parameter name, value) of every output, in order."""
        return list(self._outputs)

    @property
    def children(self) -> list[ChildReport]:
        """Per child of a replicate or synchronize run: the last-sync row, the tool's message
        about it and its element counts ([] for other tools)."""
        from wmx.result_view import child_reports  # the view module builds on this one

        return child_reports(self.last_sync, self._messages.messages)

    @property
    def conflicts(self) -> list[str]:
        """The conflicts the run logged, one line each (also in the warnings)."""
        from wmx.result_view import conflict_lines

        return conflict_lines(self._messages.messages)

    def to_dataframe(self) -> Any:
        """``result.children`` as a pandas DataFrame (pandas is optional)."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                "Result.to_dataframe() needs pandas, which is not installed "
                "(pip install pandas). result.children holds the same data as records, "
                "result.to_rows() the last-sync table as dicts."
            ) from error
        from wmx.result_view import ChildReport

        columns = [field.name for field in attrs.fields(ChildReport)]
        return pandas.DataFrame([attrs.asdict(child) for child in self.children],
                                columns=columns)

    def _repr_html_(self) -> str:
        """Notebook view: status badge, per-child table, conflicts, outputs, messages."""
        from wmx.result_view import render_html

        return render_html(self)
