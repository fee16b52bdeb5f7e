"""Value tables: arcpy's ``ValueTable`` class, the value-table string grammar, the WMX child
rows of ``Input_Multi_Name``, last-sync times, and the ``Output_LastSync`` table.

Grammar (docs/value-tables.md has the full text and examples):

* rows are separated by ``;``; a row with no values (``a b;;c d``, a trailing ``;``) is skipped;
* values are separated by white space (any ``str.isspace`` character, line breaks included);
* a value starting with ``'`` or ``"`` runs to the matching closing quote and may hold spaces,
  ``;`` and line breaks; a quote inside is doubled (``'it''s'``); the closing quote must be
  followed by white space, ``;`` or the end;
* an unquoted ``#`` is an empty cell (``None``); ``'#'`` is the text ``#``;
* formatting quotes (with ``'``) every value that is empty, is ``#``, or contains white space,
  ``;`` or a quote, and writes ``None`` as ``#`` — so ``format`` then ``parse`` is exact.

Every malformed input raises :class:`ValueTableError` (a ``ValueError``) naming the row and the
column; nothing else escapes for bad user input. This module must never open a repository,
touch the network, or depend on the machine's locale.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timezone
from typing import Any, Optional, Union

import attrs
from dateutil.parser import isoparse

from wmx.errors import (
    INVALID_VALUE,
    INVALID_VALUE_TYPE,
    NOT_A_MEMBER,
    SAME_AS_INPUT,
    VALUE_REQUIRED,
    VALUE_REQUIRED_TEXT,
    not_a_member_text,
    same_as_input_text,
)

Cell = Optional[str]

#: Column labels of ``Input_Multi_Name`` (10.2+ names; 10.1 called ``connected``
#: ``server_status`` — the same column).
REPLICATE_COLUMNS = ("child_name", "connected", "URL")
SYNCHRONIZE_COLUMNS = ("child_repository", "connected", "URL", "last_sync_time")
LAST_SYNC_COLUMNS = ("child_repository", "connected", "URL", "last_sync_time", "status")

#: Per-child outcome written in the last column of ``Output_LastSync``.
SYNC_STATUSES = ("OK", "FAILED", "SKIPPED")


class ValueTableError(ValueError):
    """Malformed value-table input. ``code`` is the arcpy message ID the tool reports."""

    def __init__(
        self,
        code: int,
        column: str,
        message: str,
        *,
        row: Optional[int] = None,
        parameter: Optional[str] = None,
    ) -> None:
        self.code = code
        self.column = column
        self.message = message
        self.row = row
        #: Name of the tool parameter being parsed, when the caller knows it.
        self.parameter = parameter
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        """``Row 2, connected: The value is not a member of true | false.``"""
        where = ", ".join(
            part for part in (f"Row {self.row}" if self.row else "", self.column) if part
        )
        return f"{where}: {self.message}" if where else self.message

    def at_row(self, row: int) -> ValueTableError:
        """The same error, located at ``row`` (1-based)."""
        return ValueTableError(
            self.code, self.column, self.message, row=row, parameter=self.parameter
        )

    def __reduce__(self) -> tuple:
        return (_rebuild_error, (self.code, self.column, self.message, self.row, self.parameter))


def _rebuild_error(
    code: int, column: str, message: str, row: Optional[int], parameter: Optional[str]
) -> ValueTableError:
    return ValueTableError(code, column, message, row=row, parameter=parameter)


# --- the string grammar ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<sep>;)
    | '(?P<single>(?:[^']|'')*)'
    | "(?P<double>(?:[^"]|"")*)"
    | (?P<bare>[^\s;'"][^\s;]*)
    """,
    re.VERBOSE,
)
_NEEDS_QUOTES = re.compile(r"""[\s;'"]""")


def parse_value_table(text: str) -> list[list[Cell]]:
    """Split a value-table string into rows of cells (``None`` for ``#``)."""
    if not isinstance(text, str):
        raise ValueTableError(
            INVALID_VALUE_TYPE, "", f"Expected a value-table string, not {type(text).__name__}."
        )
    rows: list[list[Cell]] = []
    row: list[Cell] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only an opening quote without its closing quote gets here
            raise ValueTableError(
                INVALID_VALUE,
                "",
                f"The quote at character {position + 1} is never closed.",
                row=len(rows) + 1,
            )
        position = match.end()
        kind = match.lastgroup
        if kind == "sep":
            if row:
                rows.append(row)
            row = []
        elif kind in ("single", "double"):
            quote = "'" if kind == "single" else '"'
            if position < len(text) and not (text[position].isspace() or text[position] == ";"):
                raise ValueTableError(
                    INVALID_VALUE,
                    "",
                    f"The quoted value ending at character {position} must be followed by a "
                    f"space, ';' or the end of the text.",
                    row=len(rows) + 1,
                )
            row.append(match.group(kind).replace(quote * 2, quote))
        elif kind == "bare":
            token = match.group(kind)
            row.append(None if token == "#" else token)
    if row:
        rows.append(row)
    return rows


def format_cell(value: Cell) -> str:
    """One value in the string grammar: ``None`` → ``#``, quoted when it must be."""
    if value is None:
        return "#"
    if value in ("", "#") or _NEEDS_QUOTES.search(value):
        return "'" + value.replace("'", "''") + "'"
    return value


def format_row(cells: Sequence[Cell]) -> str:
    return " ".join(format_cell(cell) for cell in cells)


def format_value_table(rows: Iterable[Sequence[Cell]]) -> str:
    """Rows → one string that :func:`parse_value_table` reads back exactly."""
    return ";".join(format_row(cells) for cells in rows)


# --- times ----------------------------------------------------------------------------------

_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_US_TIME = re.compile(
    r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})"
    r"(?:\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?"
    r"(?:\s*(?P<half>[AP]M))?)?"
)
_ACCEPTED_TIMES = (
    "ISO 8601 (2011-08-08T12:00:00Z, 2011-08-08T12:00:00+02:00), YYYY-MM-DD HH:MM[:SS] "
    "or MM/DD/YYYY HH:MM:SS [AM|PM]"
)


def _time_error(text: str, why: str = "") -> ValueTableError:
    reason = f" ({why})" if why else ""
    return ValueTableError(
        INVALID_VALUE,
        "last_sync_time",
        f"'{text}' is not a date and time{reason}. Use {_ACCEPTED_TIMES}.",
    )


def _to_utc(value: datetime, text: str) -> datetime:
    """Naive means local time of this machine; the result is aware UTC."""
    try:
        return value.astimezone(timezone.utc)
    except (OverflowError, OSError, ValueError) as error:
        raise _time_error(text, f"cannot be converted to UTC: {error}") from None


def parse_time(value: Union[str, datetime, date]) -> datetime:
    """A last-sync time as an aware UTC datetime. Naive input is local time of this machine.

    Never locale-dependent: day-first dates (``13/08/2013``), two-digit years and month
    names are rejected rather than guessed.
    """
    if isinstance(value, datetime):
        return _to_utc(value, str(value))
    if isinstance(value, date):
        return _to_utc(datetime.combine(value, time()), value.isoformat())
    if not isinstance(value, str):
        raise ValueTableError(
            INVALID_VALUE_TYPE,
            "last_sync_time",
            f"Expected a date and time, not {type(value).__name__}.",
        )
    text = value.strip()
    upper = text.upper()
    if _ISO_TIME.fullmatch(upper):
        try:
            parsed = isoparse(upper)
        except (ValueError, OverflowError) as error:
            raise _time_error(text, str(error)) from None
        return _to_utc(parsed, text)
    us = _US_TIME.fullmatch(upper)
    if us:
        return _to_utc(_us_datetime(us, text), text)
    raise _time_error(text)


def _us_datetime(match: re.Match, text: str) -> datetime:
    hour = int(match["hour"] or 0)
    half = match["half"]
    if half:
        if not 1 <= hour <= 12:
            raise _time_error(text, "the hour must be 1-12 with AM/PM")
        hour = hour % 12 + (12 if half == "PM" else 0)
    try:
        return datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            hour,
            int(match["minute"] or 0),
            int(match["second"] or 0),
        )
    except ValueError as error:
        raise _time_error(text, f"{error}; the form is month/day/year") from None


def two_way_date(value: Any) -> Optional[tuple[str, str]]:
    """``01/12/2026`` reads both ways: (the month-first date wmx uses, the day-first one it
    passed over), both as ``YYYY-MM-DD``; None when the text reads only one way."""
    if not isinstance(value, str):
        return None
    match = _US_TIME.fullmatch(value.strip().upper())
    if match is None:
        return None
    month, day, year = int(match["month"]), int(match["day"]), match["year"]
    if month == day or not (1 <= month <= 12 and 1 <= day <= 12):
        return None
    return f"{year}-{month:02d}-{day:02d}", f"{year}-{day:02d}-{month:02d}"


def format_time(value: Union[str, datetime, date]) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC. Sub-second digits are dropped (rounding down, so a
    written last-sync time is never later than the real one)."""
    utc = parse_time(value)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


# --- cell conversions -----------------------------------------------------------------------

_TRUE = ("true", "1")
_FALSE = ("false", "0")


def parse_bool(value: Any, column: str = "connected") -> bool:
    """``true``/``false`` in any case, Python bools, ``1``/``0``; anything else is 000800."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    raise ValueTableError(NOT_A_MEMBER, column, not_a_member_text(["true", "false"]))


def _cell_text(value: Any, column: str) -> Cell:
    """A Python value as the string a value-table cell holds."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (datetime, date)):
        return format_time(value)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise ValueTableError(
        INVALID_VALUE_TYPE, column, f"Invalid value type {type(value).__name__} for a cell."
    )


_TYPED: dict[str, Any] = {
    "GPLONG": int,
    "GPDOUBLE": float,
    "GPBOOLEAN": parse_bool,
    "GPDATE": parse_time,
}


def _true_value(text: Cell, column_type: str, column: str) -> Any:
    """Convert a stored cell to its Python value for the column type (None stays None)."""
    convert = _TYPED.get(column_type.upper())
    if text is None or convert is None:
        return text
    try:
        return convert(text)
    except ValueTableError as error:
        raise ValueTableError(error.code, column, error.message) from None
    except ValueError:
        raise ValueTableError(
            INVALID_VALUE, column, f"'{text}' is not a valid {column_type} value."
        ) from None


# --- arcpy.ValueTable -----------------------------------------------------------------------


def _column_types(columns: Union[int, str, Iterable[str], None]) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, bool):
        raise TypeError("Invalid argument type.")
    if isinstance(columns, int):
        if columns < 0:
            raise ValueError("The number of columns cannot be negative.")
        return ["GPString"] * columns
    if isinstance(columns, str):
        return [columns]
    types = list(columns)
    if not all(isinstance(t, str) and t for t in types):
        raise TypeError("Column types must be non-empty strings such as 'GPString'.")
    return types


class ValueTable:
    """arcpy's ValueTable: cells are kept as strings (``getValue``) and converted on request
    (``getTrueValue``). GPLong, GPDouble, GPBoolean and GPDate cells are checked on entry."""

    def __init__(self, columns: Union[int, str, Iterable[str], None] = 1) -> None:
        self._types: list[str] = _column_types(columns)
        self._rows: list[list[Cell]] = []

    # columns
    @property
    def columnCount(self) -> int:
        return len(self._types)

    @property
    def rowCount(self) -> int:
        return len(self._rows)

    def addColumns(self, columns: Union[int, str, Iterable[str], None]) -> None:
        """Append columns; existing rows get empty cells."""
        added = _column_types(columns)
        self._types.extend(added)
        for row in self._rows:
            row.extend([None] * len(added))

    def setColumns(self, columns: Union[int, str, Iterable[str], None]) -> None:
        """Replace the column definitions; refuses to drop non-empty cells."""
        types = _column_types(columns)
        rows = [self._fit(row, number, types) for number, row in enumerate(self._rows, 1)]
        self._types, self._rows = types, rows

    # rows
    def addRow(self, value: Union[str, Sequence[Any]]) -> None:
        self._rows.append(self._new_row(value, len(self._rows) + 1))

    def setRow(self, row: int, value: str) -> None:
        """Replace a row from a row string (arcpy accepts only a string here)."""
        self._check_row(row)
        if not isinstance(value, str):
            raise TypeError("setRow takes the row as a space-delimited string.")
        self._rows[row] = self._new_row(value, row + 1)

    def removeRow(self, row: int) -> None:
        self._check_row(row)
        del self._rows[row]

    def getRow(self, row: int) -> str:
        self._check_row(row)
        return format_row(self._rows[row])

    def getTrueRow(self, row: int) -> list[Any]:
        self._check_row(row)
        return [self.getTrueValue(row, column) for column in range(self.columnCount)]

    # cells
    def getValue(self, row: int, column: int) -> str:
        """The cell as a string; an empty cell is ``""``."""
        self._check_cell(row, column)
        return self._rows[row][column] or ""

    def getTrueValue(self, row: int, column: int) -> Any:
        """GPLong → int, GPDouble → float, GPBoolean → bool, GPDate → aware UTC datetime,
        anything else → str; an empty cell → None."""
        self._check_cell(row, column)
        return _true_value(self._rows[row][column], self._types[column], self._label(column))

    def setValue(self, row: int, column: int, value: Any) -> None:
        self._check_cell(row, column)
        text = _cell_text(value, self._label(column))
        _true_value(text, self._types[column], self._label(column))
        self._rows[row][column] = text

    # strings
    def exportToString(self) -> str:
        return format_value_table(self._rows)

    def loadFromString(self, text: str) -> None:
        """Replace all rows; columns are added (as GPString) when a row is wider."""
        if not isinstance(text, str):
            raise TypeError("loadFromString takes a string.")
        rows = parse_value_table(text)
        width = max((len(row) for row in rows), default=0)
        types = self._types + ["GPString"] * max(0, width - len(self._types))
        fitted = [self._fit(row, number, types) for number, row in enumerate(rows, 1)]
        self._types, self._rows = types, fitted

    def __str__(self) -> str:
        return self.exportToString()

    def __repr__(self) -> str:
        return f"<ValueTable columns={self._types!r} rows={len(self._rows)}>"

    # helpers
    def _label(self, column: int) -> str:
        return f"column {column} ({self._types[column]})"

    def _new_row(self, value: Union[str, Sequence[Any]], number: int) -> list[Cell]:
        if isinstance(value, str):
            rows = parse_value_table(value)
            if len(rows) != 1:
                raise ValueTableError(
                    INVALID_VALUE,
                    "",
                    f"A row string must hold exactly one row, not {len(rows)}.",
                    row=number,
                )
            cells = rows[0]
        elif isinstance(value, (list, tuple)):
            cells = [_cell_text(item, f"column {index}") for index, item in enumerate(value)]
        else:
            raise TypeError("A row is a space-delimited string or a list of values.")
        return self._fit(cells, number, self._types)

    def _fit(self, cells: Sequence[Cell], number: int, types: Sequence[str]) -> list[Cell]:
        """Pad a row with empty cells to the column count, check typed cells, refuse extras."""
        if not types and cells:
            raise ValueTableError(
                INVALID_VALUE,
                "",
                "The value table has no columns; add columns first.",
                row=number,
            )
        if any(cell is not None for cell in cells[len(types) :]):
            raise ValueTableError(
                INVALID_VALUE,
                "",
                f"{len(cells)} values given for {len(types)} columns.",
                row=number,
            )
        row = list(cells[: len(types)]) + [None] * (len(types) - len(cells))
        for index, (text, column_type) in enumerate(zip(row, types)):
            try:
                _true_value(text, column_type, f"column {index} ({column_type})")
            except ValueTableError as error:
                raise error.at_row(number) from None
        return row

    def _check_row(self, row: int) -> None:
        if isinstance(row, bool) or not isinstance(row, int):
            raise TypeError("Invalid argument type.")
        if not 0 <= row < len(self._rows):
            raise IndexError(f"The index {row} is out of range.")

    def _check_cell(self, row: int, column: int) -> None:
        self._check_row(row)
        if isinstance(column, bool) or not isinstance(column, int):
            raise TypeError("Invalid argument type.")
        if not 0 <= column < len(self._types):
            raise IndexError(f"The index {column} is out of range.")


# --- WMX child rows -------------------------------------------------------------------------


@attrs.frozen
class ChildRow:
    """One child repository from ``Input_Multi_Name``; ``last_sync_time`` is aware UTC."""

    name: str
    connected: bool
    url: str
    last_sync_time: Optional[datetime] = None


def _status(value: Any) -> str:
    if isinstance(value, str) and value.strip().upper() in SYNC_STATUSES:
        return value.strip().upper()
    raise ValueTableError(NOT_A_MEMBER, "status", not_a_member_text(list(SYNC_STATUSES)))


@attrs.frozen
class LastSyncRow:
    """One row of ``Output_LastSync``: what happened to one child in this run."""

    name: str
    connected: bool
    url: str
    last_sync_time: Optional[datetime]
    status: str = attrs.field(converter=_status)


def format_last_sync(rows: Iterable[LastSyncRow]) -> str:
    """``name connected url time status`` rows; a valid Synchronize ``Input_Multi_Name``."""
    return format_value_table(
        [
            row.name,
            "true" if row.connected else "false",
            row.url,
            format_time(row.last_sync_time) if row.last_sync_time is not None else None,
            row.status,
        ]
        for row in rows
    )


def parse_last_sync(text: str) -> list[LastSyncRow]:
    """Read an ``Output_LastSync`` string back into rows (five values per row)."""
    rows = []
    for number, cells in enumerate(parse_value_table(text), 1):
        try:
            if len(cells) != len(LAST_SYNC_COLUMNS):
                raise _count_error(LAST_SYNC_COLUMNS, len(cells))
            name = _required(cells[0], LAST_SYNC_COLUMNS[0])
            connected = parse_bool(cells[1])
            url = _required(cells[2], "URL")
            when = _optional_time(cells[3])
            rows.append(LastSyncRow(name, connected, url, when, cells[4]))
        except ValueTableError as error:
            raise error.at_row(number) from None
    return rows


def _count_error(
    columns: Sequence[str], found: int, *, last_optional: bool = False
) -> ValueTableError:
    """``Expected 3 values (...)``; a Synchronize row says that 3 or 4 are accepted."""
    if last_optional:
        names = " ".join(columns[:-1]) + f" [{columns[-1]}]"
        expected = f"{len(columns) - 1} or {len(columns)}"
    else:
        names, expected = " ".join(columns), str(len(columns))
    return ValueTableError(
        INVALID_VALUE, "", f"Expected {expected} values ({names}), found {found}."
    )


def _required(value: Any, column: str) -> str:
    """A name or URL cell: text, an int or a path; empty or ``#`` is 000735."""
    if value is None:
        raise ValueTableError(VALUE_REQUIRED, column, VALUE_REQUIRED_TEXT)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif isinstance(value, os.PathLike) and isinstance(os.fspath(value), str):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueTableError(
            INVALID_VALUE_TYPE, column, f"Invalid value type {type(value).__name__}."
        )
    text = value.strip()
    if text in ("", "#"):
        raise ValueTableError(VALUE_REQUIRED, column, VALUE_REQUIRED_TEXT)
    return text


def _optional_time(value: Any) -> Optional[datetime]:
    if value is None or (isinstance(value, str) and value.strip() in ("", "#")):
        return None
    return parse_time(value)


def _is_status(cell: Any) -> bool:
    return isinstance(cell, str) and cell.strip().upper() in SYNC_STATUSES


def _raw_rows(value: Any, width: int) -> list[tuple[list[Any], bool]]:
    """Rows of cells from any accepted input; the flag says whether the row came from text
    (only text rows may have their extra tokens joined into the time)."""
    if isinstance(value, str):
        return [(cells, True) for cells in parse_value_table(value)]
    if isinstance(value, ValueTable):
        rows = []
        for cells in value._rows:
            trimmed = list(cells)
            while len(trimmed) > width and trimmed[-1] is None:
                trimmed.pop()
            rows.append((trimmed, True))
        return rows
    if isinstance(value, (list, tuple)):
        rows = []
        for number, item in enumerate(value, 1):
            if isinstance(item, str):
                rows.extend((cells, True) for cells in parse_value_table(item))
            elif isinstance(item, (list, tuple)):
                rows.append((list(item), False))
            else:
                raise ValueTableError(
                    INVALID_VALUE_TYPE,
                    "",
                    f"A row must be a list, a tuple or a row string, not {type(item).__name__}.",
                    row=number,
                )
        return rows
    if value is None:
        return []
    raise ValueTableError(
        INVALID_VALUE_TYPE,
        "",
        "Invalid value type: expected a value-table string, a list of rows or a ValueTable, "
        f"not {type(value).__name__}.",
    )


def _split_time(cells: list[Any], from_text: bool) -> tuple[list[Any], Any]:
    """Separate name/connected/URL from the last-sync time of a Synchronize row: an optional
    trailing status (``OK``/``FAILED``/``SKIPPED``) is dropped, and in text rows extra tokens
    are joined into the time, silently: Esri's own sample writes ``2011-08-08 12:00`` unquoted."""
    if len(cells) < 3:
        raise _count_error(SYNCHRONIZE_COLUMNS, len(cells), last_optional=True)
    head, rest = cells[:3], cells[3:]
    if len(rest) >= 2 and _is_status(rest[-1]):
        rest = rest[:-1]
    if len(rest) <= 1:
        return head, rest[0] if rest else None
    if not from_text or not all(isinstance(cell, str) for cell in rest):
        raise _count_error(SYNCHRONIZE_COLUMNS, len(cells), last_optional=True)
    return head, " ".join(rest)


_TIME_PART = re.compile(r"\d[\d/:.T-]*(?:Z|[+-]\d\d(?::?\d\d)?)?|[AP]M", re.IGNORECASE)


def _with_quoting_hint(error: ValueTableError, cells: list[Any]) -> ValueTableError:
    """A text row whose URL held an unquoted space fails as a count or time error; say what
    the user most likely meant: the URL and the tokens after it, quoted."""
    if error.code != INVALID_VALUE or error.column not in ("", "last_sync_time"):
        return error
    path: list[str] = []
    for cell in cells[2:]:
        if not isinstance(cell, str) or _TIME_PART.fullmatch(cell) or _is_status(cell):
            break
        path.append(cell)
    if len(path) < 2:
        return error
    hint = f" If the URL or path contains spaces, quote it: {format_cell(' '.join(path))}."
    return ValueTableError(error.code, error.column, error.message + hint,
                           row=error.row, parameter=error.parameter)


def _connected(
    value: Any, synchronize: bool, name: str, number: int, warnings: list[str]
) -> bool:
    """Replicate needs ``true``/``false`` (000800 otherwise). Synchronize, as Esri's tool,
    processes only ``true`` children: any other value skips the child with a warning."""
    try:
        return parse_bool(value)
    except ValueTableError:
        if not synchronize:
            raise
    if isinstance(value, str):
        shown = value
    elif value is None:
        shown = format_cell(None)
    else:  # never repr(): a hostile cell's __repr__ must not escape as another error
        shown = f"a {type(value).__name__}"
    warnings.append(
        f"Row {number}: connected is {shown}, not true or false; {name} is skipped "
        "(Synchronize processes only children whose connected value is true)."
    )
    return False


def _location_key(location: str) -> str:
    """Compare repository locations: URLs case-insensitively without trailing slashes, file
    paths (and ``sqlite:///path``) as resolved absolute paths."""
    text = location.strip()
    if text.lower().startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text):
        return text.rstrip("/").casefold()
    try:
        return os.path.normcase(os.path.realpath(text.rstrip("/\\") or text))
    except (OSError, ValueError):
        return text.rstrip("/\\").casefold()


def parse_child_rows(
    value: Any, *, synchronize: bool, parent_url: Optional[str] = None
) -> tuple[list[ChildRow], list[str]]:
    """Validate ``Input_Multi_Name`` → (child rows, warnings).

    Accepts the string form, a list/tuple of rows (lists, tuples or row strings) and a
    :class:`ValueTable`. Replicate rows are ``name connected URL``; Synchronize rows add the
    last-sync time (optional, ``#`` = no lower bound) and may end with a status word, so
    ``Output_LastSync`` is valid input.
    """
    columns = SYNCHRONIZE_COLUMNS if synchronize else REPLICATE_COLUMNS
    raw = _raw_rows(value, len(columns))
    if not raw:
        raise ValueTableError(VALUE_REQUIRED, "", VALUE_REQUIRED_TEXT)
    parent_key = _location_key(parent_url) if parent_url else None
    children: list[ChildRow] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for number, (cells, from_text) in enumerate(raw, 1):
        try:
            if synchronize:
                head, when = _split_time(cells, from_text)
            elif len(cells) != len(columns):
                raise _count_error(columns, len(cells))
            else:
                head, when = cells, None
            name = _required(head[0], columns[0])
            connected = _connected(head[1], synchronize, name, number, warnings)
            url = _required(head[2], "URL")
            child = ChildRow(name, connected, url, _optional_time(when))
            readings = two_way_date(when)
            if readings:
                warnings.append(
                    f"Row {number}: last_sync_time {when.strip()} was read month-first as "
                    f"{readings[0]} (Esri's US form); it could be day-first ({readings[1]}). "
                    "Write the date as YYYY-MM-DD to remove the doubt."
                )
            if name.casefold() in seen:
                raise ValueTableError(
                    INVALID_VALUE,
                    columns[0],
                    f"Duplicate child repository name {name} "
                    f"(also in row {seen[name.casefold()]}).",
                )
            if parent_key is not None and _location_key(url) == parent_key:
                raise ValueTableError(
                    SAME_AS_INPUT,
                    "URL",
                    same_as_input_text("Parent Repository URL")
                    + " (a repository cannot be its own child)",
                )
        except ValueTableError as error:
            hinted = _with_quoting_hint(error, cells) if from_text else error
            raise hinted.at_row(number) from None
        seen[name.casefold()] = number
        children.append(child)
    return children, warnings
