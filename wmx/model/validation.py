"""The one check of a replicated element version (a store row or a :class:`Change`) by its kind.

Rows from elsewhere (a peer's pages, an exchange file) are checked once where they enter: a
store's apply and snapshot load, an exchange import, a client decoding a peer's rows. A row is
refused if its body is not a JSON object with what its kind needs (the fields
:mod:`wmx.model.records` requires, of the types it reads) or disagrees with the row's indexed
columns (integer id, owning job, unique name), its kind is unknown, its stamp impossible, or it
carries attachment bytes where no attachment is. Such a row, once stored and spread, made every
later read of its kind fail on every repository of the cluster.
This module must stay free of storage and transport code, and cheap: each body is parsed once.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Optional

import attrs

from wmx.model import codec
from wmx.model.changes import Change
from wmx.model.clock import MAX_STAMP, is_valid_stamp
from wmx.model.records import JOB_SUB_KINDS, NAMED_KINDS, RECORD_TYPES, Attachment, _camel

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
MILLIS_MIN, MILLIS_MAX = -62135596800000, 253402300799999
"""Epoch milliseconds a date field may hold: years 1 to 9999, what a ``datetime`` can be."""

_NONE = type(None)


class InvalidElement(ValueError):
    """A replicated element version is not what its kind needs; the message names it."""


@attrs.frozen
class _KindRule:
    """What one kind's body needs: required keys, and the types each known key may have."""

    id_key: Optional[str]
    name_key: Optional[str]
    required: tuple[str, ...]
    types: dict[str, tuple[type, ...]]
    dates: frozenset[str]


def _allowed(hint: Any) -> tuple[type, ...]:
    """The JSON types a record field of this annotation is read from."""
    args = typing.get_args(hint)
    if args:  # Optional[X]
        return (*_allowed(next(arg for arg in args if arg is not _NONE)), _NONE)
    return (int,) if hint is datetime else (hint,)


@functools.cache
def _rule(kind: str) -> Optional[_KindRule]:
    cls = RECORD_TYPES.get(kind)
    if cls is None:
        return None
    hints = typing.get_type_hints(cls)
    fields = [field for field in attrs.fields(cls) if field.name != "guid"]
    return _KindRule(
        id_key=_camel(cls.ID_FIELD) if cls.ID_FIELD else None,
        name_key=_camel(cls.NAME_FIELD) if cls.NAME_FIELD and kind in NAMED_KINDS else None,
        required=tuple(_camel(f.name) for f in fields if f.default is attrs.NOTHING),
        # A field with a default may be null: the record then reads its default's place.
        types={_camel(f.name): (*_allowed(hints[f.name]), _NONE) for f in fields},
        dates=frozenset(_camel(f.name) for f in fields if f.metadata.get("date")))


def check_row(row: tuple) -> None:
    """Check one store row (``ROW_FIELDS`` order); raise :class:`InvalidElement` if refused."""
    _check(*row[:10])


def check_change(change: Change) -> None:
    _check(change.guid, change.kind, change.int_id, change.job_guid, change.name, change.body,
           change.content, change.hlc, change.origin, change.deleted)


def check_rows(rows: Iterable[tuple]) -> None:
    for row in rows:
        _check(*row[:10])


def check_changes(changes: Iterable[Change]) -> None:
    for change in changes:
        check_change(change)


def _check(guid: Any, kind: Any, int_id: Any, job_guid: Any, name: Any, body: Any,
           content: Any, hlc: Any, origin: Any, deleted: Any) -> None:
    what = f"{kind} {guid}" if type(kind) is str and type(guid) is str else "An element"
    if type(guid) is not str or not guid:
        raise InvalidElement(f"{what}: its GUID must be non-empty text")
    rule = _rule(kind) if type(kind) is str else None
    if rule is None:
        raise InvalidElement(f"{what}: the element kind is unknown")
    if type(origin) is not str or not origin:
        raise InvalidElement(f"{what}: its origin node must be non-empty text")
    if not is_valid_stamp(hlc):
        raise InvalidElement(f"{what}: its stamp is outside 0..{MAX_STAMP}")
    if deleted not in (0, 1) or type(deleted) not in (int, bool):
        raise InvalidElement(f"{what}: deleted must be 0 or 1")
    if int_id is not None and not (type(int_id) is int and INT64_MIN <= int_id <= INT64_MAX):
        raise InvalidElement(f"{what}: its integer id must be a 64-bit integer")
    if not (job_guid is None or type(job_guid) is str) or not (name is None or type(name) is str):
        raise InvalidElement(f"{what}: its owning job and name columns must be text")
    if content is not None and (kind != Attachment.KIND or type(content) is not bytes):
        raise InvalidElement(f"{what}: only an attachment carries content bytes")
    if body is None:
        if not deleted:
            raise InvalidElement(f"{what}: a live element needs a body")
        return
    data = _parse(what, body)
    if deleted:  # a tombstone's body is the last version's, only ever read as an object
        return
    _check_body(what, rule, data)
    expected_id = data[rule.id_key] if rule.id_key else None
    if int_id != expected_id:
        raise InvalidElement(f"{what}: its integer id column ({int_id}) disagrees with its "
                             f"body ({expected_id})")
    expected_name = data[rule.name_key] if rule.name_key else None
    if name != expected_name:
        raise InvalidElement(f"{what}: its name column disagrees with its body")
    if (kind in JOB_SUB_KINDS) != (type(job_guid) is str and job_guid != ""):
        raise InvalidElement(f"{what}: its owning job column is wrong for its kind")


def _parse(what: str, body: Any) -> dict:
    if type(body) is not str:
        raise InvalidElement(f"{what}: its body must be JSON text")
    try:
        data = codec.loads(body)
    except ValueError:
        raise InvalidElement(f"{what}: its body is not JSON") from None
    if type(data) is not dict:
        raise InvalidElement(f"{what}: its body is not a JSON object")
    return data


def _check_body(what: str, rule: _KindRule, data: dict) -> None:
    for key in rule.required:
        if data.get(key) is None:
            raise InvalidElement(f"{what}: its body lacks {key}")
    types = rule.types
    for key, value in data.items():
        allowed = types.get(key)
        if allowed is None:  # a key the record does not read
            continue
        kind = type(value)
        if kind not in allowed:
            raise InvalidElement(f"{what}: {key} has the wrong type")
        if kind is int and not (MILLIS_MIN <= value <= MILLIS_MAX if key in rule.dates
                                else INT64_MIN <= value <= INT64_MAX):
            raise InvalidElement(f"{what}: {key} is out of range")


__all__ = ["InvalidElement", "check_change", "check_changes", "check_row", "check_rows"]
