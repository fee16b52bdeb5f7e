"""The one check of a replicated element version (in store-row form, as
:meth:`Change.to_row` gives it) by its kind.

Rows from elsewhere (a peer's pages, an exchange file) are checked once where they enter: a
store's apply and snapshot load, an exchange import, a client decoding a peer's rows. A row is
refused if its body is not a JSON object with what its kind needs (the fields
:mod:`wmx.model.records` requires, and the dates and nested objects a read converts, of the
right types) or disagrees with the row's indexed columns (integer id, owning job, unique name),
its kind is unknown, its stamp impossible, or it carries attachment bytes where no attachment
is. Such a row, once stored and spread, made every later read of its kind fail on every
repository of the cluster.
This module must stay free of storage and transport code, and cheap: each body is parsed once.
"""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Any, Optional

import attrs

from wmx.model import codec
from wmx.model.clock import MAX_STAMP, is_valid_stamp
from wmx.model.records import (
    JOB_SUB_KINDS,
    NAMED_KINDS,
    RECORD_TYPES,
    Attachment,
    Record,
    _camel,
)

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
MILLIS_MIN, MILLIS_MAX = -62135596800000, 253402300799999
"""Epoch milliseconds a date field may hold: years 1 to 9999, what a ``datetime`` can be."""

_NONE = type(None)


class InvalidElement(ValueError):
    """A replicated element version is not what its kind needs; the message names it."""


@attrs.frozen
class _KindRule:
    """What one kind's body needs: for each field that is checked, its JSON types, and
    whether it is required (present and not null) or a date (epoch milliseconds in range)."""

    id_key: Optional[str]
    name_key: Optional[str]
    checked: tuple[tuple[str, tuple[type, ...], bool, bool], ...]


def _allowed(hint: Any) -> tuple[type, ...]:
    """The JSON types a record field of this annotation is read from."""
    args = typing.get_args(hint)
    if args:  # Optional[X]
        return (*_allowed(next(arg for arg in args if arg is not _NONE)), _NONE)
    return (int,) if hint is datetime else (hint,)


def _rule(cls: type[Record]) -> _KindRule:
    hints = typing.get_type_hints(cls)
    checked = []
    for field in attrs.fields(cls):
        required = field.default is attrs.NOTHING
        is_date = bool(field.metadata.get("date"))
        allowed = _allowed(hints[field.name])
        # Checked: what a read relies on. Required fields, dates (read through a converter
        # that fails on anything but epoch milliseconds) and nested JSON (read as objects or
        # lists); a plain text or number field of the wrong type reads back as it was sent.
        if field.name != "guid" and (required or is_date or {dict, list} & set(allowed)):
            checked.append((_camel(field.name), (*allowed, _NONE), required, is_date))
    return _KindRule(
        id_key=_camel(cls.ID_FIELD) if cls.ID_FIELD else None,
        name_key=_camel(cls.NAME_FIELD) if cls.NAME_FIELD and cls.KIND in NAMED_KINDS else None,
        checked=tuple(checked))


_RULES: dict[str, _KindRule] = {kind: _rule(cls) for kind, cls in RECORD_TYPES.items()}


def check_row(row: tuple) -> None:
    """Check one element version in store-row form (``ROW_FIELDS`` order, extra columns
    ignored); raise :class:`InvalidElement`, naming the element, if it is refused."""
    problem = _problem(*row[:10])
    if problem is not None:
        guid, kind = row[0], row[1]
        what = f"{kind} {guid}" if type(kind) is str and type(guid) is str else "An element"
        raise InvalidElement(f"{what}: {problem}")


def _problem(guid: Any, kind: Any, int_id: Any, job_guid: Any, name: Any, body: Any,
             content: Any, hlc: Any, origin: Any, deleted: Any) -> Optional[str]:
    """What is wrong with a row, or ``None`` (one pass, the body parsed once: this runs for
    every row replicated)."""
    if type(guid) is not str or not guid:
        return "its GUID must be non-empty text"
    rule = _RULES.get(kind) if type(kind) is str else None
    if rule is None:
        return "the element kind is unknown"
    if type(origin) is not str or not origin:
        return "its origin node must be non-empty text"
    if not is_valid_stamp(hlc):
        return f"its stamp is outside 0..{MAX_STAMP}"
    if type(deleted) not in (int, bool) or deleted not in (0, 1):
        return "deleted must be 0 or 1"
    if int_id is not None and not (type(int_id) is int and INT64_MIN <= int_id <= INT64_MAX):
        return "its integer id must be a 64-bit integer"
    if not (job_guid is None or type(job_guid) is str) or not (name is None or type(name) is str):
        return "its owning job and name columns must be text"
    if content is not None and (kind != Attachment.KIND or type(content) is not bytes):
        return "only an attachment carries content bytes"
    if body is None:
        return None if deleted else "a live element needs a body"
    if type(body) is not str:
        return "its body must be JSON text"
    try:
        data = codec.loads(body)
    except ValueError:
        return "its body is not JSON"
    if type(data) is not dict:
        return "its body is not a JSON object"
    if deleted:  # a tombstone's body is the last version's, only ever read as an object
        return None
    for key, allowed, required, is_date in rule.checked:
        value = data.get(key)
        if value is None:
            if required:
                return f"its body lacks {key}"
            continue
        value_type = type(value)
        if value_type not in allowed:
            return f"{key} has the wrong type"
        if value_type is int and not (MILLIS_MIN <= value <= MILLIS_MAX if is_date
                                      else INT64_MIN <= value <= INT64_MAX):
            return f"{key} is out of range"
    expected_id = data[rule.id_key] if rule.id_key else None
    if int_id != expected_id:
        return f"its integer id column ({int_id}) disagrees with its body ({expected_id})"
    if name != (data[rule.name_key] if rule.name_key else None):
        return "its name column disagrees with its body"
    if (kind in JOB_SUB_KINDS) != (type(job_guid) is str and job_guid != ""):
        return "its owning job column is wrong for its kind"
    return None


__all__ = ["InvalidElement", "check_row"]
