"""The replication extension: ``replication/x-…`` endpoints that Esri never documented.

Each endpoint is one :class:`wmx.repository.base.Repository` method over HTTP, so the engine
runs unchanged against ``wmx.repository.rest.RestRepository``. Payloads use
``wmx.repository.wire``; ``docs/wmserver-extension.md`` is the contract. Identity (``x-node``)
needs only the token; every other endpoint needs a ``user`` holding Manage Replication or
Administrator access, because the feed exposes every element and the writes replace data.
This module must never import Flask or decide replication policy (that is the engine's).
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from typing import Any, Optional

from wmx.model.changes import ROW_FIELDS, ConflictPolicy
from wmx.repository.base import NodeRecord
from wmx.repository.wire import (
    PART_BYTES,
    ContentRef,
    Splitter,
    WireError,
    changes_from_wire,
    changes_to_wire,
    is_int64,
    join_rows,
    record_from_wire,
    record_to_wire,
    report_to_wire,
    rows_from_wire,
    rows_to_wire,
)
from wmx.server.auth import require_replication_user
from wmx.server.parts import PartsError, outgoing, staging_for
from wmx.server.routing import (
    BAD_REQUEST,
    NOT_FOUND,
    Call,
    Router,
    ServiceError,
    bad_parameter,
)

MAX_PAGE_ROWS = 20_000
"""Upper bound on ``limit`` for one page of changes or snapshot rows (bounds server memory;
a clamped page says ``more`` and the caller continues from its cursor)."""
DEFAULT_PAGE_ROWS = 1000
_CONTENT = ROW_FIELDS.index("content")
OK = {"success": True}

routes = Router()
POST = ("POST",)


def _limit(call: Call) -> int:
    return min(call.params.integer("limit", DEFAULT_PAGE_ROWS, minimum=1), MAX_PAGE_ROWS)


def _body_field(body: dict[str, Any], key: str, expected: type, *,
                required: bool = False) -> Any:
    """A typed member of a JSON body (``None`` when absent and optional)."""
    value = body.get(key)
    if value is None:
        if required:
            raise bad_parameter(key, "given in the JSON body")
        return None
    if expected is int:
        if not is_int64(value):
            raise bad_parameter(key, "a 64-bit JSON integer")
    elif not isinstance(value, expected):
        raise bad_parameter(key, f"a JSON {expected.__name__}")
    return value


def _decoded(decode: Any, value: Any, what: str, call: Optional[Call] = None) -> Any:
    """Decode a body member; with ``call``, rows that name content sent in parts (x-parts)
    get it joined and checked first, and what each row's kind needs is left to the store
    they are for, which refuses inadmissible rows itself."""
    try:
        if call is not None:
            value = join_rows(value, staging_for(call.repository.location).read, what)
            return decode(value, what, admit=False)
        return decode(value, what)
    except (WireError, PartsError) as exc:
        raise ServiceError(BAD_REQUEST, f"Malformed {what}", [str(exc)]) from None


def _staged_ids(*members: Any) -> list[str]:
    """The part ids that rows of a body name (read before decoding replaces them), so the
    parts can be removed once the request has been carried out."""
    return [row[_CONTENT]["id"] for rows in members if isinstance(rows, list) for row in rows
            if type(row) is list and len(row) == len(ROW_FIELDS)
            and isinstance(row[_CONTENT], dict) and isinstance(row[_CONTENT].get("id"), str)]


def _splitter(call: Call) -> Optional[Splitter]:
    """For a client that asked for ``contentParts``: big content is named by reference and
    kept for ``x-content``; older clients get every content inline, as before."""
    if (call.params.text("contentParts") or "").lower() != "true":
        return None
    location = call.repository.location
    return lambda guid, content: outgoing.keep(location, guid, content).to_wire()


@routes.route("replication/x-node", methods=("GET",))
def node(call: Call) -> dict[str, Any]:
    """Who this repository is and how far its log has got, with the server's clock."""
    return {**record_to_wire(call.repository.info()), "serverTime": int(time.time() * 1000)}


@routes.route("replication/x-changes", methods=("GET",))
def changes(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    params = call.params
    page = call.repository.changes(
        params.integer("since", 0, minimum=0), limit=_limit(call),
        origin=params.text("origin") or None, exclude_origin=params.text("excludeOrigin") or None,
        since_time=params.millis("sinceTime"))
    return {"fields": ROW_FIELDS, "changes": changes_to_wire(page.changes, _splitter(call)),
            "lastSeq": page.last_seq, "more": page.more}


@routes.route("replication/x-apply", methods=POST)
def apply(call: Call) -> dict[str, Any]:
    """Apply a batch in one transaction; idempotent (a version applied twice is unchanged)."""
    require_replication_user(call)
    body = call.json_body()
    staged = _staged_ids(body.get("changes"), body.get("overlay"))
    try:
        policy = ConflictPolicy(body.get("policy") or ConflictPolicy.NEWEST.value)
    except ValueError:
        raise bad_parameter("policy", "newest, parent or child") from None
    report = call.repository.apply(
        _decoded(changes_from_wire, _body_field(body, "changes", list, required=True),
                 "changes", call),
        parent_node=_body_field(body, "parentNode", str, required=True),
        source_node=_body_field(body, "sourceNode", str),
        detect_since=_body_field(body, "detectSince", int), policy=policy,
        dry_run=bool(_body_field(body, "dryRun", bool)),
        overlay=_decoded(changes_from_wire, _body_field(body, "overlay", list) or [],
                         "overlay", call),
        refuse_if_changed_since=_body_field(body, "refuseIfChangedSince", int))
    staging_for(call.repository.location).discard(staged)
    return report_to_wire(report, _splitter(call))


@routes.route("replication/x-snapshot", methods=("GET",))
def snapshot(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    page = call.repository.snapshot(call.params.integer("cursor", 0, minimum=0), _limit(call))
    return {"fields": ROW_FIELDS, "rows": rows_to_wire(page.rows, _splitter(call)),
            "cursor": page.cursor, "more": page.more}


def _load_id(body: dict[str, Any]) -> str:
    return _body_field(body, "loadId", str, required=True)


@routes.route("replication/x-load/begin", methods=POST)
def begin_load(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    return {"loadId": call.repository.begin_load()}


@routes.route("replication/x-load/rows", methods=POST)
def load_rows(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    body = call.json_body()
    staged = _staged_ids(body.get("rows"))
    rows = _decoded(rows_from_wire, _body_field(body, "rows", list, required=True), "rows",
                    call)
    call.repository.load_rows(_load_id(body), rows)
    staging_for(call.repository.location).discard(staged)
    return {"success": True, "count": len(rows)}


@routes.route("replication/x-load/commit", methods=POST)
def commit_load(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    body = call.json_body()
    info = call.repository.commit_load(
        _load_id(body), parent_node_id=_body_field(body, "parentNodeId", str, required=True),
        id_block_start=_body_field(body, "idBlockStart", int, required=True),
        new_node_id=_body_field(body, "newNodeId", str))
    return record_to_wire(info)


@routes.route("replication/x-load/abort", methods=POST)
def abort_load(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    call.repository.abort_load(_load_id(call.json_body()))
    return OK


@routes.route("replication/x-parts", methods=POST)
def upload_part(call: Call) -> dict[str, Any]:
    """One part of a content too big to travel inside its row, staged until a request names
    it (see wmx.server.parts)."""
    require_replication_user(call)
    body = call.json_body()
    offset = _body_field(body, "offset", int, required=True)
    if offset < 0:
        raise bad_parameter("offset", "a non-negative integer")
    try:
        data = base64.b64decode(_body_field(body, "data", str, required=True), validate=True)
        size = staging_for(call.repository.location).write(
            _body_field(body, "id", str, required=True), offset, data)
    except (binascii.Error, ValueError) as exc:  # PartsError is a ValueError
        raise ServiceError(BAD_REQUEST, "Malformed part", [str(exc)]) from None
    return {"success": True, "size": size}


@routes.route("replication/x-content", methods=("GET",))
def content_part(call: Call) -> dict[str, Any]:
    """Part of a content an answer named by reference: kept from that answer, else read
    again (and refused if it has changed since)."""
    require_replication_user(call)
    params = call.params
    guid, digest = params.text("id", required=True), params.text("sha256", required=True)
    offset = params.integer("offset", 0, minimum=0)
    length = min(params.integer("length", PART_BYTES, minimum=1), PART_BYTES)
    location = call.repository.location
    content = outgoing.get(location, digest)
    if content is None:
        current = call.repository.read_content(guid)
        if current is None or ContentRef.of(guid, current).sha256 != digest:
            raise ServiceError(NOT_FOUND, "Content not found",
                               ["The element changed or was deleted since it was listed; "
                                "read the page again"])
        outgoing.keep(location, guid, current)
        content = current
    return {"data": base64.b64encode(content[offset:offset + length]).decode("ascii"),
            "size": len(content)}


@routes.route("replication/x-nodes", methods=("GET",))
def nodes(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    return {"nodes": [record_to_wire(node) for node in call.repository.nodes()]}


@routes.route("replication/x-nodes", methods=POST)
def save_node(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    node_record = _decoded(functools.partial(record_from_wire, NodeRecord),
                           call.json_body().get("node"), "node")
    call.repository.save_node(node_record)
    return OK


@routes.route("replication/x-clear", methods=POST)
def clear(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    call.repository.clear_replication_info()
    return OK


@routes.route("replication/x-incarnation", methods=POST)
def renew_incarnation(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    return {"incarnation": call.repository.renew_incarnation()}


@routes.route("replication/x-conflicts", methods=("GET",))
def conflicts(call: Call) -> dict[str, Any]:
    require_replication_user(call)
    return {"conflicts": [record_to_wire(c) for c in call.repository.conflicts()]}


__all__ = ["MAX_PAGE_ROWS", "routes"]
