"""A strict in-process double of Esri's Workflow Manager (Classic) REST server (WMServer).

Written only from ``reference/wmserver-rest.md`` §1-5 (never from ``wmx/server``, and importing
nothing from ``wmx``), so that it catches our own misreadings of Esri's surface. It serves the
documented paths that matter to replication, answers everything else with Esri's HTTP-200 error
envelope, and records every request, so tests can assert a client made no undocumented request.
It must never grow a ``replication/x-...`` path or any other answer Esri does not document.

Decisions taken where the reference is silent are listed in ``DECISIONS`` (and in the module's
tests); they are the double's, not Esri's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.message
import email.parser
import email.policy
import json
import os
import pathlib
import re
import secrets
import socket
import sqlite3
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Optional

DECISIONS = """\
* Unknown or malformed path, unknown parameter (also inside update `properties`): error 400
  "Unable to complete operation." (details name the path or parameter), recorded in
  `undocumented`; a path outside the service (other service, other folder): error 404.
  Recorded before the token is checked, answered after it (a 499/498 comes first).
* HEAD/OPTIONS/PUT/DELETE/PATCH: error 405, recorded in `undocumented`.
* Documented paths the double does not implement (reports, workflow, spatialNotification...):
  error 400 "not implemented by the double", recorded in `unimplemented`.
* Damaged requests (non-UTF-8 parameters, unreadable multipart, JSON nested past Python's
  limit, NaN/1e400 where a number is due, a bad Content-Length): error 400, nothing written.
  A bug of the double itself: error 500, kept in `internal_errors`.
* Ids are Esri's 32-bit Long fields: `jobs/create` `id` beyond 2^31-1 is 400; `numJobs` is at
  most 1000.
* Privileges are checked only where the reference names them (§3.3): CreateJob (create),
  CloseJob (close), DeleteJobs (delete), AssignAnyJob (assign), ManageAOI (aoi/poi/clearAOI
  on create or update), ManageAttachments (attachment add/delete), AdministratorAccess
  (updateConfigProperties); missing: error 403. Holds, notes, activity, dependencies and
  extended properties need only a known user.
* `user` is accepted on every route (the reference: "on almost every write and on some
  reads"); when given it must name a known user (400 otherwise). Writes without it: 400.
  `DOMAIN|name` and `DOMAIN\\name` name the same user; user names match case-blind (Windows
  logins do).
* `f` absent or `html`: a minimal HTML page (Esri's default format), never JSON. `f=file` only
  on attachment content, which accepts nothing else.
* `jobs/{id}` of a missing job answers `{}` (AJS4 treats it so); every other route of a
  missing job, hold, attachment, dependency or record answers error 404.
* Ids of holds, attachments, dependencies and extended-property records are global counters.
* Esri logs activity itself: create (CreateJob), assign/unassign (AssignJob), close
  (CloseJob), reopen (ReopenJob), hold create (AddHold), hold release (ReleaseHold), when the
  repository has an activity type of that name; `auto_activity=False` turns this off.
* Activity records carry no id (none documented). logAction's message is its comments, else
  the activity type's message.
* Releasing a released hold is error 400. Close/reopen are not checked against the stage.
* `jobs/create` with `id` taken, or `id` with `numJobs` > 1: error 400, nothing created.
* Attachments: `type` is the file extension (no dot), `folder` is "" for embedded, the URL for
  URL attachments (filename ""), the directory for linked files. Content of a URL attachment:
  error 400; of a linked file: that file's bytes when it exists on this machine.
* `jobs/query`: table JTX_JOBS with columns JOB_ID, JOB_NAME, JOB_TYPE_ID, STATUS, STAGE,
  PRIORITY, PERCENT_COMPLETE, CREATED_BY, OWNED_BY, ASSIGNED_TO, ASSIGNED_TYPE, DESCRIPTION,
  PARENT_JOB, DATA_WORKSPACE_ID, VERSION, PARENT_VERSION, CREATED_DATE, START_DATE,
  STARTED_DATE, DUE_DATE, END_DATE (names undocumented; chosen here); `where` is SQL over them
  (dates compare as 'YYYY-MM-DD HH:MM:SS' text); every cell a string, dates formatted
  'M/D/YYYY h:mm:ss AM' in UTC (second precision), null as "". Saved queries (`id`): 404.
* Tokens: `token` parameter only (no header: the reference documents none). Missing: 499
  "Token Required"; wrong or expired: 498 "Invalid Token". generateToken is POST only
  (GET: 405), client `referer` binds the token to the Referer header, `ip`/`requestip` (the
  default) to the caller's address; `expiration` is capped at `token_ttl_minutes`.
* `replication/info` lists the nodes seeded with `seed_replication_node` (none by default).
* `/arcgis/rest/info` (ArcGIS Server's server info) advertises `tokenServicesUrl`;
  generateToken lives at `/arcgis/tokens/generateToken` whatever the service root.
* Jobs created through REST: name from the type's scheme "[JOB:ID]" when none is given,
  createdBy/ownedBy = `user`, startDate = createdDate when not given, status 1, stage 1,
  assignedType 1 when only assignedTo is given. Close: stage 5, status "Closed", endDate
  now. Reopen: stage 2, status "Ready To Work", endDate null. `pendingDays`: whole days until
  dueDate (0 without one), so it changes with time. Updates log no activity.
* The root is not cached unless `cache_root=True`; dates are exact unless
  `date_resolution_ms` says otherwise (the reference is silent on both).
* A parameter repeated with different values: error 400.
"""

SAMPLE_URLS = {
    "parent": "http://localhost/arcgis/rest/services/parent/wmserver",
    "ohio": "http://ohioServer/arcgis/rest/services/SO/WMServer",
    "az": "http://AZServer/arcgis/rest/services/SO/WMServer",
    "generic": "http://ServerName/arcgis/rest/services/ServerObjectName/WMServer",
    "dotnet": "http://ServerName/wmrest/services/ServerObjectName/WMServer",
}
"""The URL shapes of Esri's samples and help (reference esri-tools.md, wmserver-rest.md §1)."""

TRANSPORT_PARAMETERS = frozenset({"f", "token", "_ts", "callback", "user"})
ADMIN_PRIVILEGE = "AdministratorAccess"
ALL_PRIVILEGES = (ADMIN_PRIVILEGE, "ManageReplication", "CreateJob", "CloseJob", "DeleteJobs",
                  "AssignAnyJob", "ManageHolds", "ManageAttachments", "ManageAOI",
                  "UpdateJobProperties", "ReopenClosedJobs")
MAX_BODY = 64 * 1024 * 1024
FAULT_MODES = ("error", "drop", "lost_reply", "slow")
MAX_ID = 2**31 - 1  # Esri ids are 32-bit Long fields
MAX_JOBS_PER_CREATE = 1000  # numJobs beyond this is refused (a hostile numJobs=10**9)
DAY_MS = 86_400_000
CLOSED_STAGE = 5
FIELD_TYPE = {"integer": 1, "string": 4, "date": 5}


class EsriError(Exception):
    """An answer in Esri's error envelope: ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, code: int, message: str, *details: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def bad_request(*details: str) -> EsriError:
    return EsriError(400, "Unable to complete operation.", *details)


def not_found(*details: str) -> EsriError:
    return EsriError(404, "Unable to complete operation.", *details)


# Records are NamedTuples, not dataclasses: the benchmark loads this file by path, without
# registering it in sys.modules, which dataclasses with string annotations cannot bear.

class RecordedRequest(NamedTuple):
    """One request as the double saw it; ``token`` and ``password`` values are masked.
    ``files`` maps multipart file parts to their file names."""

    method: str
    path: str
    params: dict[str, str]
    user: Optional[str]
    at: float
    files: dict[str, str]


class _Fault:
    """A pending injected fault (``times`` counts down)."""

    def __init__(self, path_substring: str, error_code: int, times: int, mode: str,
                 delay: float) -> None:
        self.path_substring = path_substring
        self.error_code = error_code
        self.times = times
        self.mode = mode
        self.delay = delay


class _Token:
    """A generated token: when it expires and what it is bound to."""

    def __init__(self, expires_ms: int, client: str, bound_to: str) -> None:
        self.expires_ms = expires_ms
        self.client = client
        self.bound_to = bound_to


class _Call(NamedTuple):
    """What a route handler receives: the parsed request."""

    params: dict[str, str]
    files: dict[str, tuple[str, bytes]]
    captures: dict[str, str]
    user: Optional[str]
    record: RecordedRequest


class _Route(NamedTuple):
    """One served path: its segments, handler (``_r_<handler>``), the parameters the
    reference documents for it, those it requires, and whether it writes (needs ``user``)."""

    pattern: tuple[str, ...]
    handler: str
    params: frozenset[str] = frozenset()
    required: tuple[str, ...] = ()
    write: bool = False


def _route(pattern: str, handler: str, params: str = "", required: str = "",
           write: bool = False) -> _Route:
    names = frozenset(params.split()) | frozenset(required.split())
    return _Route(tuple(pattern.split("/")) if pattern else (), handler, names,
                  tuple(required.split()), write)


_UPDATE_KEYS = ("name startDate dueDate priority status parentJobId dataWorkspaceId "
                "parentVersion versionName description ownedBy assignedType assignedTo "
                "percent aoi poi")
_CREATE_KEYS = ("jobTypeId id name startDate dueDate priority parentJobId dataWorkspaceId "
                "parentVersion description ownedBy assignedType assignedTo aoi poi numJobs "
                "autoExecute autoCommitWorkflow")

# Segments in braces capture: {name} any text, {name:int} ASCII digits only. Literal routes
# come before the captures that could also match them.
ROUTES: tuple[_Route, ...] = (
    _route("", "root"),
    _route("updateConfigProperties", "update_config_properties", "", "properties", True),
    _route("visibleJobTypes", "visible_job_types", "", "user"),
    _route("jobTypes/{jobType:int}", "job_type"),
    _route("community/users", "users"),
    _route("community/users/{userName}", "user"),
    _route("community/groups", "groups"),
    _route("community/groups/{group:int}", "group"),
    _route("replication/info", "replication_info", "", "user"),
    _route("jobs", "job_ids"),
    _route("jobs/query", "query_jobs", "id fields tables aliases where orderBy"),
    _route("jobs/create", "create_jobs", _CREATE_KEYS, "jobTypeId", True),
    _route("jobs/assign", "assign_jobs", "", "jobs assignedType assignedTo", True),
    _route("jobs/unassign", "unassign_jobs", "", "jobs", True),
    _route("jobs/close", "close_jobs", "", "jobs", True),
    _route("jobs/reopen", "reopen_jobs", "", "jobs", True),
    _route("jobs/delete", "delete_jobs", "deleteHistory", "jobs", True),
    _route("jobs/{job:int}", "job"),
    _route("jobs/{job:int}/update", "update_job",
           f"{_UPDATE_KEYS} properties clearAOI clearStartDate clearDueDate", "", True),
    _route("jobs/{job:int}/assign", "assign_job", "", "assignedType assignedTo", True),
    _route("jobs/{job:int}/unassign", "unassign_job", "", "", True),
    _route("jobs/{job:int}/close", "close_job", "", "", True),
    _route("jobs/{job:int}/delete", "delete_job", "deleteHistory", "", True),
    _route("jobs/{job:int}/notes", "notes"),
    _route("jobs/{job:int}/notes/update", "update_notes", "", "notes", True),
    _route("jobs/{job:int}/activity", "activity"),
    _route("jobs/{job:int}/activity/logAction", "log_action", "comments", "type", True),
    _route("jobs/{job:int}/holds", "holds"),
    _route("jobs/{job:int}/holds/create", "create_hold", "comments", "type", True),
    _route("jobs/{job:int}/holds/{hold:int}", "hold"),
    _route("jobs/{job:int}/holds/{hold:int}/release", "release_hold", "comments", "", True),
    _route("jobs/{job:int}/attachments", "attachments"),
    _route("jobs/{job:int}/attachments/add", "add_attachment", "storageType filePath", "",
           True),
    _route("jobs/{job:int}/attachments/{attachment:int}", "attachment"),
    _route("jobs/{job:int}/attachments/{attachment:int}/content", "attachment_content"),
    _route("jobs/{job:int}/attachments/{attachment:int}/delete", "delete_attachment", "", "",
           True),
    _route("jobs/{job:int}/dependencies", "dependencies"),
    _route("jobs/{job:int}/dependencies/create", "create_dependency", "",
           "heldOnType heldOnValue depJobId depOnType depOnValue", True),
    _route("jobs/{job:int}/dependencies/{dependency:int}/delete", "delete_dependency", "", "",
           True),
    _route("jobs/{job:int}/extendedProperties", "extended_properties"),
    _route("jobs/{job:int}/extendedProperties/{table}/add", "add_extended_record", "", "",
           True),
    _route("jobs/{job:int}/extendedProperties/{table}/{record:int}/update",
           "update_extended_record", "", "properties", True),
    _route("jobs/{job:int}/extendedProperties/{table}/{record:int}/delete",
           "delete_extended_record", "", "", True),
)

# Documented in the reference (§2) but not served: a distinct answer, never a success.
UNIMPLEMENTED: tuple[tuple[str, ...], ...] = tuple(tuple(p.split("/")) for p in (
    "dataWorkspaces/{id}", "dataWorkspaces/{id}/info", "tableRelationships", "publicQueries/{id}",
    "community/users/{name}/queries/{id}", "reports", "reports/{id}/data",
    "reports/{id}/stylesheet", "reports/{id}/generate", "tokens/parseTokens",
    "notificationTypes/{id}/subscribe", "notificationTypes/{id}/unsubscribe",
    "spatialNotification/changeRules", "spatialNotification/changeRules/query",
    "spatialNotification/changeRules/add", "spatialNotification/changeRules/{id}",
    "spatialNotification/changeRules/{id}/delete", "spatialNotification/time/{id}",
    "spatialNotification/runOnHistory", "spatialNotification/matches/{id}",
    "spatialNotification/sessions/{id}", "spatialNotification/sessions/{id}/notify",
    "jobs/search", "jobs/{id}/createVersion", "jobs/{id}/extendedProperties/{t}/listValues",
    "jobs/{id}/sendNotification", "jobs/{id}/workflow", "jobs/{id}/workflow/steps",
    "jobs/{id}/workflow/steps/current", "jobs/{id}/workflow/steps/{s}",
    "jobs/{id}/workflow/steps/{s}/description", "jobs/{id}/workflow/steps/{s}/file",
    "jobs/{id}/workflow/steps/{s}/comments", "jobs/{id}/workflow/steps/{s}/canRun",
    "jobs/{id}/workflow/steps/execute", "jobs/{id}/workflow/steps/markAsDone",
    "jobs/{id}/workflow/steps/{s}/moveNext", "jobs/{id}/workflow/steps/{s}/resolveConflict",
    "jobs/{id}/workflow/steps/{s}/setAsCurrent", "jobs/{id}/workflow/steps/{s}/logComment",
    "jobs/{id}/workflow/recreate", "jobs/job/{id}/workflow/steps/assign"))

# Privileges named in the reference (§3.3), on the operations their names describe.
ROUTE_PRIVILEGES = {
    "create_jobs": "CreateJob", "close_jobs": "CloseJob", "close_job": "CloseJob",
    "delete_jobs": "DeleteJobs", "delete_job": "DeleteJobs", "assign_jobs": "AssignAnyJob",
    "assign_job": "AssignAnyJob", "add_attachment": "ManageAttachments",
    "delete_attachment": "ManageAttachments", "update_config_properties": ADMIN_PRIVILEGE,
}

_ROUTES_BY_LENGTH: dict[int, list[_Route]] = {}
for _each in ROUTES:
    _ROUTES_BY_LENGTH.setdefault(len(_each.pattern), []).append(_each)

_DIGITS = re.compile(r"-?[0-9]+")
_CALLBACK = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]*")


def _match(pattern: tuple[str, ...], segments: list[str]) -> Optional[dict[str, str]]:
    """Captures when ``segments`` fit ``pattern`` (literal segments compared case-blind)."""
    if len(pattern) != len(segments):
        return None
    captures: dict[str, str] = {}
    for part, segment in zip(pattern, segments):
        if part.startswith("{"):
            name, _, kind = part[1:-1].partition(":")
            if not segment or (kind == "int" and not segment.isascii()) or (
                    kind == "int" and not segment.isdigit()):
                return None
            captures[name] = segment
        elif part.lower() != segment.lower():
            return None
    return captures


def _integer(value: Any, name: str) -> int:
    """An Esri integer parameter: ASCII digits, optional minus (JSON numbers as they are)."""
    if isinstance(value, bool):
        raise bad_request(f"Invalid value for '{name}'.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()) and value.strip().isascii():
        return int(value.strip())
    raise bad_request(f"Invalid value for '{name}'.")


def _id_list(value: str, name: str = "jobs") -> list[int]:
    parts = value.split(",")
    if not value.strip():
        raise bad_request(f"Missing required parameter: {name}")
    return [_integer(part, name) for part in parts]


def _boolean(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise bad_request(f"Invalid value for '{name}'.")


def _json_param(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise bad_request(f"Invalid JSON in '{name}'.") from exc


_EPOCH = dt.datetime(1970, 1, 1)


def _query_date(ms: Optional[int]) -> Optional[str]:
    """The text SQL ``where`` compares dates with (UTC; works before 1970 on Windows too)."""
    if ms is None:
        return None
    return (_EPOCH + dt.timedelta(milliseconds=ms)).isoformat(sep=" ", timespec="seconds")


def _locale_date(text: str) -> str:
    """en-US general date/time, as a .NET WMServer formats query cells: 5/31/2010 2:05:09 PM."""
    year, month, day = int(text[:4]), int(text[5:7]), int(text[8:10])
    hour, rest = int(text[11:13]), text[13:19]
    half = "AM" if hour < 12 else "PM"
    return f"{month}/{day}/{year} {hour % 12 or 12}{rest} {half}"


# name, job field, kind, length
_JOB_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("JOB_ID", "id", "integer", 4), ("JOB_NAME", "name", "string", 255),
    ("JOB_TYPE_ID", "jobTypeId", "integer", 4), ("STATUS", "status", "integer", 4),
    ("STAGE", "stage", "integer", 4), ("PRIORITY", "priority", "integer", 4),
    ("PERCENT_COMPLETE", "percentageComplete", "integer", 4),
    ("CREATED_BY", "createdBy", "string", 255), ("OWNED_BY", "ownedBy", "string", 255),
    ("ASSIGNED_TO", "assignedTo", "string", 255),
    ("ASSIGNED_TYPE", "assignedType", "integer", 4),
    ("DESCRIPTION", "description", "string", 4000), ("PARENT_JOB", "parentJobId", "integer", 4),
    ("DATA_WORKSPACE_ID", "dataWorkspaceId", "string", 40),
    ("VERSION", "versionName", "string", 255), ("PARENT_VERSION", "parentVersion", "string", 255),
    ("CREATED_DATE", "createdDate", "date", 8), ("START_DATE", "startDate", "date", 8),
    ("STARTED_DATE", "startedDate", "date", 8), ("DUE_DATE", "dueDate", "date", 8),
    ("END_DATE", "endDate", "date", 8),
)


def _minimum_configuration() -> dict[str, Any]:
    statuses = ("Created", "Ready To Work", "Working", "Done Working", "Closed", "On Hold",
                "Assigned", "Unassigned")
    activity = (("CreateJob", "Job created"), ("AssignJob", "Job assigned"),
                ("CloseJob", "Job closed"), ("ReopenJob", "Job reopened"),
                ("AddHold", "Hold added"), ("ReleaseHold", "Hold released"),
                ("Comment", "Comment"), ("StatusChanged", "Status changed"))
    return {
        "statuses": {i: {"id": i, "name": n, "description": "", "caption": n}
                     for i, n in enumerate(statuses, start=1)},
        "priorities": {v: {"value": v, "name": n, "description": ""}
                       for v, n in enumerate(("None", "Low", "Medium", "High", "Critical"))},
        "activity_types": {i: {"id": i, "name": n, "description": "", "message": m}
                           for i, (n, m) in enumerate(activity, start=1)},
        "hold_types": {1: {"id": 1, "name": "Waiting for Information", "description": ""}},
        "config_properties": {"AUTOSTATUSASSIGN": "true", "AOIOVERLAP": "allow",
                              "AUTOCLOSEJOB": "false", "USER_STORE": "traditional"},
    }


QUICK_JOB_TYPES = ((1, "Data Edits", "Edit production data", "Editing", 2),
                   (2, "Map Production", "Produce a map product", "Cartography", 1),
                   (3, "Quality Control", "Review edits", "QA", 2))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs when 8+ clients connect at once

    def __init__(self, address: tuple[str, int], double: EsriDouble) -> None:
        self.double = double
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or a connection cut by stop()) is no error; anything
        else is the double's bug, kept for the tests instead of printed."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            with self.double.lock:
                self.double.internal_errors.append(f"connection: {error!r}")


class EsriDouble:
    """Esri's WMServer as documented, on 127.0.0.1, with state tests can seed and inspect."""

    def __init__(self, service: str = "Redlands", *, latency: float = 0.0,
                 token: Optional[str] = None,
                 credentials: Optional[dict[str, str]] = None,
                 token_ttl_minutes: float = 60, users: Iterable[str] = ("admin",),
                 config: str = "quick", job_id_start: int = 1, auto_activity: bool = True,
                 current_version: float = 10.91, root: str = "arcgis/rest/services",
                 cache_root: bool = False, date_resolution_ms: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        """``root`` is the folder above the service: Esri's 10.1+ form by default, or
        "wmrest/services" for ArcGIS Server 10.0 for .NET (reference §1). ``cache_root``:
        the root answers what it answered first until ``clear_root_cache()``, as Esri's
        server-side REST cache does after configuration changes (reference §1).
        ``date_resolution_ms``: dates are stored rounded down to it (1000 for a store that
        keeps whole seconds; the reference says nothing, so exact by default)."""
        if config not in ("minimum", "quick"):
            raise ValueError("config must be 'minimum' or 'quick'")
        self.service = service
        self.root = root.strip("/")
        self.latency = latency
        self.static_token = token
        self.credentials = dict(credentials or {})
        self.token_ttl_minutes = token_ttl_minutes
        self.auto_activity = auto_activity
        self.current_version = current_version
        self.clock = clock
        self.cache_root = cache_root
        self.date_resolution_ms = date_resolution_ms
        self._cached_root: Optional[dict[str, Any]] = None
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.undocumented: list[RecordedRequest] = []
        self.unimplemented: list[RecordedRequest] = []
        self.internal_errors: list[str] = []
        self._faults: list[_Fault] = []
        self._tokens: dict[str, _Token] = {}
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._port = 0
        self.jobs: dict[int, dict[str, Any]] = {}
        self.job_holds: dict[int, dict[int, dict[str, Any]]] = {}
        self.job_notes: dict[int, str] = {}
        self.job_activity: dict[int, list[dict[str, Any]]] = {}
        self.job_attachments: dict[int, dict[int, dict[str, Any]]] = {}
        self.attachment_bytes: dict[int, bytes] = {}
        self.job_dependencies: dict[int, dict[int, dict[str, Any]]] = {}
        self.extended_tables: dict[str, dict[str, Any]] = {}
        self.job_extended: dict[int, dict[str, dict[int, dict[str, Any]]]] = {}
        self.replication_nodes: list[dict[str, Any]] = []
        self.data_workspaces: dict[str, dict[str, Any]] = {}
        self.job_types: dict[int, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[int, dict[str, Any]] = {}
        self._next_job_id = job_id_start
        self._next_child_id = 1
        self._children: Optional[dict[int, list[int]]] = None
        base = _minimum_configuration()
        self.statuses: dict[int, dict[str, Any]] = base["statuses"]
        self.priorities: dict[int, dict[str, Any]] = base["priorities"]
        self.activity_types: dict[int, dict[str, Any]] = base["activity_types"]
        self.hold_types: dict[int, dict[str, Any]] = base["hold_types"]
        self.config_properties: dict[str, str] = base["config_properties"]
        self.config_properties["JOB_ID_START_VALUE"] = str(job_id_start)
        admins = list(users)
        for admin in admins:
            self.seed_user(admin, fullName=f"{admin} (administrator)")
        self.seed_group("Administrators", users=admins, privileges=list(ALL_PRIVILEGES),
                        id=1)
        if config == "quick":
            for type_id, name, description, category, priority in QUICK_JOB_TYPES:
                self.seed_job_type(id=type_id, name=name, description=description,
                                   category=category, defaultPriority=priority)
            self.seed_hold_type("Waiting for Data", id=2)
            self.seed_hold_type("Waiting for Approval", id=3)
            for name, full in (("editor1", "Editor One"), ("editor2", "Editor Two"),
                               ("reviewer1", "Reviewer One")):
                self.seed_user(name, fullName=full)
            self.seed_group("Editors", users=["editor1", "editor2"], id=2,
                            privileges=["CreateJob", "CloseJob", "ManageHolds",
                                        "ManageAttachments"])
            self.seed_group("Reviewers", users=["reviewer1"], id=3,
                            privileges=["CloseJob", "ManageHolds"])

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> EsriDouble:
        """Bind 127.0.0.1 (port 0 the first time, the same port after) and serve."""
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01},  # stop() waits one poll
                                        name=f"esri-double-{self.service}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: the listener closes and open keep-alive connections are cut."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            for connection in list(server.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart(self) -> EsriDouble:
        """Come back on the same port with the same state (the end of a simulated outage)."""
        self.stop()
        return self.start()

    def __enter__(self) -> EsriDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def at_sample_url(cls, sample_url: str, **options: Any) -> EsriDouble:
        """A double serving the path of one of Esri's sample URLs (its host aside), e.g.
        ``http://ohioServer/arcgis/rest/services/SO/WMServer``; start it, then hand the script
        ``local_url(sample_url)``."""
        parts = urllib.parse.urlsplit(sample_url).path.strip("/").split("/")
        if len(parts) < 3 or parts[-1].lower() != "wmserver":
            raise ValueError(f"not a WMServer URL: {sample_url}")
        return cls(parts[-2], root="/".join(parts[:-2]), **options)

    def local_url(self, sample_url: str) -> str:
        """``sample_url`` with its host replaced by this running double; the path is kept as
        written (case included) and must be this double's service."""
        path = urllib.parse.urlsplit(sample_url).path
        if self._relative_path(path) != "":
            raise ValueError(f"{sample_url} is not this double's service")
        return f"http://127.0.0.1:{self._port}{path}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/{self.root}/{self.service}/WMServer"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/arcgis/tokens/generateToken"

    @property
    def secured(self) -> bool:
        return self.static_token is not None or bool(self.credentials)

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()
            self.undocumented.clear()
            self.unimplemented.clear()

    def fail_next(self, path_substring: str, *, error_code: int = 500, times: int = 1,
                  mode: str = "error", delay: float = 0.0) -> None:
        """Fault injection for the next ``times`` requests whose path contains the substring
        (case-blind). ``mode``: "error" answers the envelope with ``error_code`` and changes
        nothing; "drop" closes the connection unanswered and changes nothing; "lost_reply"
        does the work, then closes the connection unanswered; "slow" waits ``delay``
        seconds, then does the work and answers (a client timeout shorter than ``delay``
        gives up on a write that still happens)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        with self.lock:
            self._faults.append(_Fault(path_substring.lower(), error_code, times, mode, delay))

    def clear_root_cache(self) -> None:
        """What an admin does after a configuration change (``.../admin/cache/clear``)."""
        with self.lock:
            self._cached_root = None

    def expire_tokens(self) -> None:
        """Every generated token expires now (the static token never does)."""
        with self.lock:
            for issued in self._tokens.values():
                issued.expires_ms = 0

    def now_ms(self) -> int:
        return self._stored_date(int(self.clock() * 1000))

    def _stored_date(self, ms: int) -> int:
        return ms - ms % self.date_resolution_ms

    # ----------------------------------------------------------------- seeding (no HTTP)

    def _new_child_id(self) -> int:
        with self.lock:
            value = self._next_child_id
            self._next_child_id += 1
            return value

    def seed_job_type(self, name: str, *, id: Optional[int] = None, **fields: Any) -> int:
        with self.lock:
            type_id = id if id is not None else max(self.job_types, default=0) + 1
            record = {"id": type_id, "name": name, "description": "", "category": "",
                      "state": 1, "jobNamingScheme": "[JOB:ID]",
                      "jobVersionNamingScheme": "", "mxdNamingScheme": "",
                      "defaultAssignedTo": "", "defaultAssignedType": 0,
                      "defaultJobDuration": 0, "defaultStartDate": None,
                      "defaultDueDate": None, "defaultPriority": 0, "defaultDescription": "",
                      "defaultDataWorkspaceId": "", "defaultParentVersionName": "",
                      "canDataWorkspaceChange": True, "autoExecuteCreatedJobs": False}
            record.update(fields)
            self.job_types[type_id] = record
            return type_id

    def seed_status(self, name: str, *, id: Optional[int] = None, **fields: Any) -> int:
        return self._seed_config(self.statuses, "id", id, {"name": name, "description": "",
                                                           "caption": name, **fields})

    def seed_priority(self, name: str, *, value: Optional[int] = None, **fields: Any) -> int:
        return self._seed_config(self.priorities, "value", value,
                                 {"name": name, "description": "", **fields})

    def seed_activity_type(self, name: str, *, id: Optional[int] = None, **fields: Any) -> int:
        return self._seed_config(self.activity_types, "id", id,
                                 {"name": name, "description": "", "message": name, **fields})

    def seed_hold_type(self, name: str, *, id: Optional[int] = None, **fields: Any) -> int:
        return self._seed_config(self.hold_types, "id", id,
                                 {"name": name, "description": "", **fields})

    def _seed_config(self, table: dict[int, dict[str, Any]], key: str, value: Optional[int],
                     record: dict[str, Any]) -> int:
        with self.lock:
            number = value if value is not None else max(table, default=0) + 1
            table[number] = {key: number, **record}
            return number

    def seed_user(self, userName: str, **fields: Any) -> str:
        with self.lock:
            self.users[userName] = {"userName": userName, "fullName": userName,
                                    "firstName": "", "lastName": "", "email": "", **fields}
            return userName

    def seed_group(self, name: str, *, users: Iterable[str] = (),
                   privileges: Iterable[str] = (), id: Optional[int] = None,
                   description: str = "") -> int:
        with self.lock:
            group_id = id if id is not None else max(self.groups, default=0) + 1
            self.groups[group_id] = {"id": group_id, "name": name, "description": description,
                                     "users": list(users), "privileges": list(privileges)}
            return group_id

    def seed_data_workspace(self, name: str, workspace_id: str) -> str:
        with self.lock:
            self.data_workspaces[workspace_id] = {"id": workspace_id, "name": name}
            return workspace_id

    def seed_replication_node(self, **fields: Any) -> dict[str, Any]:
        with self.lock:
            node = {"id": len(self.replication_nodes) + 1, "name": "", "description": "",
                    "serverURL": "", "isParent": False, "isConnected": True, "lastSync": None}
            node.update(fields)
            self.replication_nodes.append(node)
            return node

    def set_config_property(self, key: str, value: str) -> None:
        with self.lock:
            self.config_properties[key.upper()] = value

    def seed_job(self, **fields: Any) -> int:
        """A job as if created on the server long ago: no activity logged, fields as given."""
        with self.lock:
            job_id = fields.pop("id", None)
            job_id = self._take_job_id(job_id)
            record = self._blank_job(job_id, fields.get("createdBy", next(iter(self.users))))
            record.update(fields)
            self.jobs[job_id] = record
            self._children = None
            return job_id

    def update_job(self, job_id: int, **fields: Any) -> None:
        """Change a job behind the REST surface (as an Esri desktop user would)."""
        with self.lock:
            self.jobs[job_id].update(fields)
            self._children = None

    def job(self, job_id: int) -> dict[str, Any]:
        """The job JSON ``jobs/{id}`` would answer."""
        with self.lock:
            return self._job_json(job_id)

    def seed_hold(self, job_id: int, *, type: int = 1, heldBy: Optional[str] = None,
                  holdComments: str = "", holdDate: Optional[int] = None, **fields: Any) -> int:
        with self.lock:
            hold_id = self._new_child_id()
            hold = {"id": hold_id, "type": type, "heldBy": heldBy or next(iter(self.users)),
                    "holdDate": self.now_ms() if holdDate is None else holdDate,
                    "holdComments": holdComments, "releasedBy": None, "releaseDate": None,
                    "releaseComments": None}
            hold.update(fields)
            self.job_holds.setdefault(job_id, {})[hold_id] = hold
            return hold_id

    def holds(self, job_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(h) for h in self.job_holds.get(job_id, {}).values()]

    def seed_note(self, job_id: int, text: str) -> None:
        with self.lock:
            self.job_notes[job_id] = text

    def notes(self, job_id: int) -> str:
        with self.lock:
            return self.job_notes.get(job_id, "")

    def seed_activity(self, job_id: int, *, type: int, message: str = "",
                      user: Optional[str] = None, date: Optional[int] = None) -> None:
        with self.lock:
            self.job_activity.setdefault(job_id, []).append(
                {"type": type, "user": user or next(iter(self.users)),
                 "date": self.now_ms() if date is None else date, "message": message})

    def activity(self, job_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(a) for a in self.job_activity.get(job_id, [])]

    def seed_attachment(self, job_id: int, *, content: Optional[bytes] = None,
                        filename: str = "", storageType: int = 2, folder: str = "") -> int:
        with self.lock:
            attachment_id = self._new_child_id()
            extension = filename.rpartition(".")[2] if "." in filename else ""
            self.job_attachments.setdefault(job_id, {})[attachment_id] = {
                "id": attachment_id, "storageType": storageType, "type": extension,
                "folder": folder, "filename": filename}
            if storageType == 2:
                self.attachment_bytes[attachment_id] = content or b""
            return attachment_id

    def attachments(self, job_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(a) for a in self.job_attachments.get(job_id, {}).values()]

    def attachment_content(self, attachment_id: int) -> bytes:
        with self.lock:
            return self.attachment_bytes[attachment_id]

    def seed_dependency(self, job_id: int, *, depJobId: int, heldOnType: int = 2,
                        heldOnValue: int = 1, depOnType: int = 2, depOnValue: int = 5) -> int:
        with self.lock:
            dependency_id = self._new_child_id()
            self.job_dependencies.setdefault(job_id, {})[dependency_id] = {
                "id": dependency_id, "jobId": job_id, "heldOnType": heldOnType,
                "heldOnValue": heldOnValue, "depJobId": depJobId, "depOnType": depOnType,
                "depOnValue": depOnValue}
            return dependency_id

    def dependencies(self, job_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(d) for d in self.job_dependencies.get(job_id, {}).values()]

    def seed_extended_table(self, tableName: str, fields: Iterable[str], *,
                            tableAlias: str = "", relationshipType: int = 2) -> None:
        """An extended-property table; each field is a string field (dataType 4)."""
        with self.lock:
            self.extended_tables[tableName.upper()] = {
                "tableName": tableName, "tableAlias": tableAlias or tableName,
                "relationshipType": relationshipType, "fields": list(fields)}

    def seed_extended_record(self, job_id: int, tableName: str,
                             values: Optional[dict[str, Any]] = None) -> int:
        with self.lock:
            table = self.extended_tables[tableName.upper()]
            record_id = self._new_child_id()
            record = {name: None for name in table["fields"]}
            record.update(values or {})
            self.job_extended.setdefault(job_id, {}).setdefault(
                table["tableName"].upper(), {})[record_id] = record
            return record_id

    def extended_records(self, job_id: int, tableName: str) -> dict[int, dict[str, Any]]:
        with self.lock:
            records = self.job_extended.get(job_id, {}).get(tableName.upper(), {})
            return {rid: dict(values) for rid, values in records.items()}

    def populate(self, jobs: int, *, start_ms: int = 1_230_768_000_000) -> list[int]:
        """``jobs`` jobs as a working Classic repository has them, for benchmarks: each with
        notes and a created record; every 5th with a hold, every 10th with an embedded
        attachment, every 20th with a released hold and a URL attachment, every 25th
        depending on the job before it. Dates are fixed, so two populations are equal."""
        created: list[int] = []
        job_types = sorted(self.job_types) or [1]
        with self.lock:
            for number in range(jobs):
                moment = start_ms + number * 60_000
                job_id = self.seed_job(name=f"Job {number + 1}", createdDate=moment,
                                       startDate=moment,
                                       jobTypeId=job_types[number % len(job_types)],
                                       priority=number % 5, description=f"Benchmark job {number}")
                self.job_notes[job_id] = f"notes of job {job_id}"
                self.seed_activity(job_id, type=1, message="Job created", date=moment)
                if number % 5 == 0:
                    self.seed_hold(job_id, holdDate=moment, holdComments="waiting")
                if number % 10 == 0:
                    self.seed_attachment(job_id, content=b"%d" % job_id * 64,
                                         filename=f"job{job_id}.txt")
                if number % 20 == 0:
                    self.seed_hold(job_id, holdDate=moment, releasedBy="admin",
                                   releaseDate=moment + 1000, releaseComments="done")
                    self.seed_attachment(job_id, storageType=3,
                                         folder=f"https://example.com/{job_id}")
                if number % 25 == 0 and created:
                    self.seed_dependency(job_id, depJobId=created[-1])
                created.append(job_id)
        return created

    def snapshot(self) -> dict[int, dict[str, Any]]:
        """Everything each job carries, as plain data (attachment bytes included, the
        time-dependent ``pendingDays`` left out), for comparing nodes after a sync."""
        with self.lock:
            return {job_id: {
                "job": {k: v for k, v in self._job_json(job_id).items() if k != "pendingDays"},
                "holds": self.holds(job_id), "notes": self.notes(job_id),
                "activity": self.activity(job_id),
                "attachments": [{**a, "content": self.attachment_bytes.get(a["id"])}
                                for a in self.attachments(job_id)],
                "dependencies": self.dependencies(job_id),
                "extendedProperties": {table["tableName"]: self.extended_records(
                    job_id, table["tableName"]) for table in self.extended_tables.values()},
            } for job_id in sorted(self.jobs)}

    # ----------------------------------------------------------------- request pipeline

    def handle(self, handler: _Handler, method: str) -> None:
        """Answer one HTTP request (called on the connection's thread)."""
        split = urllib.parse.urlsplit(handler.path)
        path = urllib.parse.unquote(split.path)
        relative = self._relative_path(path)
        recorded_path = path if relative is None else relative
        try:
            params, files = self._read_parameters(handler, method, split.query)
        except EsriError as error:
            self._record(method, recorded_path, {}, {})
            handler.send(_render(error.envelope(), "json", None))
            return
        if self.latency:
            time.sleep(self.latency)
        record = self._record(method, recorded_path, params, files)
        fault = self._take_fault(record.path)
        if fault is not None and fault.mode == "slow":
            time.sleep(fault.delay)
            fault = None
        if fault is not None and fault.mode == "drop":
            handler.drop()
            return
        if fault is not None and fault.mode == "error":
            handler.send(_render(EsriError(fault.error_code, "Error performing operation.",
                                           "Injected fault.").envelope(), "json", None))
            return
        reply = self._dispatch(handler, method, path, relative, params, files, record)
        if fault is not None:
            handler.drop()
            return
        handler.send(reply)

    def _read_parameters(self, handler: _Handler, method: str, query: str
                         ) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        pairs = self._decode_pairs(query)
        files: dict[str, tuple[str, bytes]] = {}
        body = handler.read_body()
        if method == "POST" and body:
            content_type = handler.headers.get("Content-Type", "")
            if content_type.lower().startswith("multipart/form-data"):
                more, files = _parse_multipart(content_type, body)
                pairs.extend(more)
            else:
                try:
                    pairs.extend(self._decode_pairs(body.decode("utf-8")))
                except UnicodeDecodeError as exc:
                    raise bad_request("The request body is not UTF-8.") from exc
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params and params[key] != value:
                raise bad_request(f"Parameter '{key}' is given twice with different values.")
            params[key] = value
        return params, files

    @staticmethod
    def _decode_pairs(text: str) -> list[tuple[str, str]]:
        try:
            return urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request("The request parameters are not valid UTF-8.") from exc

    def _relative_path(self, path: str) -> Optional[str]:
        """The part after ``.../<service>/WMServer``, or None for another path."""
        prefix = f"/{self.root}/{self.service}/wmserver".lower()
        lowered = path.lower()
        if lowered == prefix or lowered == prefix + "/":
            return ""
        if lowered.startswith(prefix + "/"):
            return path[len(prefix) + 1:].rstrip("/")
        return None

    def _record(self, method: str, path: str, params: dict[str, str],
                files: dict[str, tuple[str, bytes]]) -> RecordedRequest:
        masked = {k: ("***" if k in ("token", "password") else v) for k, v in params.items()}
        record = RecordedRequest(method, path, masked, params.get("user"), self.clock(),
                                 {name: filename for name, (filename, _) in files.items()})
        with self.lock:
            self.requests.append(record)
        return record

    def _take_fault(self, path: str) -> Optional[_Fault]:
        with self.lock:
            for fault in self._faults:
                if fault.path_substring in path.lower():
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _dispatch(self, handler: _Handler, method: str, path: str, relative: Optional[str],
                  params: dict[str, str], files: dict[str, tuple[str, bytes]],
                  record: RecordedRequest) -> _Reply:
        """Do the work and render the answer (under the lock, so it is one consistent read)."""
        fmt = params.get("f", "html").lower()
        callback = params.get("callback")
        if callback is not None and not _CALLBACK.fullmatch(callback):
            return _render(bad_request("Invalid callback.").envelope(), fmt, None)
        try:
            if relative is None:
                body = self._outside_service(handler, method, path, params, record)
                return _render(body, fmt, callback)
            if method not in ("GET", "POST"):
                self._note_undocumented(record)
                raise EsriError(405, "Method not supported.", f"{method} is not supported.")
            try:  # recorded before the token is checked, answered after (Esri's order)
                route, captures = self._find_route(relative, record)
                self._check_parameters(route, params, files, record)
            except EsriError:
                self._check_token(handler, params)
                raise
            self._check_token(handler, params)
            if fmt not in ("json", "pjson", "html") and not (
                    fmt == "file" and route.handler == "attachment_content"):
                raise bad_request(f"Invalid format '{fmt}'.")
            user = self._check_user(route, params)
            call = _Call(params, files, captures, user, record)
            with self.lock:
                self._check_privileges(route, call)
                result = getattr(self, f"_r_{route.handler}")(call)
                if isinstance(result, _Reply):
                    return result
                return _render(result, fmt, callback)
        except EsriError as error:
            return _render(error.envelope(), fmt, callback)
        except Exception as exc:  # a bug of the double: Esri's 500, and kept for the tests
            with self.lock:
                self.internal_errors.append(f"{record.method} {record.path}: {exc!r}")
            return _render(EsriError(500, "Error performing operation.").envelope(), fmt,
                           callback)

    def _note_undocumented(self, record: RecordedRequest) -> None:
        with self.lock:
            self.undocumented.append(record)

    def _find_route(self, relative: str, record: RecordedRequest
                    ) -> tuple[_Route, dict[str, str]]:
        segments = relative.split("/") if relative else []
        for route in _ROUTES_BY_LENGTH.get(len(segments), ()):
            captures = _match(route.pattern, segments)
            if captures is not None:
                return route, captures
        for pattern in UNIMPLEMENTED:
            if _match(pattern, segments) is not None:
                with self.lock:
                    self.unimplemented.append(record)
                raise bad_request(f"'{relative}' is documented but not implemented by the "
                                  "double.")
        self._note_undocumented(record)
        raise bad_request("Invalid URL", f"'{relative}' is not a resource of this service.")

    def _check_parameters(self, route: _Route, params: dict[str, str],
                          files: dict[str, tuple[str, bytes]], record: RecordedRequest) -> None:
        unknown = sorted(k for k in params if k not in TRANSPORT_PARAMETERS
                         and k not in route.params)
        if files and route.handler != "add_attachment":
            unknown.extend(sorted(files))
        if unknown:
            self._note_undocumented(record)
            raise bad_request(f"Parameter '{unknown[0]}' is not a parameter of this "
                              "operation.")
        for name in route.required:
            if name not in params:
                raise bad_request(f"Missing required parameter: {name}")

    def _check_user(self, route: _Route, params: dict[str, str]) -> Optional[str]:
        given = params.get("user")
        if given is None or given == "":
            if route.write or "user" in route.required:
                raise bad_request("Missing required parameter: user")
            return None
        with self.lock:
            name = self._known_user(given)
        if name is None:
            raise bad_request(f"User '{given}' is not a Workflow Manager user.")
        return name

    def _check_privileges(self, route: _Route, call: _Call) -> None:
        """The privileges the reference names (§3.3), on the operations they name."""
        needed = [ROUTE_PRIVILEGES[route.handler]] if route.handler in ROUTE_PRIVILEGES else []
        if route.handler in ("create_jobs", "update_job"):
            properties = _json_param(call.params.get("properties", "{}"), "properties")
            keys = set(call.params) | (set(properties) if isinstance(properties, dict) else set())
            if keys & {"aoi", "poi", "clearAOI"}:
                needed.append("ManageAOI")
        if not needed:
            return
        assert call.user is not None
        held = self._privileges(call.user)
        missing = [p for p in needed if p not in held]
        if missing:
            raise EsriError(403, "You do not have permissions to perform this operation.",
                            f"User '{call.user}' lacks the {missing[0]} privilege.")

    def _known_user(self, given: str) -> Optional[str]:
        for candidate in (given, given.replace("|", "\\")):
            if candidate in self.users:
                return candidate
        lowered = given.replace("|", "\\").lower()
        return next((name for name in self.users if name.lower() == lowered), None)

    def _check_token(self, handler: _Handler, params: dict[str, str]) -> None:
        if not self.secured:
            return
        given = params.get("token")
        if not given:
            raise EsriError(499, "Token Required")
        if self.static_token is not None and _same_secret(given, self.static_token):
            return
        with self.lock:
            issued = self._tokens.get(given)
        if issued is None or issued.expires_ms <= self.now_ms():
            raise EsriError(498, "Invalid Token")
        if issued.client == "referer" and handler.headers.get("Referer") != issued.bound_to:
            raise EsriError(498, "Invalid Token")
        if issued.client in ("ip", "requestip") and handler.client_address[0] != \
                issued.bound_to:
            raise EsriError(498, "Invalid Token")

    # ----------------------------------------------------------------- outside the service

    def _outside_service(self, handler: _Handler, method: str, path: str,
                         params: dict[str, str], record: RecordedRequest) -> dict[str, Any]:
        lowered = path.lower().rstrip("/")
        if lowered == "/arcgis/tokens/generatetoken":
            return self._generate_token(handler, method, params, record)
        if lowered == "/arcgis/rest/info" and method in ("GET", "POST"):
            return {"currentVersion": self.current_version,
                    "authInfo": {"isTokenBasedSecurity": self.secured,
                                 "tokenServicesUrl": self.token_url,
                                 "shortLivedTokenValidity": self.token_ttl_minutes}}
        self._note_undocumented(record)
        raise not_found("Service not found.", f"'{path}' is not a resource of this server.")

    def _generate_token(self, handler: _Handler, method: str, params: dict[str, str],
                        record: RecordedRequest) -> dict[str, Any]:
        if method != "POST":
            raise EsriError(405, "Method not supported.",
                            "Token generation via GET requests is not allowed.")
        allowed = {"username", "password", "client", "referer", "ip", "expiration", "f"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            self._note_undocumented(record)
            raise bad_request(f"Parameter '{unknown[0]}' is not a parameter of generateToken.")
        username, password = params.get("username", ""), params.get("password", "")
        expected = self.credentials.get(username)
        if not username or expected is None or not _same_secret(password, expected):
            raise EsriError(400, "Unable to generate token.", "Invalid username or password.")
        client = params.get("client", "referer" if params.get("referer") else "requestip")
        if client == "referer":
            bound = params.get("referer", "")
            if not bound:
                raise EsriError(400, "Unable to generate token.", "'referer' is required.")
        elif client == "ip":
            bound = params.get("ip", "")
            if not bound:
                raise EsriError(400, "Unable to generate token.", "'ip' is required.")
        elif client == "requestip":
            bound = handler.client_address[0]
        else:
            raise EsriError(400, "Unable to generate token.", "Invalid value for 'client'.")
        minutes = self.token_ttl_minutes
        if "expiration" in params:
            requested = _integer(params["expiration"], "expiration")
            if requested <= 0:
                raise bad_request("Invalid value for 'expiration'.")
            minutes = min(minutes, requested)
        token = secrets.token_urlsafe(48)
        expires = self.now_ms() + int(minutes * 60_000)
        with self.lock:
            self._tokens[token] = _Token(expires, client, bound)
        return {"token": token, "expires": expires, "ssl": False}

    # ----------------------------------------------------------------- state helpers

    def _take_job_id(self, wanted: Optional[int]) -> int:
        if wanted is not None:
            if wanted in self.jobs:
                raise bad_request(f"Job {wanted} already exists.")
            if not 0 < wanted <= MAX_ID:
                raise bad_request("Invalid value for 'id'.")
            return wanted
        while self._next_job_id in self.jobs:
            self._next_job_id += 1
        job_id = self._next_job_id
        self._next_job_id += 1
        return job_id

    def _blank_job(self, job_id: int, creator: str) -> dict[str, Any]:
        now = self.now_ms()
        return {"id": job_id, "name": str(job_id), "description": "", "createdBy": creator,
                "ownedBy": creator, "assignedTo": "", "assignedType": 0,
                "jobTypeId": min(self.job_types, default=1), "parentJobId": 0,
                "priority": 0, "stage": 1, "status": 1, "percentageComplete": 0,
                "dataWorkspaceId": "", "versionName": "", "parentVersion": "",
                "createdDate": now, "startDate": now, "startedDate": None, "dueDate": None,
                "endDate": None, "aoi": None, "poi": None, "versionExists": False,
                "versionInfo": []}

    def _job_json(self, job_id: int) -> dict[str, Any]:
        if self._children is None:
            children: dict[int, list[int]] = {}
            for other in self.jobs.values():
                if other.get("parentJobId"):
                    children.setdefault(other["parentJobId"], []).append(other["id"])
            self._children = children
        record = dict(self.jobs[job_id])
        record["childJobIds"] = sorted(self._children.get(job_id, []))
        due = record.get("dueDate")
        record["pendingDays"] = (due - self.now_ms()) // DAY_MS if due is not None else 0
        return record

    def _existing_job(self, call: _Call, key: str = "job") -> int:
        job_id = int(call.captures[key])
        if job_id not in self.jobs:
            raise not_found(f"Job {job_id} does not exist.")
        return job_id

    def _existing_jobs(self, call: _Call) -> list[int]:
        job_ids = _id_list(call.params["jobs"])
        missing = [j for j in job_ids if j not in self.jobs]
        if missing:
            raise not_found(f"Job {missing[0]} does not exist.")
        return job_ids

    def _log(self, job_id: int, activity_name: str, user: Optional[str], detail: str = "") -> None:
        if not self.auto_activity:
            return
        kind = next((a for a in self.activity_types.values() if a["name"] == activity_name),
                    None)
        if kind is None:
            return
        message = f"{kind['message']}: {detail}" if detail else kind["message"]
        self.job_activity.setdefault(job_id, []).append(
            {"type": kind["id"], "user": user, "date": self.now_ms(), "message": message})

    def _group_names(self) -> set[str]:
        return {g["name"] for g in self.groups.values()}

    def _privileges(self, user: str) -> set[str]:
        return {p for g in self.groups.values() if user in g["users"] for p in g["privileges"]}

    def _job_values(self, values: dict[str, Any], *, job_id: Optional[int]) -> dict[str, Any]:
        """Job fields from create/update parameters, validated; keys in job-JSON names."""
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("name", "description", "parentVersion", "versionName"):
                if value is not None and not isinstance(value, str):
                    raise bad_request(f"Invalid value for '{key}'.")
                out[key] = value or ""
            elif key in ("startDate", "dueDate"):
                out[key] = None if value in (None, "") else self._stored_date(
                    _integer(value, key))
            elif key == "priority":
                number = _integer(value, key)
                if number not in self.priorities:
                    raise bad_request(f"Priority {number} does not exist.")
                out[key] = number
            elif key == "status":
                number = _integer(value, key)
                if number not in self.statuses:
                    raise bad_request(f"Status {number} does not exist.")
                out[key] = number
            elif key == "parentJobId":
                number = _integer(value, key) if value not in (None, "") else 0
                if number and (number not in self.jobs or number == job_id):
                    raise bad_request(f"Parent job {number} does not exist.")
                out[key] = number
            elif key == "dataWorkspaceId":
                if value and value not in self.data_workspaces:
                    raise bad_request(f"Data workspace '{value}' does not exist.")
                out[key] = value or ""
            elif key == "ownedBy":
                owner = self._known_user(str(value)) if value else None
                if value and owner is None:
                    raise bad_request(f"User '{value}' is not a Workflow Manager user.")
                out[key] = owner or ""
            elif key == "assignedType":
                number = _integer(value, key)
                if number not in (-1, 0, 1, 2):
                    raise bad_request("Invalid value for 'assignedType'.")
                out[key] = number
            elif key == "assignedTo":
                out[key] = "" if value is None else str(value)
            elif key == "percent":
                number = _integer(value, key)
                if not 0 <= number <= 100:
                    raise bad_request("Invalid value for 'percent'.")
                out["percentageComplete"] = number
            elif key in ("aoi", "poi"):
                out[key] = self._geometry(value, key)
        return out

    @staticmethod
    def _geometry(value: Any, key: str) -> Optional[dict[str, Any]]:
        if value in (None, ""):
            return None
        geometry = _json_param(value, key)
        part = "rings" if key == "aoi" else "points"
        if not isinstance(geometry, dict) or not isinstance(geometry.get(part), list):
            raise bad_request(f"Invalid geometry in '{key}': expected an object with "
                              f"'{part}'.")
        return geometry

    def _check_assignment(self, fields: dict[str, Any]) -> None:
        kind, target = fields.get("assignedType"), fields.get("assignedTo")
        if kind == 1 and (not target or self._known_user(target) is None):
            raise bad_request(f"User '{target}' is not a Workflow Manager user.")
        if kind == 2 and target not in self._group_names():
            raise bad_request(f"Group '{target}' does not exist.")
        if kind == 1:
            fields["assignedTo"] = self._known_user(target)

    # ----------------------------------------------------------------- routes: configuration

    def _r_root(self, call: _Call) -> dict[str, Any]:
        if not self.cache_root:
            return self._root_json()
        if self._cached_root is None:  # a snapshot: later seeding must not show through
            self._cached_root = json.loads(json.dumps(self._root_json()))
        return self._cached_root

    def _root_json(self) -> dict[str, Any]:
        summary = ("id", "name", "description", "category", "state")
        return {
            "currentVersion": self.current_version,
            "serviceDescription": f"Workflow Manager service {self.service}",
            "configProperties": dict(self.config_properties),
            "jobTypes": [{k: t[k] for k in summary} for t in self.job_types.values()],
            "jobStatuses": list(self.statuses.values()),
            "jobPriorities": list(self.priorities.values()),
            "activityTypes": list(self.activity_types.values()),
            "holdTypes": list(self.hold_types.values()),
            "dataWorkspaces": list(self.data_workspaces.values()),
            "publicQueries": {"name": "Public Queries", "containers": [], "queries": []},
        }

    def _r_update_config_properties(self, call: _Call) -> dict[str, Any]:
        properties = _json_param(call.params["properties"], "properties")
        if not isinstance(properties, dict) or not all(
                isinstance(v, str) for v in properties.values()):
            raise bad_request("'properties' must be a JSON object of strings.")
        for key, value in properties.items():
            self.config_properties[key.upper()] = value
        return {"returnCode": 1}

    def _r_visible_job_types(self, call: _Call) -> dict[str, Any]:
        summary = ("id", "name", "description", "category", "state")
        return {"jobTypes": [{k: t[k] for k in summary} for t in self.job_types.values()]}

    def _r_job_type(self, call: _Call) -> dict[str, Any]:
        type_id = int(call.captures["jobType"])
        if type_id not in self.job_types:
            raise not_found(f"Job type {type_id} does not exist.")
        return dict(self.job_types[type_id])

    def _user_json(self, name: str) -> dict[str, Any]:
        record = dict(self.users[name])
        record["groups"] = [{"id": g["id"], "name": g["name"]} for g in self.groups.values()
                            if name in g["users"]]
        record["privileges"] = [{"name": p} for p in sorted(self._privileges(name))]
        record["userQueries"] = {"name": "User Queries", "containers": [], "queries": []}
        return record

    def _r_users(self, call: _Call) -> dict[str, Any]:
        return {"users": [self._user_json(name) for name in self.users]}

    def _r_user(self, call: _Call) -> dict[str, Any]:
        name = self._known_user(call.captures["userName"])
        return {} if name is None else self._user_json(name)

    def _group_json(self, group: dict[str, Any]) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in group.items()
                if k != "privileges"}

    def _r_groups(self, call: _Call) -> dict[str, Any]:
        return {"groups": [self._group_json(g) for g in self.groups.values()]}

    def _r_group(self, call: _Call) -> dict[str, Any]:
        group_id = int(call.captures["group"])
        if group_id not in self.groups:
            raise not_found(f"Group {group_id} does not exist.")
        return self._group_json(self.groups[group_id])

    def _r_replication_info(self, call: _Call) -> dict[str, Any]:
        return {"nodes": [dict(node) for node in self.replication_nodes]}

    # ----------------------------------------------------------------- routes: jobs

    def _r_job_ids(self, call: _Call) -> dict[str, Any]:
        return {"jobIds": sorted(self.jobs)}

    def _r_job(self, call: _Call) -> dict[str, Any]:
        job_id = int(call.captures["job"])
        return self._job_json(job_id) if job_id in self.jobs else {}

    def _r_create_jobs(self, call: _Call) -> dict[str, Any]:
        params = call.params
        type_id = _integer(params["jobTypeId"], "jobTypeId")
        if type_id not in self.job_types:
            raise bad_request(f"Job type {type_id} does not exist.")
        job_type = self.job_types[type_id]
        count = _integer(params.get("numJobs", "1"), "numJobs")
        wanted = _integer(params["id"], "id") if params.get("id") else None
        if not 1 <= count <= MAX_JOBS_PER_CREATE or (wanted is not None and count != 1):
            raise bad_request("Invalid value for 'numJobs'.")
        for flag in ("autoExecute", "autoCommitWorkflow"):
            if flag in params:
                _boolean(params[flag], flag)
        given = {k: params[k] for k in _UPDATE_KEYS.split() if k in params}  # the job fields
        fields = self._job_values(given, job_id=None)
        fields.setdefault("priority", job_type["defaultPriority"])
        fields.setdefault("description", job_type["defaultDescription"])
        fields.setdefault("assignedType", 1 if fields.get("assignedTo") else
                          job_type["defaultAssignedType"])
        fields.setdefault("assignedTo", job_type["defaultAssignedTo"])
        self._check_assignment(fields)
        assert call.user is not None
        created = []
        for _ in range(count):
            job_id = self._take_job_id(wanted)
            record = self._blank_job(job_id, call.user)
            record["jobTypeId"] = type_id
            record.update(fields)
            if "dueDate" not in given and job_type["defaultJobDuration"]:
                record["dueDate"] = record["startDate"] + job_type["defaultJobDuration"] * DAY_MS
            if not record["name"] or "name" not in given:
                record["name"] = job_type["jobNamingScheme"].replace("[JOB:ID]", str(job_id))
            self.jobs[job_id] = record
            self._log(job_id, "CreateJob", call.user)
            created.append(job_id)
        self._children = None
        return {"jobIds": created}

    def _r_update_job(self, call: _Call) -> dict[str, Any]:
        job_id = self._existing_job(call)
        params = call.params
        given: dict[str, Any] = {k: params[k] for k in _UPDATE_KEYS.split() if k in params}
        if "properties" in params:
            properties = _json_param(params["properties"], "properties")
            if not isinstance(properties, dict):
                raise bad_request("'properties' must be a JSON object.")
            unknown = sorted(set(properties) - set(_UPDATE_KEYS.split()))
            if unknown:
                self._note_undocumented(call.record)
                raise bad_request(f"'{unknown[0]}' is not a job property.")
            given.update(properties)
        fields = self._job_values(given, job_id=job_id)
        for flag, key in (("clearAOI", "aoi"), ("clearStartDate", "startDate"),
                          ("clearDueDate", "dueDate")):
            if flag in params and _boolean(params[flag], flag):
                fields[key] = None
        if "assignedType" in fields or "assignedTo" in fields:
            merged = {"assignedType": self.jobs[job_id]["assignedType"],
                      "assignedTo": self.jobs[job_id]["assignedTo"]} | fields
            self._check_assignment(merged)
            fields.update(merged)
        self.jobs[job_id].update(fields)
        self._children = None
        return {"success": True}

    def _assign(self, job_ids: list[int], call: _Call) -> dict[str, Any]:
        fields = {"assignedType": _integer(call.params["assignedType"], "assignedType"),
                  "assignedTo": call.params["assignedTo"]}
        if fields["assignedType"] not in (1, 2):
            raise bad_request("Invalid value for 'assignedType'.")
        self._check_assignment(fields)
        for job_id in job_ids:
            self.jobs[job_id].update(fields)
            self._log(job_id, "AssignJob", call.user, str(fields["assignedTo"]))
        return {"success": True}

    def _unassign(self, job_ids: list[int], call: _Call) -> dict[str, Any]:
        for job_id in job_ids:
            self.jobs[job_id].update(assignedType=0, assignedTo="")
            self._log(job_id, "AssignJob", call.user, "unassigned")
        return {"success": True}

    def _close(self, job_ids: list[int], call: _Call) -> dict[str, Any]:
        closed = next((s["id"] for s in self.statuses.values() if s["name"] == "Closed"), None)
        for job_id in job_ids:
            job = self.jobs[job_id]
            job.update(stage=CLOSED_STAGE, endDate=self.now_ms())
            if closed is not None:
                job["status"] = closed
            self._log(job_id, "CloseJob", call.user)
        return {"success": True}

    def _reopen(self, job_ids: list[int], call: _Call) -> dict[str, Any]:
        ready = next((s["id"] for s in self.statuses.values()
                      if s["name"] == "Ready To Work"), None)
        for job_id in job_ids:
            job = self.jobs[job_id]
            job.update(stage=2, endDate=None)
            if ready is not None:
                job["status"] = ready
            self._log(job_id, "ReopenJob", call.user)
        return {"success": True}

    def _delete(self, job_ids: list[int], call: _Call) -> dict[str, Any]:
        if "deleteHistory" in call.params:
            _boolean(call.params["deleteHistory"], "deleteHistory")
        for job_id in set(job_ids):
            del self.jobs[job_id]
            for table in (self.job_holds, self.job_notes, self.job_activity,
                          self.job_attachments, self.job_dependencies, self.job_extended):
                table.pop(job_id, None)
            for dependencies in self.job_dependencies.values():
                for dependency_id in [d for d, v in dependencies.items()
                                      if v["depJobId"] == job_id]:
                    del dependencies[dependency_id]
        self._children = None
        return {"success": True}

    def _r_assign_jobs(self, call: _Call) -> dict[str, Any]:
        return self._assign(self._existing_jobs(call), call)

    def _r_assign_job(self, call: _Call) -> dict[str, Any]:
        return self._assign([self._existing_job(call)], call)

    def _r_unassign_jobs(self, call: _Call) -> dict[str, Any]:
        return self._unassign(self._existing_jobs(call), call)

    def _r_unassign_job(self, call: _Call) -> dict[str, Any]:
        return self._unassign([self._existing_job(call)], call)

    def _r_close_jobs(self, call: _Call) -> dict[str, Any]:
        return self._close(self._existing_jobs(call), call)

    def _r_close_job(self, call: _Call) -> dict[str, Any]:
        return self._close([self._existing_job(call)], call)

    def _r_reopen_jobs(self, call: _Call) -> dict[str, Any]:
        return self._reopen(self._existing_jobs(call), call)

    def _r_delete_jobs(self, call: _Call) -> dict[str, Any]:
        return self._delete(self._existing_jobs(call), call)

    def _r_delete_job(self, call: _Call) -> dict[str, Any]:
        return self._delete([self._existing_job(call)], call)

    def _r_query_jobs(self, call: _Call) -> dict[str, Any]:
        params = call.params
        if "id" in params:
            if "fields" in params or "tables" in params:
                raise bad_request("Give either 'id' or 'fields' and 'tables', not both.")
            raise not_found(f"Query {params['id']} does not exist.")
        if not params.get("fields") or not params.get("tables"):
            raise bad_request("'fields' and 'tables' are required for an ad hoc query.")
        return _run_query(self.jobs.values(), params)

    # ----------------------------------------------------------------- routes: job children

    def _r_notes(self, call: _Call) -> dict[str, Any]:
        return {"notes": self.job_notes.get(self._existing_job(call), "")}

    def _r_update_notes(self, call: _Call) -> dict[str, Any]:
        self.job_notes[self._existing_job(call)] = call.params["notes"]
        return {"success": True}

    def _r_activity(self, call: _Call) -> dict[str, Any]:
        return {"activity": [dict(a) for a in self.job_activity.get(self._existing_job(call),
                                                                     [])]}

    def _r_log_action(self, call: _Call) -> dict[str, Any]:
        job_id = self._existing_job(call)
        type_id = _integer(call.params["type"], "type")
        if type_id not in self.activity_types:
            raise bad_request(f"Activity type {type_id} does not exist.")
        message = call.params.get("comments") or self.activity_types[type_id]["message"]
        self.job_activity.setdefault(job_id, []).append(
            {"type": type_id, "user": call.user, "date": self.now_ms(), "message": message})
        return {"success": True}

    def _r_holds(self, call: _Call) -> dict[str, Any]:
        return {"holds": self.holds(self._existing_job(call))}

    def _existing_hold(self, call: _Call) -> tuple[int, dict[str, Any]]:
        job_id = self._existing_job(call)
        hold_id = int(call.captures["hold"])
        hold = self.job_holds.get(job_id, {}).get(hold_id)
        if hold is None:
            raise not_found(f"Hold {hold_id} does not exist on job {job_id}.")
        return job_id, hold

    def _r_hold(self, call: _Call) -> dict[str, Any]:
        return dict(self._existing_hold(call)[1])

    def _r_create_hold(self, call: _Call) -> dict[str, Any]:
        job_id = self._existing_job(call)
        type_id = _integer(call.params["type"], "type")
        if type_id not in self.hold_types:
            raise bad_request(f"Hold type {type_id} does not exist.")
        comments = call.params.get("comments", "")
        hold_id = self.seed_hold(job_id, type=type_id, heldBy=call.user, holdComments=comments)
        self._log(job_id, "AddHold", call.user, comments)
        return {"holdId": hold_id}

    def _r_release_hold(self, call: _Call) -> dict[str, Any]:
        job_id, hold = self._existing_hold(call)
        if hold["releaseDate"] is not None:
            raise bad_request(f"Hold {hold['id']} is already released.")
        comments = call.params.get("comments", "")
        hold.update(releasedBy=call.user, releaseDate=self.now_ms(), releaseComments=comments)
        self._log(job_id, "ReleaseHold", call.user, comments)
        return {"success": True}

    def _r_attachments(self, call: _Call) -> dict[str, Any]:
        return {"attachments": self.attachments(self._existing_job(call))}

    def _existing_attachment(self, call: _Call) -> tuple[int, dict[str, Any]]:
        job_id = self._existing_job(call)
        attachment_id = int(call.captures["attachment"])
        attachment = self.job_attachments.get(job_id, {}).get(attachment_id)
        if attachment is None:
            raise not_found(f"Attachment {attachment_id} does not exist on job {job_id}.")
        return job_id, attachment

    def _r_attachment(self, call: _Call) -> dict[str, Any]:
        return dict(self._existing_attachment(call)[1])

    def _r_attachment_content(self, call: _Call) -> _Reply:
        if call.params.get("f", "").lower() != "file":
            raise bad_request("Attachment content is only available with f=file.")
        _, attachment = self._existing_attachment(call)
        if attachment["storageType"] == 2:
            return _file_reply(self.attachment_bytes.get(attachment["id"], b""),
                               attachment["filename"])
        if attachment["storageType"] == 1:
            folder, name = attachment["folder"], attachment["filename"]
            path = str(pathlib.PurePath(folder, name)) if folder else name
            try:
                with open(path, "rb") as linked:
                    return _file_reply(linked.read(), name)
            except OSError as exc:
                raise not_found(f"Linked file '{name}' cannot be read.") from exc
        raise bad_request("A URL attachment has no content on the server.")

    def _r_add_attachment(self, call: _Call) -> dict[str, Any]:
        job_id = self._existing_job(call)
        storage = _integer(call.params.get("storageType", "2"), "storageType")
        if storage == 2:
            if len(call.files) != 1 or "filePath" in call.params:
                raise bad_request("An embedded attachment needs exactly one file part.")
            filename, content = next(iter(call.files.values()))
            return {"attachmentId": self.seed_attachment(job_id, content=content,
                                                         filename=filename)}
        if storage not in (1, 3):
            raise bad_request("Invalid value for 'storageType'.")
        target = call.params.get("filePath", "")
        if not target or call.files:
            raise bad_request("A linked attachment needs 'filePath' and no file part.")
        if storage == 3:
            return {"attachmentId": self.seed_attachment(job_id, storageType=3,
                                                         folder=target)}
        cut = max(target.rfind("/"), target.rfind("\\"))  # folder kept as written
        folder, name = (target[:cut], target[cut + 1:]) if cut >= 0 else ("", target)
        return {"attachmentId": self.seed_attachment(job_id, storageType=1, folder=folder,
                                                     filename=name)}

    def _r_delete_attachment(self, call: _Call) -> dict[str, Any]:
        job_id, attachment = self._existing_attachment(call)
        del self.job_attachments[job_id][attachment["id"]]
        self.attachment_bytes.pop(attachment["id"], None)
        return {"success": True}

    def _r_dependencies(self, call: _Call) -> dict[str, Any]:
        return {"dependencies": self.dependencies(self._existing_job(call))}

    def _r_create_dependency(self, call: _Call) -> dict[str, Any]:
        job_id = self._existing_job(call)
        values = {k: _integer(call.params[k], k) for k in
                  ("heldOnType", "heldOnValue", "depJobId", "depOnType", "depOnValue")}
        if values["heldOnType"] not in (1, 2, 3) or values["depOnType"] not in (1, 2, 3):
            raise bad_request("Dependency types are 1 (step), 2 (stage) or 3 (status).")
        if values["depJobId"] not in self.jobs or values["depJobId"] == job_id:
            raise bad_request(f"Job {values['depJobId']} cannot be depended on.")
        return {"dependencyId": self.seed_dependency(job_id, **values)}

    def _r_delete_dependency(self, call: _Call) -> dict[str, Any]:
        job_id = self._existing_job(call)
        dependency_id = int(call.captures["dependency"])
        if dependency_id not in self.job_dependencies.get(job_id, {}):
            raise not_found(f"Dependency {dependency_id} does not exist on job {job_id}.")
        del self.job_dependencies[job_id][dependency_id]
        return {"success": True}

    def _r_extended_properties(self, call: _Call) -> dict[str, Any]:
        job_id = self._existing_job(call)
        containers = []
        for key, table in self.extended_tables.items():
            records = self.job_extended.get(job_id, {}).get(key, {})
            containers.append({
                "tableName": table["tableName"], "tableAlias": table["tableAlias"],
                "relationshipType": table["relationshipType"],
                "records": [{"id": rid, "recordValues": [
                    {"name": name, "alias": name, "dataType": 4, "displayType": 1,
                     "data": values.get(name), "canUpdate": True, "required": False,
                     "userVisible": True, "displayOrder": order, "tableListClass": "",
                     "tableListDisplayField": "", "tableListStoreField": ""}
                    for order, name in enumerate(table["fields"])]}
                    for rid, values in records.items()]})
        return {"containers": containers}

    def _existing_table(self, call: _Call) -> tuple[int, dict[str, Any]]:
        job_id = self._existing_job(call)
        table = self.extended_tables.get(call.captures["table"].upper())
        if table is None:
            raise not_found(f"Extended property table '{call.captures['table']}' does not "
                            "exist.")
        return job_id, table

    def _existing_record(self, call: _Call) -> tuple[dict[str, Any], dict[str, Any], int]:
        job_id, table = self._existing_table(call)
        record_id = int(call.captures["record"])
        records = self.job_extended.get(job_id, {}).get(table["tableName"].upper(), {})
        if record_id not in records:
            raise not_found(f"Record {record_id} does not exist.")
        return table, records, record_id

    def _r_add_extended_record(self, call: _Call) -> dict[str, Any]:
        job_id, table = self._existing_table(call)
        existing = self.job_extended.get(job_id, {}).get(table["tableName"].upper(), {})
        if table["relationshipType"] == 1 and existing:
            raise bad_request(f"'{table['tableName']}' is one-to-one and has its record.")
        return {"recordId": self.seed_extended_record(job_id, table["tableName"])}

    def _r_update_extended_record(self, call: _Call) -> dict[str, Any]:
        table, records, record_id = self._existing_record(call)
        properties = _json_param(call.params["properties"], "properties")
        if not isinstance(properties, dict):
            raise bad_request("'properties' must be a JSON object.")
        by_upper = {name.upper(): name for name in table["fields"]}
        unknown = [k for k in properties if k.upper() not in by_upper]
        if unknown:
            raise bad_request(f"Field '{unknown[0]}' is not in '{table['tableName']}'.")
        for key, value in properties.items():
            if value is not None and not isinstance(value, (str, int, float)):
                raise bad_request(f"Invalid value for field '{key}'.")
            records[record_id][by_upper[key.upper()]] = value
        return {"success": True}

    def _r_delete_extended_record(self, call: _Call) -> dict[str, Any]:
        _, records, record_id = self._existing_record(call)
        del records[record_id]
        return {"success": True}


class _Reply(NamedTuple):
    """An HTTP-200 answer, rendered; ``headers`` are extra (name, value) pairs."""

    content: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def _render(body: Any, fmt: str, callback: Optional[str]) -> _Reply:
    """JSON as ``f`` asks: json, pjson (indented), html (Esri's default), or JSONP."""
    text = json.dumps(body, indent=2 if fmt == "pjson" else None, ensure_ascii=False,
                      allow_nan=False)
    if fmt == "html":
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        page = f"<html><head><title>WMServer</title></head><body><pre>{escaped}</pre>" \
               "</body></html>"
        return _Reply(page.encode("utf-8"), "text/html; charset=utf-8")
    if callback:
        return _Reply(f"{callback}({text});".encode(), "application/javascript; charset=utf-8")
    return _Reply(text.encode("utf-8"), "application/json; charset=utf-8")


def _file_reply(content: bytes, filename: str) -> _Reply:
    quoted = urllib.parse.quote(filename)
    return _Reply(content, "application/octet-stream",
                  (("Content-Disposition", f"attachment; filename*=UTF-8''{quoted}"),))


def _parse_multipart(content_type: str, body: bytes
                     ) -> tuple[list[tuple[str, str]], dict[str, tuple[str, bytes]]]:
    """Fields and file parts of a multipart/form-data body (RFC 7578), bytes kept exact."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise bad_request("The multipart body has no boundary.")
    delimiter = b"--" + boundary.encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise bad_request("The multipart body cannot be read.")
    fields: list[tuple[str, str]] = []
    files: dict[str, tuple[str, bytes]] = {}
    for section in sections[1:-1]:
        head, separator, payload = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator or not payload.endswith(b"\r\n"):
            raise bad_request("A multipart part cannot be read.")
        part = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise bad_request("A multipart part has no name.")
        content = payload[:-2]
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, content)
            continue
        try:
            fields.append((name, content.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise bad_request(f"Part '{name}' is not UTF-8.") from exc
    return fields, files


def _same_secret(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _run_query(jobs: Iterable[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    """An ad hoc ``jobs/query`` over JTX_JOBS, evaluated by SQLite in memory."""
    tables = [t.strip().upper() for t in params["tables"].split(",")]
    if any(t != "JTX_JOBS" for t in tables):
        raise bad_request("Only JTX_JOBS can be queried.")
    columns = {name: (key, kind, length) for name, key, kind, length in _JOB_COLUMNS}
    requested = [f.strip() for f in params["fields"].split(",")]
    names = []
    for name in requested:
        bare = name.upper().removeprefix("JTX_JOBS.")
        if bare not in columns:
            raise bad_request(f"Field '{name}' does not exist.")
        names.append(bare)
    aliases = [a.strip() for a in params["aliases"].split(",")] if params.get("aliases") \
        else requested
    if len(aliases) != len(requested):
        raise bad_request("'aliases' must name every field.")
    order = params.get("orderBy", "").strip()
    if order:
        field_name, _, direction = order.partition(" ")
        if field_name.upper().removeprefix("JTX_JOBS.") not in columns or \
                direction.strip().upper() not in ("", "ASC", "DESC") or "," in order:
            raise bad_request("'orderBy' takes one field, optionally ASC or DESC.")
    # Only the columns the query can name are filled (a 10,000-job table in a tenth of a second).
    mentioned = f"{params.get('where', '')} {order}".upper()
    used = {name: spec for name, spec in columns.items() if name in names or name in mentioned}
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE JTX_JOBS ({})".format(
            ", ".join(f"{name} {'INTEGER' if kind == 'integer' else 'TEXT'}"
                      for name, (_, kind, _) in used.items())))
        connection.executemany(
            f"INSERT INTO JTX_JOBS VALUES ({', '.join('?' * len(used))})",
            [[_query_date(job.get(key)) if kind == "date" else job.get(key)
              for key, kind, _ in used.values()] for job in jobs])
        connection.set_authorizer(_read_only)
        statement = f"SELECT {', '.join(names)} FROM JTX_JOBS"
        if params.get("where", "").strip():
            statement += f" WHERE {params['where']}"
        if order:
            statement += f" ORDER BY {order}"
        try:
            rows = connection.execute(statement).fetchall()
        except sqlite3.Error as exc:
            raise bad_request("Invalid query.", str(exc)) from exc
    finally:
        connection.close()
    kinds = [columns[name][1] for name in names]
    return {
        "fields": [{"name": requested[i], "alias": aliases[i], "type": FIELD_TYPE[kinds[i]],
                    "length": columns[names[i]][2]} for i in range(len(names))],
        "rows": [["" if value is None else _locale_date(value) if kinds[i] == "date"
                  else str(value) for i, value in enumerate(row)] for row in rows],
    }


def _read_only(action: int, *args: Any) -> int:
    allowed = (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION)
    return sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the double records requests itself."""

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        length_text = self.headers.get("Content-Length", "0") or "0"
        if not length_text.isdigit():
            self.close_connection = True
            raise bad_request("Invalid Content-Length.")
        length = int(length_text)
        if length > MAX_BODY:
            self.close_connection = True
            raise bad_request("The request body is too large.")
        return self.rfile.read(length) if length else b""

    def _chunks(self) -> Iterator[bytes]:
        total = 0
        while True:
            size_line = self.rfile.readline(100).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError as exc:
                self.close_connection = True
                raise bad_request("Invalid chunked body.") from exc
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                raise bad_request("The request body is too large.")
            if size == 0:
                while self.rfile.readline(1000).strip():
                    pass
                return
            yield self.rfile.read(size)
            self.rfile.readline(3)

    def _serve(self, method: str) -> None:
        self.server.double.handle(self, method)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def drop(self) -> None:
        """Close the connection without an answer (a crash or a lost reply)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send(self, reply: _Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.content)))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has no body, or keep-alive breaks
            self.wfile.write(reply.content)


def main(argv: Optional[list[str]] = None) -> int:
    """Serve a double in its own process (so a benchmark's client does not share its GIL).

    Prints the service URL on the first line of stdout, serves until stdin closes, then
    prints a JSON summary: requests, undocumented, unimplemented, internal_errors.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--service", default="Redlands")
    parser.add_argument("--jobs", type=int, default=0, help="populate() this many jobs")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--job-id-start", type=int, default=1)
    parser.add_argument("--config", choices=("minimum", "quick"), default="quick")
    options = parser.parse_args(argv)
    double = EsriDouble(options.service, latency=options.latency, config=options.config,
                        job_id_start=options.job_id_start,
                        token=os.environ.get("ESRI_DOUBLE_TOKEN") or None)
    double.populate(options.jobs)
    with double:
        print(double.url, flush=True)
        sys.stdin.read()
    print(json.dumps({"requests": len(double.requests),
                      "undocumented": [r.path for r in double.undocumented],
                      "unimplemented": [r.path for r in double.unimplemented],
                      "internal_errors": double.internal_errors}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
