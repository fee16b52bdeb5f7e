"""The Flask application: one WSGI app serving one repository as a WMServer service.

It turns HTTP into :class:`wmx.server.routing.Call` objects and handler results (or errors)
back into Esri's responses: ``f=json|pjson``, JSONP ``callback`` (public reads only), the
HTTP-200 error envelope, gzip both ways. The request-size limit, the token check and the
cross-site policy (:mod:`wmx.server.crosssite`) run before any handler. This module must never
log a query string or a token, never build a URL from the request's Host header, and never
answer a traceback to a client.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import quote

import attrs

try:
    import flask
    from werkzeug.exceptions import HTTPException
except ImportError as exc:  # pragma: no cover - exercised on installs without the extra
    from wmx.server import missing_extra

    raise missing_extra(exc) from None

from wmx.model import codec
from wmx.repository import open_store
from wmx.repository.base import (
    InvalidRequest,
    NotAuthorized,
    RepositoryError,
    RepositoryFull,
    RepositoryNotFound,
    RepositoryUnavailable,
)
from wmx.repository.jobs import ServedRepository
from wmx.server import esri, replication
from wmx.server.auth import check_token, presented_token
from wmx.server.crosssite import Exchange, SitePolicy
from wmx.server.routing import (
    BAD_REQUEST,
    FORBIDDEN,
    INTERNAL,
    NOT_FOUND,
    TOO_LARGE,
    Call,
    Params,
    RawResponse,
    Router,
    ServiceError,
)

log = logging.getLogger("wmx.server")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body accepted (after gzip inflation), sized for replication batches."""
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 1
"""Fast compression: on a LAN the CPU, not the wire, is the bottleneck of a replicate."""
FORMATS = frozenset({"json", "pjson", "html", "file", ""})
CALLBACK = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")
RAW_BYTE = re.compile(rb"[\x80-\xff]")
BODY_ERROR = "wmx.body_error"
EXTENSION_KEY = "wmx"
JSONP_ALLOWED = "wmx_jsonp"
"""Set on ``flask.g`` once the request is known to be a public read: only then is JSONP used."""

ROUTES = Router()
ROUTES.include(esri.routes)
ROUTES.include(replication.routes)

INSUFFICIENT_STORAGE = 507
"""HTTP's code for a server that cannot store what it was sent (RFC 4918)."""
_ERROR_CODES: tuple[tuple[type[RepositoryError], int], ...] = (
    (InvalidRequest, BAD_REQUEST), (NotAuthorized, FORBIDDEN), (RepositoryNotFound, NOT_FOUND),
    (RepositoryFull, INSUFFICIENT_STORAGE), (RepositoryUnavailable, 503),
    (RepositoryError, INTERNAL),
)
_QUIET_CODES: dict[int, tuple[str, list[str]]] = {
    INSUFFICIENT_STORAGE: ("Insufficient storage", [
        "The server's disk is full; nothing was written (free space on the server and run "
        "again)"]),
    503: ("Repository unavailable", ["The repository is busy or unavailable; retry later"]),
    INTERNAL: ("Internal server error", ["The server could not complete the request; see its "
                                         "log"]),
}
"""Repository failures answered without the store's message, which names server paths."""


@attrs.define
class Service:
    """What one app serves: the repository, its public name, its limits, who may call it,
    and the address URLs it builds start with (``base_url``: set by the runner once bound;
    else the WSGI server's own ``SERVER_NAME``/``SERVER_PORT``, never the client's Host)."""

    repository: ServedRepository
    name: str
    token: Optional[str] = attrs.field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    owns_repository: bool = True
    site: SitePolicy = attrs.field(factory=SitePolicy.for_server)
    base_url: Optional[str] = None

    @property
    def prefix(self) -> list[str]:
        """Lower-cased path segments of ``/arcgis/rest/services/<name>/WMServer``."""
        return ["arcgis", "rest", "services", *self.name.lower().split("/"), "wmserver"]

    def url(self, host_url: str) -> str:
        return f"{host_url.rstrip('/')}/arcgis/rest/services/{quote(self.name)}/WMServer"


def inflate(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body without ever holding more than ``limit`` + 1 bytes of it."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = decompressor.decompress(data, limit + 1)
    except zlib.error:
        raise ServiceError(BAD_REQUEST, "Malformed gzip request body") from None
    if len(body) > limit or decompressor.unconsumed_tail:
        raise _too_large(limit)
    if not decompressor.eof:
        raise ServiceError(BAD_REQUEST, "Truncated gzip request body")
    return body


def _too_large(limit: int) -> ServiceError:
    return ServiceError(TOO_LARGE, "Request body too large",
                        [f"This server accepts request bodies of at most {limit} bytes"])


def _escape_query(environ: dict[str, Any]) -> None:
    """Percent-encode the raw non-ASCII bytes of the query string. Werkzeug decodes a raw
    query as strict UTF-8, so invalid bytes would fail every read of the parameters (even the
    error answer's ``f``); escaped, they decode leniently like any escaped invalid UTF-8."""
    query = environ.get("QUERY_STRING") or ""
    if query.isascii():
        return
    try:
        raw = query.encode("latin-1")  # PEP 3333: the request's bytes as latin-1 text
    except UnicodeEncodeError:
        raw = query.encode("utf-8", "surrogatepass")
    environ["QUERY_STRING"] = RAW_BYTE.sub(lambda byte: b"%%%02X" % byte[0][0], raw).decode()


class BodyGuard:
    """WSGI middleware run before Flask: refuses an oversized body from its Content-Length
    (unread), and inflates ``Content-Encoding: gzip`` bodies within the same limit. A refusal
    is handed to the app in the environ so it is answered like every other error. It also
    escapes raw bytes in the query string (:func:`_escape_query`)."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        _escape_query(environ)
        try:
            self._prepare(environ)
        except ServiceError as exc:
            environ[BODY_ERROR] = exc
            environ["wsgi.input"] = io.BytesIO()
            environ["CONTENT_LENGTH"] = "0"
            environ.pop("HTTP_CONTENT_ENCODING", None)
        return self.app(environ, start_response)

    def _prepare(self, environ: dict[str, Any]) -> None:
        declared = (environ.get("CONTENT_LENGTH") or "").strip()
        if declared and not declared.isdigit():
            raise ServiceError(BAD_REQUEST, "Invalid Content-Length")
        length = int(declared) if declared else 0
        if length > self.max_bytes:
            raise _too_large(self.max_bytes)
        encoding = (environ.get("HTTP_CONTENT_ENCODING") or "").strip().lower()
        if encoding in ("", "identity"):
            return
        if encoding != "gzip":
            raise ServiceError(BAD_REQUEST, "Unsupported Content-Encoding",
                               ["Send the body uncompressed or gzip-compressed"])
        body = inflate(environ["wsgi.input"].read(length), self.max_bytes)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        del environ["HTTP_CONTENT_ENCODING"]


def create_app(repository: Union[str, Path, ServedRepository], *,
               service_name: Optional[str] = None, token: Optional[str] = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               hosts: Sequence[str] = ()) -> flask.Flask:
    """A WSGI app serving ``repository`` (a path, or an open store the caller keeps and closes)
    at ``/arcgis/rest/services/<service_name>/WMServer``; the name defaults to the
    repository's own. With ``token`` set every request must present it; without one the app
    answers only to IP addresses, ``localhost``, the machine's name and the ``hosts`` aliases
    (DNS names a browser may use for it)."""
    if isinstance(repository, (str, Path)):
        store, owns = open_store(repository), True
    else:
        store, owns = repository, False
    name = (service_name or store.info().name).strip().strip("/")
    if not name:
        raise ValueError("A service needs a name")
    app = flask.Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.extensions[EXTENSION_KEY] = Service(
        store, name, token or None, max_body_bytes, owns,
        SitePolicy.for_server(hosts, token=bool(token)))
    app.wsgi_app = BodyGuard(app.wsgi_app, max_body_bytes)  # type: ignore[method-assign]
    app.add_url_rule("/", "wmx", _dispatch, defaults={"path": ""}, methods=["GET", "POST"])
    app.add_url_rule("/<path:path>", "wmx", _dispatch, methods=["GET", "POST"])
    app.register_error_handler(HTTPException, _http_error)
    return app


def service_of(app: flask.Flask) -> Service:
    return app.extensions[EXTENSION_KEY]


def close_app(app: flask.Flask) -> None:
    """Release the repository if the app opened it."""
    service = service_of(app)
    if service.owns_repository:
        service.repository.close()


# --- dispatch ------------------------------------------------------------------------------------

def _dispatch(path: str) -> flask.Response:
    request = flask.request
    started = time.perf_counter()
    code = 200
    try:
        response = _answer(service_of(flask.current_app), path)
    except ServiceError as exc:
        code, response = exc.code, _render(exc.envelope())
    log.info("%s %s -> %s (%.1f ms)", request.method, request.path, code,
             (time.perf_counter() - started) * 1000)
    return response


def _answer(service: Service, path: str) -> flask.Response:
    """Check, route and run one request; every failure leaves as a :class:`ServiceError`."""
    request = flask.request
    try:
        body_error = request.environ.get(BODY_ERROR)
        if body_error is not None:
            raise body_error
        if _param("f").lower() not in FORMATS:
            raise ServiceError(BAD_REQUEST, "Unsupported format",
                               ["f must be json, pjson or (for content) file"])
        params = Params(request.values.to_dict())
        check_token(service.token, presented_token(request.headers, params.text("token")))
        segments = _service_path(service, path)
        route, arguments = ROUTES.resolve("/".join(segments), request.method)
        service.site.admit(Exchange(request.method, request.host, request.headers, segments,
                                    route.public, request.mimetype, bool(_param("callback"))))
        setattr(flask.g, JSONP_ALLOWED, route.public)
        call = Call(service.repository, params, request.method, service.url(_base_url(service)),
                    read_body=lambda: request.get_data(cache=False), read_upload=_upload)
        result = route.handler(call, **arguments)
    except ServiceError:
        raise
    except RepositoryError as exc:
        code = next(code for kind, code in _ERROR_CODES if isinstance(exc, kind))
        if code in _QUIET_CODES:  # the store's own words name its files: logged, not answered
            log.warning("%s serving %s %s: %s", type(exc).__name__, request.method,
                        request.path, exc)
            raise ServiceError(code, *_QUIET_CODES[code]) from None
        raise ServiceError(code, str(exc)) from None
    except HTTPException as exc:
        raise ServiceError(exc.code or INTERNAL, exc.name) from None
    except Exception:
        log.exception("Internal error serving %s %s", request.method, request.path)
        raise ServiceError(INTERNAL, "Internal server error",
                           ["The server could not complete the request; see its log"]) from None
    if isinstance(result, RawResponse):
        return flask.send_file(io.BytesIO(result.content), mimetype=result.mimetype,
                               as_attachment=True, download_name=result.filename)
    return _render(result)


def _service_path(service: Service, path: str) -> list[str]:
    """The segments after ``…/<service>/WMServer`` (service names match case-insensitively)."""
    parts = [part for part in path.split("/") if part]
    prefix = service.prefix
    if [part.lower() for part in parts[:len(prefix)]] != prefix:
        raise ServiceError(NOT_FOUND, "Service not found",
                           [f"This server serves /arcgis/rest/services/{service.name}/WMServer"])
    return parts[len(prefix):]


def _base_url(service: Service) -> str:
    """Where this server is, as its runner bound it or its WSGI server names itself."""
    if service.base_url:
        return service.base_url
    environ = flask.request.environ
    name = str(environ.get("SERVER_NAME") or "localhost")
    host = f"[{name}]" if ":" in name else name
    return f"{flask.request.scheme}://{host}:{environ.get('SERVER_PORT') or 80}"


def _upload() -> Optional[tuple[str, bytes]]:
    files = flask.request.files
    upload = files.get("file") or next(iter(files.values()), None)
    return None if upload is None else (upload.filename or "", upload.read())


def _http_error(exc: HTTPException) -> flask.Response:
    """Errors raised by Flask before dispatch (e.g. an unsupported method) get the envelope."""
    return _render(ServiceError(exc.code or INTERNAL, exc.name).envelope())


# --- responses -----------------------------------------------------------------------------------

def _param(name: str) -> str:
    """A transport parameter (``f``, ``callback``) even when the form could not be parsed."""
    request = flask.request
    try:
        value = request.values.get(name)
    except HTTPException:
        value = request.args.get(name)
    return (value or "").strip()


def _render(payload: dict[str, Any]) -> flask.Response:
    """JSON (``pjson`` indented), wrapped for JSONP when asked, gzipped when worth it."""
    request = flask.request
    if _param("f").lower() == "pjson":
        body = json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")
    else:
        body = codec.dumps_bytes(payload)
    mimetype = "application/json"
    callback = _param("callback") if flask.g.get(JSONP_ALLOWED) else ""
    if callback and CALLBACK.match(callback) and len(callback) <= 128:
        body = b"/**/" + callback.encode("ascii") + b"(" + body + b");"
        mimetype = "application/javascript"
    response = flask.Response(body, mimetype=mimetype)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if len(body) >= GZIP_MIN_BYTES and request.accept_encodings["gzip"]:
        response.set_data(gzip.compress(body, compresslevel=GZIP_LEVEL))
        response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept-Encoding")
    return response


__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyGuard", "Service", "close_app", "create_app",
           "inflate", "service_of"]
