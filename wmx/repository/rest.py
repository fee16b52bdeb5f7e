"""The WMServer REST client: a repository reached over HTTP(S).

:class:`RestRepository` implements the :class:`wmx.repository.base.Repository` protocol over
the ``replication/x-…`` extension (``docs/wmserver-extension.md``), so the engine runs unchanged
against a remote ``wmx serve``, and offers the Esri-level job operations of
:class:`wmx.repository.jobs.JobTracking` over Esri's documented endpoints. Every failure
becomes a :class:`wmx.repository.base.RepositoryError` subclass whose message names the service
and the cause. Every answer is read through :mod:`wmx.repository.transport` (deadline and byte
ceiling); content too big for its row travels in parts (``x-parts``, ``x-content``). The token
travels in a header only: this module must never put it in a URL, a message, a log record or
an exception.
"""

from __future__ import annotations

import base64
import getpass
import gzip
import ntpath
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Callable, NoReturn, Optional, TypeVar
from urllib.parse import urlsplit

import requests

from wmx.model import codec
from wmx.model.changes import ROW_FIELDS, Change, ConflictPolicy
from wmx.model.locations import is_loopback
from wmx.model.records import (
    NODE_LOCAL_PROPERTIES,
    PRIV_ADMINISTRATOR,
    PRIV_MANAGE_REPLICATION,
    STORAGE_EMBEDDED,
    STORAGE_LINKED_FILE,
    Activity,
    ActivityType,
    Attachment,
    ConfigProperty,
    Dependency,
    ExtendedPropertyRecord,
    Group,
    Hold,
    HoldType,
    Job,
    JobStatus,
    JobType,
    Priority,
    Record,
    User,
    to_millis,
)
from wmx.repository.base import (
    ApplyReport,
    ChangePage,
    ConflictRecord,
    InvalidRequest,
    NodeInfo,
    NodeRecord,
    NotAuthorized,
    RepositoryError,
    RepositoryFull,
    RepositoryNotFound,
    RepositoryTimeout,
    RepositoryUnavailable,
    SnapshotPage,
)
from wmx.repository.transport import (
    INSUFFICIENT_STORAGE,
    MAX_ANSWER_BYTES,
    MAX_DOWNLOAD_BYTES,
    RETRY_STATUSES,
    Answer,
    AnswerMalformed,
    AnswerTooLarge,
    TransportTimeout,
    default_timeout,
    exchange,
    new_session,
    retry_policy,
)
from wmx.repository.wire import (
    JOB_CREATE_PARAMS,
    JOB_PARAMS,
    PART_BYTES,
    ContentRef,
    WireError,
    changes_from_wire,
    changes_to_wire,
    conflict_from_wire,
    flag_from_wire,
    join_rows,
    node_info_from_wire,
    node_record_from_wire,
    position_from_wire,
    record_to_wire,
    report_from_wire,
    rows_from_wire,
    rows_to_wire,
)

R = TypeVar("R", bound=Record)
T = TypeVar("T")

DEFAULT_PAGE_SIZE = 5000
"""Rows per ``x-load/rows`` request (the engine's snapshot pages are split to this size)."""
MAX_BATCH_BYTES = 16 * 1024 * 1024
"""Approximate ceiling of one ``x-load/rows`` request body, well under a server's limit."""
TOKEN_HEADER = "X-Esri-Authorization"
GZIP_LEVEL = 1

_BODY = ROW_FIELDS.index("body")
_CONTENT = ROW_FIELDS.index("content")
_FIELD_PARAMS = {field: key for key, field in JOB_PARAMS.items()}
_ROOT_LISTS: dict[type[Record], str] = {JobStatus: "jobStatuses", Priority: "jobPriorities",
                                        ActivityType: "activityTypes", HoldType: "holdTypes"}


def _default_user() -> str:
    """The OS login, as ``wmx init`` made it an administrator of new repositories."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return ""


def _service_url(location: str) -> str:
    """The service root without a trailing slash; refuses URLs that could carry secrets."""
    text = str(location).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RepositoryNotFound(f"{text!r} is not an http(s) WMServer URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidRequest("A WMServer URL must not contain credentials, a query string or a "
                             "fragment; pass the token separately")
    return text


def _new_session(base: str, retries: int, backoff: float) -> requests.Session:
    """The retry policy per kind of request (the most specific prefix wins)."""
    return new_session({
        # Esri writes (create, close, ...) are not idempotent: GETs only are replayed.
        base: retry_policy(retries, backoff, replay=True, any_method=False),
        # The extension is idempotent (apply, snapshot, nodes, clear): replay anything...
        f"{base}/replication/": retry_policy(retries, backoff, replay=True, any_method=True),
        # ...except a snapshot load, whose rows append (a failed load is aborted and redone).
        f"{base}/replication/x-load/": retry_policy(retries, backoff, replay=False,
                                                    any_method=True),
    })


def _cause(exc: requests.RequestException) -> str:
    """The root cause of a transport failure, without urllib3's object addresses."""
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    text = str(reason)
    return text.split(">: ", 1)[-1] if text.startswith("<") else text


def _chunks(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    """Batches of at most ``size`` rows and about :data:`MAX_BATCH_BYTES` of payload."""
    batch: list[tuple] = []
    weight = 0
    for row in rows:
        batch.append(row)
        # body and content dominate a row; base64 inflates content by 4/3, the rest is small
        weight += len(row[_BODY] or "") + len(row[_CONTENT] or b"") * 4 // 3 + 256
        if len(batch) >= size or weight >= MAX_BATCH_BYTES:
            yield batch
            batch, weight = [], 0
    if batch:
        yield batch


def _part_bytes(data: dict[str, Any]) -> bytes:
    return base64.b64decode(data["data"], validate=True)


def _wire_value(value: Any) -> Any:
    return to_millis(value) if isinstance(value, datetime) else value


class RestRepository:
    """A repository served by WMServer (``wmx serve``, or Esri's for the documented surface).

    Opening probes the service root (``probe=True``), so a wrong URL, an unreachable host or
    a refused token fails here, at open, with :class:`RepositoryNotFound`,
    :class:`RepositoryUnavailable` or :class:`NotAuthorized`; ``open_repository`` skips that
    probe, since its first contact (``wmx.remote``) already asked for the identity
    (``node_answer``). ``user`` (default: the OS login)
    is the Workflow Manager user writes are made as. Records returned by the Esri-level
    operations carry Esri's fields only (no GUIDs: Esri's JSON has none). ``timeout`` bounds
    each request's whole duration (default: ``WMX_TIMEOUT``, else 30 s); answers are
    read within :data:`MAX_ANSWER_BYTES`. Bodies are gzipped both ways (``compress``), except,
    by default, with a server on this machine: over loopback the bytes cost nothing to move,
    and compressing and inflating them took a fifth of a replicate's CPU.
    """

    def __init__(self, location: str, token: Optional[str] = None, *,
                 user: Optional[str] = None, timeout: Optional[float] = None, retries: int = 3,
                 session: Optional[requests.Session] = None, verify: bool | str = True,
                 page_size: int = DEFAULT_PAGE_SIZE, backoff: float = 0.2,
                 probe: bool = True, node_answer: Optional[dict[str, Any]] = None,
                 compress: Optional[bool] = None) -> None:
        self.location = _service_url(location)
        self.compress = not is_loopback(urlsplit(self.location).hostname or "") \
            if compress is None else compress
        self.user = _default_user() if user is None else user
        try:
            self.timeout = default_timeout() if timeout is None else float(timeout)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        self.page_size = max(1, int(page_size))
        self._token = token.strip() if token and token.strip() else None
        self._verify = verify
        self._owns_session = session is None
        self.session = session if session is not None else _new_session(
            self.location, retries, backoff)
        self._first_node = node_answer
        """The identity the first contact already answered: the first :meth:`info` uses it
        instead of asking again (a sync with nothing to do costs two requests per child)."""
        if probe:
            try:
                self.service_info()
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"<RestRepository {self.location!r}>"

    def __enter__(self) -> RestRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    # --- transport -------------------------------------------------------------------------

    def _safe(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _call(self, method: str, path: str = "", *, params: Optional[dict[str, Any]] = None,
              form: Optional[dict[str, Any]] = None, body: Any = None,
              files: Optional[dict[str, Any]] = None, raw: bool = False,
              not_found: type[RepositoryError] = InvalidRequest) -> Any:
        """One request; returns the JSON object (or the bytes, for ``raw``) or raises."""
        url = f"{self.location}/{path}" if path else self.location
        query = {"f": "file" if raw else "json", **(params or {})}
        headers = {TOKEN_HEADER: f"Bearer {self._token}"} if self._token else {}
        if not self.compress:
            headers["Accept-Encoding"] = "identity"
        data: Any = form
        if body is not None:
            data = codec.dumps_bytes(body)
            headers["Content-Type"] = "application/json"
            if self.compress:
                data = gzip.compress(data, compresslevel=GZIP_LEVEL)
                headers["Content-Encoding"] = "gzip"
        ceiling = MAX_DOWNLOAD_BYTES if raw else MAX_ANSWER_BYTES
        what = f"{method} {path or 'service root'}"
        try:
            answer = exchange(self.session, method, url, timeout=self.timeout,
                              max_bytes=ceiling, params=query, data=data, files=files,
                              headers=headers, verify=self._verify, allow_redirects=False)
        except TransportTimeout:
            raise RepositoryTimeout(f"{self.location} did not answer within "
                                    f"{self.timeout:g} s ({what}); timed out") from None
        except AnswerTooLarge:
            raise RepositoryError(f"{self.location} sent an answer larger than "
                                  f"{ceiling // (1024 * 1024)} MB ({what}); refused") from None
        except AnswerMalformed as exc:
            raise RepositoryError(f"{self.location} sent a malformed answer: {exc}") from None
        except requests.RequestException as exc:
            raise RepositoryUnavailable(
                self._safe(f"Cannot reach {self.location}: {_cause(exc)}")) from None
        return self._answer(answer, raw, not_found)

    def _answer(self, response: Answer, raw: bool, not_found: type[RepositoryError]) -> Any:
        status = response.status
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", ""))
            raise RepositoryError(f"{self.location} redirects to "
                                  f"{target.scheme}://{target.netloc}{target.path}; "
                                  "use that address")
        if raw and status == 200 and "Content-Disposition" in response.headers:
            return bytes(response.content)  # a download, even when the file itself is JSON
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        try:
            payload = codec.loads(response.content) if response.content and (
                is_json or not raw) else None
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            self._raise_envelope(payload["error"], not_found)
        if status != 200:
            self._raise_status(status, response.reason, not_found)
        if raw:
            return bytes(response.content)
        if not isinstance(payload, dict):
            raise RepositoryError(f"{self.location} did not answer with JSON "
                                  "(is it a WMServer service?)")
        return payload

    def _raise_envelope(self, error: dict[str, Any], not_found: type[RepositoryError]
                        ) -> NoReturn:
        code = error.get("code")
        message = str(error.get("message") or "error")
        details = [str(d) for d in error.get("details") or [] if str(d) != message]
        text = self._safe(f"{self.location}: {message}" +
                          (f" ({'; '.join(details)})" if details else ""))
        if code in (401, 403, 498, 499):
            raise NotAuthorized(text)
        if code == 404:
            raise not_found(text)
        if code == INSUFFICIENT_STORAGE:
            raise RepositoryFull(text)
        if code in RETRY_STATUSES:
            raise RepositoryUnavailable(text)
        if isinstance(code, int) and 400 <= code < 500:
            raise InvalidRequest(text)
        raise RepositoryError(text)

    def _raise_status(self, status: int, reason: str, not_found: type[RepositoryError]
                      ) -> NoReturn:
        text = f"{self.location} answered HTTP {status} {reason}".rstrip()
        if status in (401, 403):
            raise NotAuthorized(text)
        if status == 404:
            raise not_found(text)
        if status == INSUFFICIENT_STORAGE:
            raise RepositoryFull(text)
        if status in RETRY_STATUSES:
            raise RepositoryUnavailable(text)
        if 400 <= status < 500:
            raise InvalidRequest(text)
        raise RepositoryError(text)

    def _decode(self, decode: Callable[..., T], *args: Any) -> T:
        """Turn a malformed answer into a RepositoryError that names the service."""
        try:
            return decode(*args)
        except (WireError, KeyError, TypeError, ValueError) as exc:
            raise RepositoryError(f"{self.location} sent a malformed answer: {exc}") from None

    def _user_name(self, user: Optional[str]) -> str:
        """Esri's wire form of a user name (``DOMAIN|name``), or "" when there is none."""
        return (user or self.user or "").strip().replace("\\", "|")

    def _user(self, user: Optional[str]) -> str:
        name = self._user_name(user)
        if not name:
            raise InvalidRequest("No Workflow Manager user name: pass user=")
        return name

    def _replication(self, method: str, path: str, *, params: Optional[dict] = None,
                     body: Any = None) -> dict[str, Any]:
        name = self._user_name(None)
        # contentParts: big content travels by reference and in parts (x-parts, x-content)
        query = {**({"user": name} if name else {}), "contentParts": "true", **(params or {})}
        if method == "POST" and body is None:
            body = {}
        return self._call(method, f"replication/{path}", params=query, body=body,
                          not_found=RepositoryNotFound)

    def _send_parts(self, guid: str, content: bytes) -> dict[str, Any]:
        """Upload content too big for its row in parts; answers the reference the row
        carries instead (see docs/wmserver-extension.md, "Big content")."""
        ref = ContentRef.of(uuid.uuid4().hex, content)
        view = memoryview(content)
        for offset in range(0, len(content), PART_BYTES):
            part = base64.b64encode(view[offset:offset + PART_BYTES]).decode("ascii")
            self._replication("POST", "x-parts",
                              body={"id": ref.id, "offset": offset, "data": part})
        return ref.to_wire()

    def _fetch_parts(self, ref: ContentRef) -> bytes:
        """The content an answer named by reference, read part by part and checked."""
        joined = bytearray()
        while len(joined) < ref.size:
            data = self._replication("GET", "x-content", params={
                "id": ref.id, "sha256": ref.sha256, "offset": len(joined),
                "length": PART_BYTES})
            part = self._decode(_part_bytes, data)
            if not part or len(joined) + len(part) > ref.size:
                raise RepositoryError(f"{self.location} sent content {ref.id} in parts that "
                                      "do not add up to its size")
            joined += part
        return self._decode(ref.check, bytes(joined), self.location)

    def _joined(self, rows: Any, what: str) -> Any:
        return join_rows(rows, self._fetch_parts, what)

    # --- Repository protocol ------------------------------------------------------------------

    def service_info(self) -> dict[str, Any]:
        """Esri's service root (configuration lists, ``currentVersion``)."""
        return self._call("GET", not_found=RepositoryNotFound)

    def info(self) -> NodeInfo:
        answer, self._first_node = self._first_node, None
        if answer is None:
            answer = self._replication("GET", "x-node")
        return self._decode(node_info_from_wire, answer)

    def changes(self, since_seq: int, *, limit: int, origin: Optional[str] = None,
                exclude_origin: Optional[str] = None,
                since_time: Optional[datetime] = None) -> ChangePage:
        if limit < 1:
            raise InvalidRequest("limit must be at least 1")
        params = {"since": since_seq, "limit": limit, "origin": origin,
                  "excludeOrigin": exclude_origin, "sinceTime": to_millis(since_time)}
        data = self._replication("GET", "x-changes", params=params)
        return self._decode(lambda: ChangePage(
            changes_from_wire(self._joined(data["changes"], "changes")),
            position_from_wire(data["lastSeq"], "lastSeq"),
            flag_from_wire(data["more"], "more")))

    def apply(self, changes: Sequence[Change], *, parent_node: str,
              source_node: Optional[str] = None, detect_since: Optional[int] = None,
              policy: ConflictPolicy = ConflictPolicy.NEWEST, dry_run: bool = False,
              overlay: Sequence[Change] = (),
              refuse_if_changed_since: Optional[int] = None) -> ApplyReport:
        body = {"changes": changes_to_wire(changes, self._send_parts), "parentNode": parent_node,
                "sourceNode": source_node, "detectSince": detect_since,
                "policy": ConflictPolicy(policy).value, "dryRun": dry_run,
                "overlay": changes_to_wire(overlay, self._send_parts),
                "refuseIfChangedSince": refuse_if_changed_since}
        data = self._replication("POST", "x-apply", body=body)
        for key in ("written", "renumbered"):
            self._decode(self._joined, data.get(key), key)
        return self._decode(report_from_wire, data)

    def reads_over_network(self) -> bool:
        return True

    def snapshot(self, cursor: int, limit: int) -> SnapshotPage:
        data = self._replication("GET", "x-snapshot", params={"cursor": cursor, "limit": limit})
        return self._decode(lambda: SnapshotPage(
            rows_from_wire(self._joined(data["rows"], "rows")),
            position_from_wire(data["cursor"], "cursor"),
            flag_from_wire(data["more"], "more")))

    def begin_load(self) -> str:
        return self._decode(lambda data: str(data["loadId"]),
                            self._replication("POST", "x-load/begin"))

    def load_rows(self, load_id: str, rows: Iterable[tuple]) -> None:
        for batch in _chunks(rows, self.page_size):
            self._replication("POST", "x-load/rows",
                              body={"loadId": load_id,
                                    "rows": rows_to_wire(batch, self._send_parts)})

    def commit_load(self, load_id: str, *, parent_node_id: str, id_block_start: int,
                    new_node_id: Optional[str] = None) -> NodeInfo:
        body = {"loadId": load_id, "parentNodeId": parent_node_id,
                "idBlockStart": id_block_start, "newNodeId": new_node_id}
        return self._decode(node_info_from_wire,
                            self._replication("POST", "x-load/commit", body=body))

    def abort_load(self, load_id: str) -> None:
        self._replication("POST", "x-load/abort", body={"loadId": load_id})

    def nodes(self) -> list[NodeRecord]:
        data = self._replication("GET", "x-nodes")
        return self._decode(lambda: [node_record_from_wire(n) for n in data["nodes"]])

    def save_node(self, node: NodeRecord) -> None:
        self._replication("POST", "x-nodes", body={"node": record_to_wire(node)})

    def clear_replication_info(self) -> None:
        self._replication("POST", "x-clear")

    def renew_incarnation(self) -> str:
        return self._decode(lambda data: str(data["incarnation"]),
                            self._replication("POST", "x-incarnation"))

    def conflicts(self) -> list[ConflictRecord]:
        data = self._replication("GET", "x-conflicts")
        return self._decode(lambda: [conflict_from_wire(c) for c in data["conflicts"]])

    # --- Esri-level operations (same names and signatures as JobTracking) --------------------

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._call("GET", path, params=params)

    def _post(self, path: str, user: Optional[str], **form: Any) -> dict[str, Any]:
        return self._call("POST", path, form={"user": self._user(user), **form})

    def _records(self, record_type: type[R], items: Any) -> list[R]:
        return self._decode(lambda: [record_type.from_esri(item) for item in items])

    def _find(self, records: list[R], record_id: int, what: str) -> R:
        for record in records:
            if record.int_id == int(record_id):
                return record
        raise InvalidRequest(f"{what} {record_id} does not exist")

    def _job_params(self, fields: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
        params = {}
        for field, value in fields.items():
            key = _FIELD_PARAMS.get(field)
            if key is None or key not in allowed:
                raise InvalidRequest(f"The job field {field!r} cannot be set through WMServer")
            params[key] = _wire_value(value)
        return params

    def jobs(self) -> list[int]:
        return self._decode(lambda data: [int(i) for i in data["jobIds"]], self._get("jobs"))

    def get_job(self, job_id: int) -> Job:
        return self._decode(Job.from_esri, self._get(f"jobs/{int(job_id)}"))

    def create_job(self, job_type_id: int, *, user: Optional[str] = None,
                   id: Optional[int] = None, **fields: Any) -> Job:
        params = self._job_params(fields, JOB_CREATE_PARAMS)
        form = {key: codec.dumps(value) if isinstance(value, dict) else value
                for key, value in params.items() if value is not None}
        if id is not None:
            form["id"] = int(id)
        data = self._post("jobs/create", user, jobTypeId=int(job_type_id), **form)
        return self.get_job(self._decode(lambda: int(data["jobIds"][0])))

    def update_job(self, job_id: int, *, user: Optional[str] = None, **fields: Any) -> Job:
        properties = self._job_params(fields, frozenset(JOB_PARAMS))
        self._post(f"jobs/{int(job_id)}/update", user, properties=codec.dumps(properties))
        return self.get_job(job_id)

    def assign_job(self, job_id: int, *, user: Optional[str] = None, assigned_type: int,
                   assigned_to: Optional[str]) -> Job:
        self._post(f"jobs/{int(job_id)}/assign", user, assignedType=int(assigned_type),
                   assignedTo=(assigned_to or "").replace("\\", "|"))
        return self.get_job(job_id)

    def close_job(self, job_id: int, *, user: Optional[str] = None) -> Job:
        self._post(f"jobs/{int(job_id)}/close", user)
        return self.get_job(job_id)

    def reopen_job(self, job_id: int, *, user: Optional[str] = None) -> Job:
        self._post("jobs/reopen", user, jobs=int(job_id))
        return self.get_job(job_id)

    def delete_job(self, job_id: int, *, user: Optional[str] = None) -> None:
        self._post(f"jobs/{int(job_id)}/delete", user)

    def holds(self, job_id: int) -> list[Hold]:
        return self._records(Hold, self._get(f"jobs/{int(job_id)}/holds").get("holds"))

    def get_hold(self, job_id: int, hold_id: int) -> Hold:
        return self._decode(Hold.from_esri, self._get(f"jobs/{int(job_id)}/holds/{int(hold_id)}"))

    def create_hold(self, job_id: int, hold_type_id: int, *, user: Optional[str] = None,
                    comments: str = "") -> Hold:
        data = self._post(f"jobs/{int(job_id)}/holds/create", user, type=int(hold_type_id),
                          comments=comments)
        return self.get_hold(job_id, self._decode(lambda: int(data["holdId"])))

    def release_hold(self, job_id: int, hold_id: int, *, user: Optional[str] = None,
                     comments: str = "") -> Hold:
        self._post(f"jobs/{int(job_id)}/holds/{int(hold_id)}/release", user, comments=comments)
        return self.get_hold(job_id, hold_id)

    def get_notes(self, job_id: int) -> str:
        return self._decode(lambda data: str(data["notes"]),
                            self._get(f"jobs/{int(job_id)}/notes"))

    def set_notes(self, job_id: int, notes: str, *, user: Optional[str] = None) -> None:
        self._post(f"jobs/{int(job_id)}/notes/update", user, notes=notes)

    def activity(self, job_id: int) -> list[Activity]:
        return self._records(Activity, self._get(f"jobs/{int(job_id)}/activity").get("activity"))

    def log_action(self, job_id: int, activity_type_id: int, *, user: Optional[str] = None,
                   comments: str = "") -> Activity:
        """Log an entry; Esri answers no id, so the newest entry of that type is returned."""
        self._post(f"jobs/{int(job_id)}/activity/logAction", user, type=int(activity_type_id),
                   comments=comments)
        logged = [entry for entry in self.activity(job_id) if entry.type == activity_type_id]
        if not logged:
            raise RepositoryError(f"{self.location} did not record the activity")
        return logged[-1]

    def attachments(self, job_id: int) -> list[Attachment]:
        return self._records(Attachment,
                             self._get(f"jobs/{int(job_id)}/attachments").get("attachments"))

    def add_attachment(self, job_id: int, filename: str, content: bytes = b"", *,
                       user: Optional[str] = None, storage_type: int = STORAGE_EMBEDDED,
                       folder: Optional[str] = None) -> Attachment:
        path = f"jobs/{int(job_id)}/attachments/add"
        form = {"user": self._user(user), "storageType": int(storage_type)}
        if storage_type == STORAGE_EMBEDDED:
            data = self._call("POST", path, form=form, files={"file": (filename, content)})
        else:
            location = (ntpath.join(folder, filename) if storage_type == STORAGE_LINKED_FILE
                        and folder else folder or filename)
            data = self._call("POST", path, form={**form, "filePath": location})
        attachment_id = self._decode(lambda: int(data["attachmentId"]))
        return self._decode(Attachment.from_esri,
                            self._get(f"jobs/{int(job_id)}/attachments/{attachment_id}"))

    def attachment_content(self, job_id: int, attachment_id: int) -> bytes:
        return self._call("GET", f"jobs/{int(job_id)}/attachments/{int(attachment_id)}/content",
                          raw=True)

    def delete_attachment(self, job_id: int, attachment_id: int, *,
                          user: Optional[str] = None) -> None:
        self._post(f"jobs/{int(job_id)}/attachments/{int(attachment_id)}/delete", user)

    def dependencies(self, job_id: int) -> list[Dependency]:
        return self._records(
            Dependency, self._get(f"jobs/{int(job_id)}/dependencies").get("dependencies"))

    def add_dependency(self, job_id: int, dep_job_id: int, *, user: Optional[str] = None,
                       held_on_type: int = 3, held_on_value: int = 0, dep_on_type: int = 3,
                       dep_on_value: int = 0) -> Dependency:
        data = self._post(f"jobs/{int(job_id)}/dependencies/create", user,
                          depJobId=int(dep_job_id), heldOnType=held_on_type,
                          heldOnValue=held_on_value, depOnType=dep_on_type,
                          depOnValue=dep_on_value)
        dependency_id = self._decode(lambda: int(data["dependencyId"]))
        return self._find(self.dependencies(job_id), dependency_id, "Dependency")

    def delete_dependency(self, job_id: int, dependency_id: int, *,
                          user: Optional[str] = None) -> None:
        self._post(f"jobs/{int(job_id)}/dependencies/{int(dependency_id)}/delete", user)

    def extended_properties(self, job_id: int) -> list[ExtendedPropertyRecord]:
        data = self._get(f"jobs/{int(job_id)}/extendedProperties")
        return self._decode(lambda: [
            ExtendedPropertyRecord(id=int(record["id"]), job_id=int(job_id),
                                   table_name=container["tableName"],
                                   values={v["name"]: v["data"] for v in record["recordValues"]})
            for container in data["containers"] for record in container["records"]])

    def add_extended_property(self, job_id: int, table_name: str, values: dict, *,
                              user: Optional[str] = None) -> ExtendedPropertyRecord:
        data = self._post(f"jobs/{int(job_id)}/extendedProperties/{table_name}/add", user,
                          properties=codec.dumps(values))
        record_id = self._decode(lambda: int(data["recordId"]))
        return self._find(self.extended_properties(job_id), record_id, "Record")

    def update_extended_property(self, job_id: int, record_id: int, values: dict, *,
                                 user: Optional[str] = None) -> ExtendedPropertyRecord:
        record = self._find(self.extended_properties(job_id), record_id, "Record")
        self._post(f"jobs/{int(job_id)}/extendedProperties/{record.table_name}/"
                   f"{int(record_id)}/update", user, properties=codec.dumps(values))
        return self._find(self.extended_properties(job_id), record_id, "Record")

    def delete_extended_property(self, job_id: int, record_id: int, *,
                                 user: Optional[str] = None) -> None:
        record = self._find(self.extended_properties(job_id), record_id, "Record")
        self._post(f"jobs/{int(job_id)}/extendedProperties/{record.table_name}/"
                   f"{int(record_id)}/delete", user)

    # --- configuration, users and groups -----------------------------------------------------

    def config_properties(self) -> dict[str, str]:
        return self._decode(lambda data: dict(data["configProperties"]), self.service_info())

    def set_config_property(self, key: str, value: str, *, user: Optional[str] = None) -> None:
        data = self._post("updateConfigProperties", user,
                          properties=codec.dumps({key.upper(): str(value)}))
        if data.get("returnCode") != 1:
            raise InvalidRequest(f"{self.location} did not update {key.upper()}")

    def list_config(self, record_type: type[R]) -> list[R]:
        """Configuration elements as the root and ``community`` resources list them."""
        if record_type is User:
            return self.users()  # type: ignore[return-value]
        if record_type is Group:
            return self.groups()  # type: ignore[return-value]
        if record_type is ConfigProperty:
            return [ConfigProperty(key=key, value=value)  # type: ignore[misc]
                    for key, value in self.config_properties().items()
                    if key not in NODE_LOCAL_PROPERTIES]
        root = self.service_info()
        if record_type is JobType:  # the root lists summaries; the detail has the defaults
            ids = self._decode(lambda: [int(t["id"]) for t in root["jobTypes"]])
            return [self._decode(JobType.from_esri, self._get(f"jobTypes/{i}"))  # type: ignore[misc]
                    for i in ids]
        if record_type not in _ROOT_LISTS:
            raise InvalidRequest(f"{record_type.__name__} is not a configuration element")
        return self._records(record_type, root.get(_ROOT_LISTS[record_type]))

    def get_config(self, record_type: type[R], key: int | str) -> R:
        for record in self.list_config(record_type):
            if (record.int_id == key if isinstance(key, int) else record.unique_name == key):
                return record
        raise InvalidRequest(f"{record_type.__name__} {key!r} does not exist")

    def users(self) -> list[User]:
        return self._records(User, self._get("community/users").get("users"))

    def groups(self) -> list[Group]:
        return self._records(Group, self._get("community/groups").get("groups"))

    def user_privileges(self, user_name: str) -> set[str]:
        try:
            data = self._get(f"community/users/{self._user_name(user_name)}")
        except InvalidRequest:
            return set()
        return self._decode(lambda: {str(p["name"]) for p in data.get("privileges", [])})

    def may_replicate(self, user_name: Optional[str]) -> bool:
        if not user_name:
            return False
        return bool({PRIV_ADMINISTRATOR, PRIV_MANAGE_REPLICATION} &
                    self.user_privileges(user_name))


__all__ = ["DEFAULT_PAGE_SIZE", "TOKEN_HEADER", "RestRepository"]
