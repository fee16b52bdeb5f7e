"""Esri's documented WMServer surface (``docs/server.md`` lists what is served).

Every handler reads or writes through :class:`wmx.repository.jobs.JobTracking`, so a write made
over REST is an ordinary change-tracked repository write that replicates like any other. Shapes
follow Esri's reference (camelCase, dates as epoch ms, ``{"success": true}`` for writes with no
natural result). Handlers return plain data; routes marked ``public`` are the read-only
resources any web page may read (``wmx.server.crosssite`` guards the rest). This module must
never import Flask, touch the file system or serve a linked (non-embedded) attachment from the
server's disk.
"""

from __future__ import annotations

import mimetypes
import ntpath
import re
import typing
from datetime import datetime
from typing import Any, Callable, Optional, TypeVar

from wmx import __version__
from wmx.model.records import (
    ASSIGNED_GROUP,
    ASSIGNED_UNASSIGNED,
    ASSIGNED_USER,
    PRIV_ADMINISTRATOR,
    STORAGE_EMBEDDED,
    STORAGE_LINKED_FILE,
    STORAGE_URL,
    ActivityType,
    Group,
    HoldType,
    Job,
    JobStatus,
    JobType,
    Priority,
    Record,
    User,
    to_millis,
)
from wmx.repository.base import InvalidRequest
from wmx.repository.jobs import ServedRepository
from wmx.repository.wire import JOB_CREATE_PARAMS, JOB_PARAMS, WireError, from_millis, is_int64
from wmx.server.auth import find_user, require_privilege, require_user, user_name
from wmx.server.routing import (
    BAD_REQUEST,
    NOT_FOUND,
    Call,
    Params,
    RawResponse,
    Router,
    ServiceError,
    bad_parameter,
    parse_json,
)

T = TypeVar("T")
R = TypeVar("R", bound=Record)

CURRENT_VERSION = 10.91
"""The ArcGIS Server release a WMServer client may expect (the last with Classic WM)."""

MAX_NUM_JOBS = 1000
OK = {"success": True}
TABLE_NAME = re.compile(r"^[A-Za-z_][\w.]{0,127}$")
"""Extended-property table names as a geodatabase spells them (``owner.TABLE``)."""

routes = Router()


# --- helpers ----------------------------------------------------------------------------------

def _found(lookup: Callable[[], T], what: str) -> T:
    """Run a pure lookup; JobTracking's "does not exist" becomes Esri's 404."""
    try:
        return lookup()
    except InvalidRequest:
        raise ServiceError(NOT_FOUND, f"{what} does not exist") from None


def _job(call: Call, job_id: int) -> Job:
    return _found(lambda: call.repository.get_job(job_id), f"Job {job_id}")


def _jobs(call: Call, ids: list[int]) -> list[Job]:
    """All named jobs, or a 404 before anything is changed."""
    return [_job(call, job_id) for job_id in ids]


def _child(records: list[R], child_id: int, what: str) -> R:
    for record in records:
        if record.int_id == child_id:
            return record
    raise ServiceError(NOT_FOUND, f"{what} {child_id} does not exist")


def job_json(repository: ServedRepository, job: Job) -> dict[str, Any]:
    return {**job.to_esri(), "childJobIds": repository.child_job_ids(job.id),
            "versionExists": False, "versionInfo": []}


def _query_tree(name: str) -> dict[str, Any]:
    """Esri's query container tree; wmx keeps no saved queries, so it is always empty."""
    return {"name": name, "containers": [], "queries": []}


def _job_type_summary(job_type: JobType) -> dict[str, Any]:
    return {"id": job_type.id, "name": job_type.name, "description": job_type.description,
            "category": job_type.category, "state": job_type.state}


_JOB_TYPES = typing.get_type_hints(Job)
_USER_FIELDS = frozenset({"owned_by", "assigned_to"})


def _job_value(key: str, field: str, value: Any) -> Any:
    """Coerce a job property, given as text (a parameter) or typed (``properties`` JSON)."""
    options = typing.get_args(_JOB_TYPES[field])
    optional = type(None) in options
    base = next((arg for arg in options if arg is not type(None)), _JOB_TYPES[field])
    if value is None or (value == "" and base is not str):
        if optional:
            return None
        raise bad_parameter(key, "given (it cannot be cleared)")
    if base is datetime:
        try:
            return from_millis(value, key)
        except WireError:
            raise bad_parameter(key, "epoch milliseconds") from None
    if base is int:
        if isinstance(value, bool):
            raise bad_parameter(key, "an integer")
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: infinity
            raise bad_parameter(key, "an integer") from None
        if not is_int64(number):
            raise bad_parameter(key, "a 64-bit integer")
        return number
    if base is dict:
        parsed = parse_json(value, key) if isinstance(value, str) else value
        if not isinstance(parsed, dict):
            raise bad_parameter(key, "an Esri geometry JSON object")
        return parsed
    if not isinstance(value, str):
        raise bad_parameter(key, "text")
    return user_name(value) if field in _USER_FIELDS else value


def _job_fields(params: Params, allowed: frozenset[str],
                properties: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Job fields from individual parameters, overridden by the ``properties`` object."""
    given: dict[str, Any] = {key: params.text(key) for key in allowed if key in params}
    for key, value in (properties or {}).items():
        if key not in allowed:
            raise ServiceError(BAD_REQUEST, "Unknown job property in 'properties'",
                               [f"Known properties: {', '.join(sorted(allowed))}"])
        given[key] = value
    return {JOB_PARAMS[key]: _job_value(key, JOB_PARAMS[key], value)
            for key, value in given.items()}


def _assignment(params: Params) -> tuple[int, Optional[str]]:
    assigned_type = params.integer("assignedType", required=True)
    if assigned_type not in (ASSIGNED_UNASSIGNED, ASSIGNED_USER, ASSIGNED_GROUP):
        raise bad_parameter("assignedType", "1 (user), 2 (group) or 0 (unassigned)")
    assigned_to = (params.text("assignedTo") or "").strip()
    if assigned_type == ASSIGNED_UNASSIGNED:
        return assigned_type, None
    if not assigned_to:
        raise bad_parameter("assignedTo", "a user or group name")
    return assigned_type, user_name(assigned_to)


# --- service root and configuration -----------------------------------------------------------

@routes.route("", public=True)
def root(call: Call) -> dict[str, Any]:
    repository = call.repository
    return {
        "currentVersion": CURRENT_VERSION,
        "serviceDescription": f"Workflow Manager repository {repository.info().name} "
                              f"(wmx {__version__})",
        "configProperties": repository.config_properties(),
        "jobTypes": [_job_type_summary(t) for t in repository.list_config(JobType)],
        "jobStatuses": [s.to_esri() for s in repository.list_config(JobStatus)],
        "jobPriorities": [p.to_esri() for p in repository.list_config(Priority)],
        "activityTypes": [a.to_esri() for a in repository.list_config(ActivityType)],
        "holdTypes": [h.to_esri() for h in repository.list_config(HoldType)],
        "dataWorkspaces": [],
        "publicQueries": _query_tree("Public Queries"),
    }


@routes.route("jobTypes/{job_type_id:int}", public=True)
def job_type(call: Call, job_type_id: int) -> dict[str, Any]:
    found = _found(lambda: call.repository.get_config(JobType, job_type_id),
                   f"Job type {job_type_id}")
    detail = {"jobVersionNamingScheme": "", "mxdNamingScheme": "", "defaultAssignedTo": None,
              "defaultAssignedType": ASSIGNED_UNASSIGNED, "defaultStartDate": None,
              "defaultDueDate": None, "defaultDataWorkspaceId": None,
              "defaultParentVersionName": None, "canDataWorkspaceChange": True,
              "autoExecuteCreatedJobs": False}
    return {**detail, **found.to_esri()}


@routes.route("visibleJobTypes", public=True)
def visible_job_types(call: Call) -> dict[str, Any]:
    require_user(call)
    return {"jobTypes": [_job_type_summary(t) for t in call.repository.list_config(JobType)
                         if t.state == 1]}


@routes.route("updateConfigProperties")
def update_config_properties(call: Call) -> dict[str, Any]:
    require_privilege(call, PRIV_ADMINISTRATOR)
    properties = call.params.json("properties", required=True)
    if not isinstance(properties, dict):
        raise bad_parameter("properties", "a JSON object of KEY: \"value\" pairs")
    failed = []
    for key, value in properties.items():
        try:
            call.repository.set_config_property(str(key), "" if value is None else str(value))
        except InvalidRequest:
            failed.append(key)
    return_code = 1 if not failed else (2 if len(failed) == len(properties) else 3)
    return {"returnCode": return_code, "failedProperties": failed}


def _user_json(call: Call, user: User, groups: list[Group]) -> dict[str, Any]:
    wanted = user.user_name.lower()
    member_of = [g for g in groups if wanted in {str(m).lower() for m in g.users}]
    privileges = sorted(call.repository.user_privileges(user.user_name))
    return {**user.to_esri(), "groups": [{"id": g.id, "name": g.name} for g in member_of],
            "privileges": [{"name": name} for name in privileges],
            "userQueries": _query_tree("User Queries")}


@routes.route("community/users")
def users(call: Call) -> dict[str, Any]:
    groups = call.repository.groups()
    return {"users": [_user_json(call, user, groups) for user in call.repository.users()]}


@routes.route("community/users/{name}")
def user(call: Call, name: str) -> dict[str, Any]:
    found = find_user(call.repository, name)
    if found is None:
        raise ServiceError(NOT_FOUND, "The user named in the path does not exist")
    return _user_json(call, found, call.repository.groups())


@routes.route("community/groups")
def groups(call: Call) -> dict[str, Any]:
    return {"groups": [group.to_esri() for group in call.repository.groups()]}


@routes.route("community/groups/{group_id:int}")
def group(call: Call, group_id: int) -> dict[str, Any]:
    return _found(lambda: call.repository.get_config(Group, group_id),
                  f"Group {group_id}").to_esri()


@routes.route("replication/info")
def replication_info(call: Call) -> dict[str, Any]:
    """The cluster as Esri shows it, this server first (the identity anchor)."""
    require_user(call)
    info = call.repository.info()
    records = call.repository.nodes()
    others = [node for node in records if node.node_id != info.node_id]
    own = next((node for node in records if node.node_id == info.node_id), None)
    synced = [node.last_sync for node in others if node.last_sync is not None]
    this = {"id": info.node_id, "name": info.name, "description": "This repository",
            "serverURL": call.service_url,
            "isParent": own.is_parent if own else info.parent_node_id is None and bool(others),
            "isConnected": True, "lastSync": to_millis(max(synced) if synced else None)}
    return {"nodes": [this, *({"id": node.node_id, "name": node.name, "description": "",
                               "serverURL": node.url, "isParent": node.is_parent,
                               "isConnected": node.is_connected,
                               "lastSync": to_millis(node.last_sync)} for node in others)]}


# --- jobs -------------------------------------------------------------------------------------

@routes.route("jobs", public=True)
def job_ids(call: Call) -> dict[str, Any]:
    return {"jobIds": call.repository.jobs()}


@routes.route("jobs/{job_id:int}", public=True)
def job(call: Call, job_id: int) -> dict[str, Any]:
    return job_json(call.repository, _job(call, job_id))


@routes.route("jobs/create")
def create_jobs(call: Call) -> dict[str, Any]:
    user = require_user(call)
    params = call.params
    job_type_id = params.integer("jobTypeId", required=True)
    explicit_id = params.integer("id", minimum=1)
    count = params.integer("numJobs", 1, minimum=1)
    if count > MAX_NUM_JOBS:
        raise bad_parameter("numJobs", f"at most {MAX_NUM_JOBS}")
    if explicit_id is not None and count > 1:
        raise bad_parameter("id", "omitted when numJobs is more than 1")
    fields = _job_fields(params, JOB_CREATE_PARAMS)
    created = [call.repository.create_job(job_type_id, user=user, id=explicit_id, **fields)
               for _ in range(count)]
    return {"jobIds": [job.id for job in created]}


@routes.route("jobs/{job_id:int}/update")
def update_job(call: Call, job_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    properties = call.params.json("properties")
    if properties is not None and not isinstance(properties, dict):
        raise bad_parameter("properties", "a JSON object")
    fields = _job_fields(call.params, frozenset(JOB_PARAMS), properties)
    for flag, field in (("clearAOI", "aoi"), ("clearStartDate", "start_date"),
                        ("clearDueDate", "due_date")):
        if call.params.boolean(flag):
            fields[field] = None
    if fields:
        call.repository.update_job(job_id, user=user, **fields)
    return OK


@routes.route("jobs/{job_id:int}/assign")
def assign_job(call: Call, job_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    assigned_type, assigned_to = _assignment(call.params)
    call.repository.assign_job(job_id, user=user, assigned_type=assigned_type,
                               assigned_to=assigned_to)
    return OK


@routes.route("jobs/assign")
def assign_jobs(call: Call) -> dict[str, Any]:
    user = require_user(call)
    jobs = _jobs(call, call.params.id_list("jobs"))
    assigned_type, assigned_to = _assignment(call.params)
    for found in jobs:
        call.repository.assign_job(found.id, user=user, assigned_type=assigned_type,
                                   assigned_to=assigned_to)
    return OK


def _unassign(call: Call, ids: list[int]) -> dict[str, Any]:
    user = require_user(call)
    for found in _jobs(call, ids):
        call.repository.assign_job(found.id, user=user, assigned_type=ASSIGNED_UNASSIGNED,
                                   assigned_to=None)
    return OK


@routes.route("jobs/{job_id:int}/unassign")
def unassign_job(call: Call, job_id: int) -> dict[str, Any]:
    return _unassign(call, [job_id])


@routes.route("jobs/unassign")
def unassign_jobs(call: Call) -> dict[str, Any]:
    return _unassign(call, call.params.id_list("jobs"))


def _for_each_job(call: Call, ids: list[int], action: str) -> dict[str, Any]:
    """Close, reopen or delete jobs: every id is checked before the first is changed, and all
    change in one transaction (a failure part-way changes none)."""
    user = require_user(call)
    operation = getattr(call.repository, action)
    with call.repository.transaction():
        for found in _jobs(call, ids):
            operation(found.id, user=user)
    return OK


@routes.route("jobs/{job_id:int}/close")
def close_job(call: Call, job_id: int) -> dict[str, Any]:
    return _for_each_job(call, [job_id], "close_job")


@routes.route("jobs/close")
def close_jobs(call: Call) -> dict[str, Any]:
    return _for_each_job(call, call.params.id_list("jobs"), "close_job")


@routes.route("jobs/reopen")
def reopen_jobs(call: Call) -> dict[str, Any]:
    return _for_each_job(call, call.params.id_list("jobs"), "reopen_job")


@routes.route("jobs/{job_id:int}/delete")
def delete_job(call: Call, job_id: int) -> dict[str, Any]:
    return _for_each_job(call, [job_id], "delete_job")


@routes.route("jobs/delete")
def delete_jobs(call: Call) -> dict[str, Any]:
    return _for_each_job(call, call.params.id_list("jobs"), "delete_job")


# --- holds, notes, activity -------------------------------------------------------------------

@routes.route("jobs/{job_id:int}/holds", public=True)
def holds(call: Call, job_id: int) -> dict[str, Any]:
    _job(call, job_id)
    return {"holds": [hold.to_esri() for hold in call.repository.holds(job_id)]}


@routes.route("jobs/{job_id:int}/holds/{hold_id:int}", public=True)
def hold(call: Call, job_id: int, hold_id: int) -> dict[str, Any]:
    _job(call, job_id)
    return _child(call.repository.holds(job_id), hold_id, "Hold").to_esri()


@routes.route("jobs/{job_id:int}/holds/create")
def create_hold(call: Call, job_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    created = call.repository.create_hold(job_id, call.params.integer("type", required=True),
                                          user=user, comments=call.params.text("comments", ""))
    return {"holdId": created.id}


@routes.route("jobs/{job_id:int}/holds/{hold_id:int}/release")
def release_hold(call: Call, job_id: int, hold_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    _child(call.repository.holds(job_id), hold_id, "Hold")
    call.repository.release_hold(job_id, hold_id, user=user,
                                 comments=call.params.text("comments", ""))
    return OK


@routes.route("jobs/{job_id:int}/notes", public=True)
def notes(call: Call, job_id: int) -> dict[str, Any]:
    _job(call, job_id)
    return {"notes": call.repository.get_notes(job_id)}


@routes.route("jobs/{job_id:int}/notes/update")
def update_notes(call: Call, job_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    call.repository.set_notes(job_id, call.params.text("notes", required=True), user=user)
    return OK


@routes.route("jobs/{job_id:int}/activity", public=True)
def activity(call: Call, job_id: int) -> dict[str, Any]:
    _job(call, job_id)
    return {"activity": [entry.to_esri() for entry in call.repository.activity(job_id)]}


@routes.route("jobs/{job_id:int}/activity/logAction")
def log_action(call: Call, job_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    call.repository.log_action(job_id, call.params.integer("type", required=True), user=user,
                               comments=call.params.text("comments", ""))
    return OK


# --- attachments ------------------------------------------------------------------------------

@routes.route("jobs/{job_id:int}/attachments", public=True)
def attachments(call: Call, job_id: int) -> dict[str, Any]:
    _job(call, job_id)
    return {"attachments": [a.to_esri() for a in call.repository.attachments(job_id)]}


@routes.route("jobs/{job_id:int}/attachments/{attachment_id:int}", public=True)
def attachment(call: Call, job_id: int, attachment_id: int) -> dict[str, Any]:
    _job(call, job_id)
    return _child(call.repository.attachments(job_id), attachment_id, "Attachment").to_esri()


@routes.route("jobs/{job_id:int}/attachments/{attachment_id:int}/content", public=True)
def attachment_content(call: Call, job_id: int, attachment_id: int) -> RawResponse:
    """Embedded content only: a linked file names a path on some client's disk, and serving
    it from the server's disk would hand out arbitrary server files."""
    _job(call, job_id)
    found = _child(call.repository.attachments(job_id), attachment_id, "Attachment")
    if found.storage_type != STORAGE_EMBEDDED:
        raise ServiceError(BAD_REQUEST, f"Attachment {attachment_id} is not embedded",
                           ["Only embedded attachments have content on the server; linked "
                            "ones are read from their folder or URL"])
    content = call.repository.attachment_content(job_id, attachment_id)
    mimetype = mimetypes.guess_type(found.filename)[0] or "application/octet-stream"
    return RawResponse(content, mimetype, found.filename)


def safe_filename(name: str) -> str:
    """The last component of a client-supplied path (either separator), never empty."""
    base = ntpath.basename(name.replace("\x00", "")).strip()
    return base if base not in ("", ".", "..") else "attachment"


def _split_path(path: str) -> tuple[str, str]:
    """Folder and file name of a linked file, at the last separator of either kind (the path
    belongs to the clients' machines, so the server's own path rules do not apply)."""
    cut = max(path.rfind("/"), path.rfind("\\"))
    return path[:max(cut, 0)], path[cut + 1:]


@routes.route("jobs/{job_id:int}/attachments/add", methods=("POST",))
def add_attachment(call: Call, job_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    storage_type = call.params.integer("storageType", STORAGE_EMBEDDED)
    if storage_type == STORAGE_EMBEDDED:
        upload = call.read_upload()
        if upload is None:
            raise bad_parameter("file", "a file part of a multipart/form-data upload")
        filename, content = safe_filename(upload[0]), upload[1]
        created = call.repository.add_attachment(job_id, filename, content, user=user)
    elif storage_type in (STORAGE_LINKED_FILE, STORAGE_URL):
        path = (call.params.text("filePath") or "").strip()
        if not path:
            raise bad_parameter("filePath", "the linked file's path or URL")
        folder, filename = (_split_path(path) if storage_type == STORAGE_LINKED_FILE
                            else (path, path))
        created = call.repository.add_attachment(job_id, filename, user=user,
                                                 storage_type=storage_type, folder=folder)
    else:
        raise bad_parameter("storageType", "1 (linked file), 2 (embedded) or 3 (URL)")
    return {"attachmentId": created.id}


@routes.route("jobs/{job_id:int}/attachments/{attachment_id:int}/delete")
def delete_attachment(call: Call, job_id: int, attachment_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    _child(call.repository.attachments(job_id), attachment_id, "Attachment")
    call.repository.delete_attachment(job_id, attachment_id, user=user)
    return OK


# --- dependencies -----------------------------------------------------------------------------

@routes.route("jobs/{job_id:int}/dependencies", public=True)
def dependencies(call: Call, job_id: int) -> dict[str, Any]:
    _job(call, job_id)
    return {"dependencies": [d.to_esri() for d in call.repository.dependencies(job_id)]}


@routes.route("jobs/{job_id:int}/dependencies/create")
def create_dependency(call: Call, job_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    params = call.params
    created = call.repository.add_dependency(
        job_id, params.integer("depJobId", required=True), user=user,
        held_on_type=params.integer("heldOnType", 3),
        held_on_value=params.integer("heldOnValue", 0),
        dep_on_type=params.integer("depOnType", 3), dep_on_value=params.integer("depOnValue", 0))
    return {"dependencyId": created.id}


@routes.route("jobs/{job_id:int}/dependencies/{dependency_id:int}/delete")
def delete_dependency(call: Call, job_id: int, dependency_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    _child(call.repository.dependencies(job_id), dependency_id, "Dependency")
    call.repository.delete_dependency(job_id, dependency_id, user=user)
    return OK


# --- extended properties ----------------------------------------------------------------------

def _field_type(value: Any) -> int:
    """Esri field-type code of a stored value: 1 integer, 3 double, 4 string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return 1
    return 3 if isinstance(value, float) else 4


@routes.route("jobs/{job_id:int}/extendedProperties", public=True)
def extended_properties(call: Call, job_id: int) -> dict[str, Any]:
    _job(call, job_id)
    tables: dict[str, list] = {}
    for record in call.repository.extended_properties(job_id):
        tables.setdefault(record.table_name, []).append(record)
    return {"containers": [{
        "tableName": name, "tableAlias": name, "relationshipType": 2,
        "records": [{"id": record.id, "recordValues": [
            {"name": field, "alias": field, "dataType": _field_type(value), "displayType": 0,
             "data": value, "canUpdate": True, "required": False, "userVisible": True,
             "displayOrder": order, "tableListClass": "", "tableListDisplayField": "",
             "tableListStoreField": ""}
            for order, (field, value) in enumerate(record.values.items())]}
            for record in records]} for name, records in tables.items()]}


def _table(table_name: str) -> str:
    if not TABLE_NAME.match(table_name):
        raise bad_parameter("tableName", "a table name (letters, digits, _ and .)")
    return table_name


def _property_values(call: Call, *, required: bool) -> dict[str, Any]:
    values = call.params.json("properties", required=required)
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        raise bad_parameter("properties", "a JSON object of field: value pairs")
    return values


def _record(call: Call, job_id: int, table_name: str, record_id: int) -> None:
    """404 unless the record exists and belongs to the named table."""
    found = _child(call.repository.extended_properties(job_id), record_id, "Record")
    if found.table_name.lower() != table_name.lower():
        raise ServiceError(NOT_FOUND, f"Record {record_id} is not in table {table_name}")


@routes.route("jobs/{job_id:int}/extendedProperties/{table_name}/add")
def add_extended_property(call: Call, job_id: int, table_name: str) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    created = call.repository.add_extended_property(
        job_id, _table(table_name), _property_values(call, required=False), user=user)
    return {"recordId": created.id}


@routes.route("jobs/{job_id:int}/extendedProperties/{table_name}/{record_id:int}/update")
def update_extended_property(call: Call, job_id: int, table_name: str,
                             record_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    _record(call, job_id, _table(table_name), record_id)
    call.repository.update_extended_property(job_id, record_id,
                                             _property_values(call, required=True), user=user)
    return OK


@routes.route("jobs/{job_id:int}/extendedProperties/{table_name}/{record_id:int}/delete")
def delete_extended_property(call: Call, job_id: int, table_name: str,
                             record_id: int) -> dict[str, Any]:
    user = require_user(call)
    _job(call, job_id)
    _record(call, job_id, _table(table_name), record_id)
    call.repository.delete_extended_property(job_id, record_id, user=user)
    return OK


__all__ = ["CURRENT_VERSION", "job_json", "routes", "safe_filename"]
