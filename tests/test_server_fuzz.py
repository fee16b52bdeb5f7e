"""Hostile input, generated: every request to the server ends in a result or a clean error.

Hypothesis builds requests against the real Flask app (called as WSGI, the way waitress calls
it) over a seeded embedded repository that is copied afresh for every example. Each route the
server has is a test of its own (``wmx.server.app.ROUTES``, so a new endpoint is fuzzed without
being listed here), its request followed by up to two to any route: GET and POST (query
string, form, multipart, raw JSON), with parameter names and values that are wrong types,
huge/negative/float/NaN numbers, SQL-looking and path-like strings, lone surrogates, NUL bytes
and invalid UTF-8; bodies of the wrong JSON shape, deeply nested, oversized, or claiming a gzip
or Content-Length they do not have; random ids and names in the URL path. After every
request:

* it answered, within :data:`REQUEST_SECONDS` (no hang), with HTTP 200;
* the body is strict JSON (no ``NaN``), or, for ``attachments/{aid}/content``, an attachment;
* no traceback text and no server path (the repository's folder, wmx's sources) is in it;
* an error is Esri's envelope with a code the contract allows for client input (400, 403,
  404, 405, 413 — never 500 or 503), and the repository is byte-for-byte unchanged (every
  table, the change log included);
* after a success the repository is still consistent, unlocked and readable: ``jobs``, every
  job it lists, and the service root answer (after replicated element rows, ``jobs`` only:
  see :data:`REPLICATED_WRITE`);
* with a token, nothing is admitted or written without it.

CI-sized and deterministic by default (derandomized, no example database); ``WMX_LONG=1``
runs :data:`LONG_FACTOR` times more examples. Bugs the fuzzing found are kept as named
regression tests at the end of this file.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import re
import shutil
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote_from_bytes

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

import wmx
from tests.guarantees_helpers import LONG, scratch_directory
from tests.http_helpers import ADMIN, EDITOR, make_repository
from wmx.model.changes import ROW_FIELDS
from wmx.model.records import RECORD_TYPES, STORAGE_LINKED_FILE, HoldType
from wmx.repository.base import NodeRecord
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.wire import JOB_PARAMS
from wmx.server.app import ROUTES, close_app, create_app
from wmx.server.routing import Route

PREFIX = "/arcgis/rest/services/Parent/WMServer"
MAX_BODY = 16 * 1024
"""The fuzzed app's body limit: small, so oversized bodies are cheap to send."""
REQUEST_SECONDS = 10
"""One request answering later than this counts as a hang."""
LOAD_ID = "fuzz-load"
"""The id of the snapshot load the seeded repository has open (so rows/commit get deep)."""
TOKEN = "fuzz-T0ken"
CLIENT_ERRORS = frozenset({400, 403, 404, 405, 413})
"""The envelope codes a client's input may earn; 500 (internal) and 503 (store unavailable)
are server faults. 498/499 only come from a token-protected server (its own test)."""
LONG_FACTOR = 20
LEAKS = ("Traceback (most recent call last)", str(Path(wmx.__file__).resolve().parent),
         sys.prefix)


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples * (LONG_FACTOR if LONG else 1), derandomize=True,
                    database=None, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example])


# --- the repository under attack ----------------------------------------------------------------

@attrs.define
class Seed:
    folder: Path
    pristine: Path
    work: Path
    dump: list
    current: Optional[list] = None
    """The served copy's dump as of the last request (saves dumping it before the next)."""


def _seed(repository: EmbeddedRepository) -> None:
    """Three jobs (the third closed) with a hold, notes, both kinds of attachment, a dependency,
    an extended-property record, a cluster member and an open snapshot load."""
    for _ in range(3):
        repository.create_job(1, user=ADMIN)
    hold_type = repository.list_config(HoldType)[0].id
    repository.create_hold(1, hold_type, user=ADMIN, comments="seed")
    repository.set_notes(1, "seed notes", user=ADMIN)
    repository.add_attachment(1, "seed.txt", b"seed content", user=ADMIN)
    repository.add_attachment(1, "linked.txt", user=ADMIN, storage_type=STORAGE_LINKED_FILE,
                              folder="/etc")
    repository.add_dependency(1, 2, user=ADMIN)
    repository.add_extended_property(1, "WMX_EXT", {"field": 1}, user=ADMIN)
    repository.close_job(3, user=ADMIN)
    repository.save_node(NodeRecord(node_id="child-node", name="Child", url="http://child"))
    repository.begin_load()
    with repository.transaction() as tx:
        tx.cursor.execute("UPDATE meta SET value=? WHERE key='load_id'", (LOAD_ID,))


def dump(path: Path) -> list:
    """Every row of every table (and the schema), read through a connection of its own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        rows = [db.execute(f'SELECT * FROM "{name}" ORDER BY rowid').fetchall()
                for kind, name, _ in tables if kind == "table"]
    finally:
        db.close()
    return [tables, rows]


@pytest.fixture(scope="module")
def seed() -> Iterator[Seed]:
    with scratch_directory("wmx-fuzz-") as folder:
        pristine = make_repository(folder)
        with EmbeddedRepository(pristine) as repository:
            _seed(repository)
        work = folder / "served" / pristine.name
        work.parent.mkdir()
        yield Seed(folder, pristine, work, dump(pristine))


@contextlib.contextmanager
def served(seed: Seed, **options: Any) -> Iterator[Any]:
    """A fresh copy of the seeded repository, served by a new app."""
    for suffix in ("-wal", "-shm"):
        seed.work.with_name(seed.work.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(seed.pristine, seed.work)
    seed.current = seed.dump
    app = create_app(seed.work, max_body_bytes=MAX_BODY, **options)
    try:
        yield app
    finally:
        close_app(app)


# --- requests -------------------------------------------------------------------------------------

@attrs.frozen
class Request:
    """One raw HTTP request: the path as bytes (a WSGI server hands the app the unquoted
    bytes), the query string and body as bytes, and extra CGI-style headers."""

    method: str
    path: bytes
    query: bytes = b""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def environ(self) -> dict[str, Any]:
        environ = EnvironBuilder(method=self.method, path="/").get_environ()
        environ["PATH_INFO"] = self.path.decode("latin-1")
        environ["QUERY_STRING"] = self.query.decode("latin-1")
        environ["wsgi.input"] = io.BytesIO(self.body)
        environ["CONTENT_LENGTH"] = str(len(self.body)) if self.body else ""
        environ.pop("CONTENT_TYPE", None)
        environ.update(self.headers)
        return environ


@attrs.frozen
class Answer:
    status: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as strict JSON (gunzipped, JSONP wrapper removed); fails the test if not."""
        body = self.body
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if body.startswith(b"/**/"):
            assert body.endswith(b");"), body[:200]
            body = body[body.index(b"(") + 1:-2]
        return json.loads(body, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise AssertionError(f"the answer is not strict JSON: it contains {name}")


class RequestHung(AssertionError):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail a request that does not answer in time (POSIX main thread; elsewhere unguarded).
    The alarm interrupts the request; the server may turn that into an error envelope, so the
    hang is reported here, after it."""
    if not hasattr(signal, "setitimer") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def hung(signum: int, frame: Any) -> None:
        fired.append(True)
        raise RequestHung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:
        raise RequestHung(f"no answer within {seconds} s")


def send(app: Any, request: Request) -> Answer:
    with time_limit(REQUEST_SECONDS):
        app_iter, status, headers = run_wsgi_app(app, request.environ(), buffered=True)
        try:
            body = b"".join(app_iter)
        finally:
            getattr(app_iter, "close", lambda: None)()
    return Answer(status, dict(headers), body)


def get(app: Any, path: str, **params: str) -> Any:
    query = "&".join(f"{key}={quote_from_bytes(value.encode())}" for key, value in
                     {"f": "json", **params}.items())
    return send(app, Request("GET", f"{PREFIX}/{path}".rstrip("/").encode(),
                             query.encode())).json()


# --- the properties -------------------------------------------------------------------------------

def check(app: Any, seed: Seed, request: Request) -> Any:
    """Send one request and assert the contract; return its JSON answer (None for content)."""
    before = seed.current if seed.current is not None else dump(seed.work)
    answer = send(app, request)
    seed.current = after = dump(seed.work)
    assert answer.status == "200 OK", (answer.status, answer.body[:300])
    text = answer.body.decode("utf-8", "replace")
    for leak in (*LEAKS, str(seed.folder)):
        assert leak not in text, f"the answer leaks {leak!r}: {text[:500]}"
    content_type = answer.headers.get("Content-Type", "")
    if not content_type.startswith(("application/json", "application/javascript")):
        # Only an embedded attachment's content is answered raw, and only as an attachment.
        assert b"/content" in request.path.lower(), (content_type, answer.body[:200])
        assert answer.headers.get("Content-Disposition", "").startswith("attachment")
        return None
    payload = answer.json()
    if isinstance(payload, dict) and "error" in payload:
        assert set(payload) == {"error"}, payload
        error = payload["error"]
        assert set(error) == {"code", "message", "details"}, error
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["details"], list)
        assert all(isinstance(detail, str) for detail in error["details"])
        assert error["code"] in CLIENT_ERRORS, f"server fault for client input: {error}"
        assert after == before, f"an error ({error}) left a partial write"
    else:
        assert_readable(app, seed, elements=REPLICATED_WRITE.search(request.path) is None)
    return payload


REPLICATED_WRITE = re.compile(rb"(?i)/replication/x-(apply|load/)")
"""Writes of element rows from a replication peer: the rows are checked for their types and
ranges, but each body is stored as the peer sent it (parsing every replicated body would
slow every sync), so what element reads make of a hostile body is not part of the contract."""


def assert_readable(app: Any, seed: Seed, *, elements: bool = True) -> None:
    """The store is consistent, holds no lock, and ``jobs`` answers; with ``elements`` the
    element reads too (each job it lists, and the service root's configuration)."""
    db = sqlite3.connect(seed.work, timeout=0, isolation_level=None)
    try:
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)
        db.execute("BEGIN IMMEDIATE")  # fails if the server kept a write transaction open
        db.execute("ROLLBACK")
    finally:
        db.close()
    jobs = get(app, "jobs")
    assert set(jobs) == {"jobIds"}, jobs
    if not elements:
        return
    for job_id in jobs["jobIds"][:10]:
        job = get(app, f"jobs/{job_id}")
        assert job.get("error", {}).get("code") not in (500, 503), (job_id, job)
    root = get(app, "")
    assert "error" not in root, root


# --- strategies: values ---------------------------------------------------------------------------

ARABIC_ONE = "\u0661"
MATH_ONE = "\U0001d7d9"
"""Digits to Python's ``str.isdigit`` that ``int`` refuses or reads differently."""

SQL_LIKE = ["1; DROP TABLE elements--", "' OR 1=1 --", "\" OR \"\"=\"",
            "1 UNION SELECT * FROM meta", "'; DELETE FROM nodes; --", "%' --",
            "x'); PRAGMA writable_schema=1; --"]
PATH_LIKE = ["../../etc/passwd", "..\\..\\windows\\win.ini", "/etc/passwd", "C:\\boot.ini",
             "..", ".", "....//....//etc", "%2e%2e%2f%2e%2e%2f", "\\\\server\\share\\x",
             "file:///etc/passwd"]
NUMBERS = ["0", "-1", "1", "2", "3", "4", "99", "1.5", "-0", "1e3", "NaN", "nan", "Infinity",
           "-Infinity", "1e309", str(2 ** 31), str(2 ** 63 - 1), str(2 ** 63), str(-2 ** 63),
           str(-2 ** 63 - 1), str(2 ** 64), "9" * 40, "0x10", " 1", "1 ", "+1", "01",
           ARABIC_ONE, "²", MATH_ONE, "1_000", ""]
ODD = ["\x00", "a\x00b", "\ud800", "\udfff", "x\udc80y", "\ufeff", "\u202e", "é",
       "\U0001d518\U0001d52b\U0001d526", "null", "true", "false", "[]", "{}", "[[[[", '{"a":',
       "tester\x00", "TESTER", "DOMAIN|tester", " tester ", "x" * 3000]
JSON_SNIPPETS = ["[]", "{}", "null", "1", '"text"', "[1, 2]", '{"name": 5}', '{"name": null}',
                 '{"priority": 1e400}', '{"percent": NaN}', '{"percent": Infinity}',
                 '{"priority": 123456789012345678901234567890}', '{"startDate": -1e20}',
                 '{"dueDate": 99999999999999999999}', '{"aoi": []}', '{"aoi": {"x": NaN}}',
                 '{"name": "\\ud800"}', '{"field": "\\udfff"}', '{"a": {"b": [1, {"c": null}]}}',
                 '{"ownedBy": ["tester"]}', '{"assignedType": true}', '{"1": 2}', '{"": ""}',
                 "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000]
KNOWN = [ADMIN, EDITOR, "Child", "child-node", LOAD_ID, "WMX_EXT", "seed.txt", "1,2", "1,1",
         "3,1", "1,99", ",", "1,,2", "2,x"]
PLAIN = [*SQL_LIKE, *PATH_LIKE, *NUMBERS, *ODD, *JSON_SNIPPETS, *KNOWN]

any_chars = st.characters(codec=None, exclude_categories=())
"""Every code point, surrogates included."""


def _json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=len(repr(value)) % 2 == 0)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(any_chars, max_size=12),
                         st.sampled_from([2 ** 63, -2 ** 63 - 1, 10 ** 30, 1e400, -1e400]))
json_keys = st.one_of(st.sampled_from([*JOB_PARAMS, "field", "changes", "rows", "node"]),
                      st.text(any_chars, max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(json_keys, inner, max_size=4)), max_leaves=12)
texts = st.one_of(st.sampled_from(PLAIN), st.text(any_chars, max_size=30),
                  st.integers().map(str), st.floats().map(repr), json_values.map(_json_text))


def _encoded(text: str) -> bytes:
    """Text as a client would send it; lone surrogates become the invalid UTF-8 they encode."""
    return text.encode("utf-8", "surrogatepass")


values = st.one_of(texts.map(_encoded), st.binary(max_size=16))
"""Parameter values as bytes: mostly text, sometimes bytes that are not UTF-8 at all."""

PARAM_NAMES = sorted({
    *JOB_PARAMS, "f", "user", "token", "callback", "jobTypeId", "id", "numJobs", "properties",
    "clearAOI", "clearStartDate", "clearDueDate", "jobs", "type", "comments", "notes",
    "storageType", "filePath", "depJobId", "heldOnType", "heldOnValue", "depOnType",
    "depOnValue", "since", "limit", "origin", "excludeOrigin", "sinceTime", "cursor", "_ts"})
names = st.one_of(st.sampled_from(PARAM_NAMES).map(str.encode),
                  st.sampled_from(PARAM_NAMES).map(lambda name: name.upper().encode()),
                  texts.map(_encoded), st.binary(max_size=8))
formats = st.sampled_from([b"json", b"pjson", b"", b"html", b"file", b"xml", b"JSON", b"kmz",
                           b"json\x00", b"\xff"])
users = st.one_of(st.sampled_from([EDITOR.encode(), b"TESTER", b"DOMAIN|tester", b"ghost", b""]),
                  values)


def mostly(draw: st.DrawFn, usual: Any, odd: st.SearchStrategy[Any], percent: int = 85) -> Any:
    """``usual`` most of the time, else a draw from ``odd``; shrinks towards ``usual``, so a
    minimal failing example keeps only the oddities that matter."""
    return draw(odd) if draw(st.integers(0, 99)) >= percent else usual


millis = st.integers(0, 2 ** 42).map(str)
small = st.sampled_from(["0", "1", "2", "3"])
job_ids = st.sampled_from(["1", "2", "3"])
job_properties = st.dictionaries(st.sampled_from(sorted(JOB_PARAMS)), st.one_of(
    st.none(), st.integers(-1, 5), st.text(max_size=6), st.sampled_from([ADMIN, EDITOR]),
    st.integers(0, 2 ** 42), st.just({"x": 1, "y": 2})), max_size=4).map(json.dumps)
PLAUSIBLE: dict[str, st.SearchStrategy[str]] = {
    "jobTypeId": st.sampled_from(["1", "2"]),
    "numJobs": st.sampled_from(["1", "2", "3"]), "name": st.text(max_size=8),
    "description": st.text(max_size=8), "startDate": millis, "dueDate": millis,
    "priority": small, "status": small, "parentJobId": job_ids,
    "dataWorkspaceId": st.text(max_size=4), "parentVersion": st.text(max_size=4),
    "versionName": st.text(max_size=4), "ownedBy": st.sampled_from([ADMIN, EDITOR]),
    "assignedType": small, "assignedTo": st.sampled_from([ADMIN, EDITOR, "ghost"]),
    "percent": st.sampled_from(["0", "50", "100"]), "aoi": st.just('{"x": 1, "y": 2}'),
    "poi": st.just('{"x": 1, "y": 2}'),
    "properties": st.one_of(job_properties, st.just('{"JOB_ID_START_VALUE": "5"}'),
                            st.just('{"FUZZ_PROPERTY": "1"}'), st.just('{"field": 2}')),
    "clearAOI": st.just("true"), "clearStartDate": st.just("true"),
    "clearDueDate": st.just("true"),
    "jobs": st.sampled_from(["1", "1,2", "3,1", "2,2", "1,99", "2,3,99"]),
    "type": small, "comments": st.text(max_size=8), "notes": st.text(max_size=8),
    "storageType": st.sampled_from(["1", "2", "3"]),
    "filePath": st.sampled_from(PATH_LIKE), "depJobId": job_ids, "heldOnType": small,
    "heldOnValue": small, "depOnType": small, "depOnValue": small, "since": small,
    "cursor": small, "limit": st.sampled_from(["1", "5", "1000"]),
    "origin": st.sampled_from(["child-node", ""]), "excludeOrigin": st.just("child-node"),
    "sinceTime": millis,
}
"""Values that get a request past validation into the handler (extra ones are ignored)."""


@st.composite
def parameters(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """``f=json`` and ``user`` = the administrator (usually, so that requests get past them
    to the handlers), most of the parameters any handler wants — plausible, or a share of
    them hostile — and random pairs; names may repeat."""
    pairs = []
    if mostly(draw, True, st.just(False), 95):
        pairs.append((b"f", mostly(draw, b"json", formats)))
    if mostly(draw, True, st.just(False), 90):
        pairs.append((b"user", mostly(draw, ADMIN.encode(), users)))
    hostile = draw(st.sampled_from([0, 5, 20, 50]))  # percent of the values made hostile
    for name, plausible in PLAUSIBLE.items():
        if mostly(draw, False, st.just(True), 25):  # 3 in 4; shrinks to leaving it out
            pairs.append((name.encode(), mostly(draw, _encoded(draw(plausible)), values,
                                                100 - hostile)))
    pairs += draw(st.lists(st.tuples(names, values), max_size=4))
    return draw(st.permutations(pairs))


def urlencode(pairs: list[tuple[bytes, bytes]], *, raw: bool = False) -> bytes:
    """``name=value&…``, percent-encoded (``raw``: the bytes as they are)."""
    if raw:
        return b"&".join(name + b"=" + value for name, value in pairs)
    return "&".join(f"{quote_from_bytes(name)}={quote_from_bytes(value)}"
                    for name, value in pairs).encode("ascii")


# --- strategies: paths ----------------------------------------------------------------------------

ID_SEGMENTS = ["1", "2", "3", "4", "0", "99", "01", str(2 ** 63 - 1), str(2 ** 63), "9" * 30,
               "-1", "1.0", ARABIC_ONE, "\u0663", "²", MATH_ONE, " 1", "1e2"]
route_ids = st.one_of(st.sampled_from(ID_SEGMENTS), st.integers(0, 2 ** 70).map(str))
route_names = st.one_of(st.sampled_from(PLAIN), st.text(any_chars, max_size=12))


@st.composite
def route_paths(draw: st.DrawFn, routes: Sequence[Route] = tuple(ROUTES.routes)
                ) -> tuple[bytes, frozenset[str]]:
    """A path to one of ``routes`` (default: all the server has), with random ids and names
    in it, and the methods the route takes."""
    route = draw(st.sampled_from(routes))
    parts = []
    for name, kind in route.segments:
        if kind is None:
            part = draw(st.sampled_from([name, name, name.upper()]))
        elif kind == "int":
            part = mostly(draw, draw(st.sampled_from(["1", "1", "1", "2", "3"])), route_ids)
        else:
            part = mostly(draw, draw(st.sampled_from(["WMX_EXT", ADMIN])), route_names)
        parts.append(_encoded(part))
    return (PREFIX.encode() + b"".join(b"/" + part for part in parts)), route.methods


ROUTE_PATHS = route_paths()


@st.composite
def stray_paths(draw: st.DrawFn) -> bytes:
    """Paths no route has: under the service, beside it, or above it."""
    segments = draw(st.lists(st.one_of(route_names.map(_encoded), st.binary(max_size=8)),
                             max_size=5))
    base = draw(st.sampled_from([PREFIX.encode(), b"/arcgis/rest/services/Other/WMServer",
                                 b"/arcgis/rest/services", b"", b"/..", PREFIX.upper().encode()]))
    return base + b"".join(b"/" + segment for segment in segments) or b"/"


# --- strategies: bodies ---------------------------------------------------------------------------

guids = st.one_of(st.uuids().map(str), st.sampled_from(PLAIN), st.text(any_chars, max_size=8))
ints = st.one_of(st.integers(-3, 5), st.integers(),
                 st.sampled_from([2 ** 63 - 1, 2 ** 63, -2 ** 63 - 1, 2 ** 64, 10 ** 30]))
kinds = st.one_of(st.sampled_from(sorted(RECORD_TYPES)), st.text(any_chars, max_size=6))
esri_bodies = st.dictionaries(json_keys, json_scalars, max_size=5).map(json.dumps)
anything = json_values


def usually(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy`` 19 times in 20, else any JSON value (so a whole object is often valid)."""
    return st.integers(0, 19).flatmap(lambda pick: anything if pick == 19 else strategy)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


row_values = (
    guids, kinds, st.one_of(st.none(), ints), st.one_of(st.none(), guids),
    st.one_of(st.none(), st.text(any_chars, max_size=8)),
    st.one_of(st.none(), esri_bodies, st.sampled_from(JSON_SNIPPETS), st.text(max_size=8)),
    st.one_of(st.none(), st.binary(max_size=8).map(_b64), st.text(max_size=8)),
    ints, guids, st.one_of(st.sampled_from([0, 1, True, False, 2, -1]), ints))
assert len(row_values) == len(ROW_FIELDS)
rows = st.lists(usually(st.tuples(*map(usually, row_values)).map(list)), max_size=3)
node_objects = st.fixed_dictionaries({"nodeId": usually(guids), "name": usually(guids)},
                                     optional={
    "url": usually(st.sampled_from(PATH_LIKE)), "isParent": usually(st.booleans()),
    "isConnected": usually(st.booleans()), "lastSync": usually(ints),
    "idBlockStart": usually(ints), "incarnation": usually(guids), "pullSeq": usually(ints),
    "pushSeq": usually(ints)})
load_ids = usually(st.one_of(st.just(LOAD_ID), guids))
REPLICATION_SHAPES: dict[str, st.SearchStrategy[Any]] = {
    "x-apply": st.fixed_dictionaries(
        {"changes": usually(rows), "parentNode": usually(guids)},
        optional={"sourceNode": usually(guids), "detectSince": usually(ints),
                  "policy": usually(st.sampled_from(["newest", "parent", "child", "loudest"])),
                  "dryRun": usually(st.booleans()), "overlay": usually(rows)}),
    "x-load/rows": st.fixed_dictionaries({"loadId": load_ids, "rows": usually(rows)}),
    "x-load/commit": st.fixed_dictionaries(
        {"loadId": load_ids, "parentNodeId": usually(guids), "idBlockStart": usually(ints)},
        optional={"newNodeId": usually(guids)}),
    "x-load/abort": st.fixed_dictionaries({"loadId": load_ids}),
    "x-load/begin": st.fixed_dictionaries({}),
    "x-nodes": st.fixed_dictionaries({"node": usually(node_objects)}),
    "x-clear": st.fixed_dictionaries({}),
}
"""The body each replication write expects, with wrong-typed or out-of-range members."""
shaped_bodies = st.one_of(*REPLICATION_SHAPES.values())
json_bodies = st.one_of(shaped_bodies.map(_json_text), json_values.map(_json_text),
                        st.sampled_from(JSON_SNIPPETS)).map(_encoded)
RAW_BODIES = st.one_of(json_bodies, json_bodies, st.binary(max_size=64),
                       st.sampled_from([b"", b" ", b"\xff\xfe{}", b"{\"a\": \"\xc3\x28\"}",
                                        b"\x1f\x8b\x08\x00garbage", b"\x00" * 32,
                                        b"[" * 10_000]))
FORM_TYPES = ["application/x-www-form-urlencoded; charset=latin-1",
              "application/x-www-form-urlencoded; charset=nonsense", "text/plain"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-16", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data",
                 "multipart/form-data; boundary=", "application/octet-stream", "\xff/\xfe"]


def multipart(pairs: list[tuple[bytes, bytes]], files: list[tuple[bytes, bytes]],
              boundary: bytes) -> bytes:
    out = []
    for name, value in pairs:
        out.append(b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name
                   + b'"\r\n\r\n' + value + b"\r\n")
    for filename, content in files:
        out.append(b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
                   b'filename="' + filename + b'"\r\nContent-Type: application/octet-stream'
                   b"\r\n\r\n" + content + b"\r\n")
    return b"".join(out) + b"--" + boundary + b"--\r\n"


file_names = st.one_of(st.sampled_from([name.encode("utf-8", "surrogatepass")
                                        for name in [*PATH_LIKE, *ODD, "a.txt"]]),
                       st.binary(max_size=12))


STYLES = ("query", "form", "multipart", "raw")


@st.composite
def requests(draw: st.DrawFn, paths: st.SearchStrategy[Any] = ROUTE_PATHS,
             styles: tuple[str, ...] = STYLES, bodies: st.SearchStrategy[bytes] = RAW_BODIES
             ) -> Request:
    """One request to ``paths``: GET with a query string, or POST with the parameters in the
    query string, a form, a multipart upload, or a raw body (parameters then in the query)."""
    path = draw(paths)
    allowed: Any = ("GET", "POST")
    if isinstance(path, tuple):
        path, allowed = path
    method = mostly(draw, draw(st.sampled_from(sorted(allowed))),
                    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    params = draw(parameters())
    headers: list[tuple[str, str]] = []
    body = b""
    query = urlencode(params, raw=draw(st.integers(0, 9)) == 0)
    style = draw(st.sampled_from(styles)) if method != "GET" else "query"
    if style == "form":
        body, query = query, b""
        headers.append(("CONTENT_TYPE", mostly(draw, "application/x-www-form-urlencoded",
                                               st.sampled_from(FORM_TYPES))))
    elif style == "multipart":
        boundary = draw(st.sampled_from([b"fuzzboundary", b"-", b"x" * 80]))
        files = draw(st.lists(st.tuples(file_names, st.binary(max_size=32)), max_size=2))
        body = multipart(params, files, boundary)
        if draw(st.integers(0, 5)) == 0:
            body = body[:draw(st.integers(0, len(body)))]
        query = b""
        headers.append(("CONTENT_TYPE", "multipart/form-data; boundary="
                        + boundary.decode("latin-1")))
    elif style == "raw":
        body = draw(bodies)
        headers.append(("CONTENT_TYPE", mostly(draw, "application/json",
                                               st.sampled_from(CONTENT_TYPES))))
    if body and draw(st.integers(0, 5)) == 0:
        body, headers = draw(transfer_tricks(body, headers))
    if draw(st.integers(0, 3)) == 0:
        headers.append(("HTTP_ACCEPT_ENCODING", "gzip"))
    return Request(method, path, query, body, tuple(headers))


@st.composite
def transfer_tricks(draw: st.DrawFn, body: bytes, headers: list[tuple[str, str]]
                    ) -> tuple[bytes, list[tuple[str, str]]]:
    """Bodies that claim an encoding or a length they do not have, or that are too big."""
    trick = draw(st.sampled_from(["gzip", "fake-gzip", "truncated-gzip", "other-encoding",
                                  "oversized", "oversized-gzip", "length"]))
    headers = list(headers)
    if trick == "gzip":
        body = gzip.compress(body)
    elif trick == "truncated-gzip":
        compressed = gzip.compress(body)
        body = compressed[:draw(st.integers(0, len(compressed) - 1))]
    elif trick == "oversized":
        body = body + b" " * MAX_BODY
    elif trick == "oversized-gzip":
        body = gzip.compress(body + b" " * (MAX_BODY * 4))
    if trick in ("gzip", "fake-gzip", "truncated-gzip", "oversized-gzip"):
        headers.append(("HTTP_CONTENT_ENCODING", "gzip"))
    elif trick == "other-encoding":
        headers.append(("HTTP_CONTENT_ENCODING", draw(st.sampled_from(
            ["br", "deflate", "gzip, gzip", "identity", "\xff"]))))
    elif trick == "length":
        headers.append(("CONTENT_LENGTH", draw(st.sampled_from(
            ["abc", "-1", "0", "1", " 5 ", "99999999999999999999", str(MAX_BODY + 1),
             "1e3", ARABIC_ONE]))))
    return body, headers


# --- the fuzz tests -------------------------------------------------------------------------------

def pattern(route: Route) -> str:
    path = "/".join(name if kind is None else f"{{{name}}}" for name, kind in route.segments)
    return f"{path or '(root)'} {'|'.join(sorted(route.methods))}"


@pytest.mark.parametrize("route", ROUTES.routes, ids=pattern)
@fuzz_settings(12)
@given(data=st.data())
def test_every_route_answers_hostile_requests_cleanly(seed: Seed, route: Route,
                                                      data: st.DataObject) -> None:
    """A request to ``route``, then up to two to any route (sequences, e.g. a write, then a
    write that depends on it)."""
    batch = [data.draw(requests(route_paths((route,))), label="request"),
             *data.draw(st.lists(requests(), max_size=2), label="then")]
    with served(seed) as app:
        for request in batch:
            check(app, seed, request)


@st.composite
def replication_writes(draw: st.DrawFn) -> Request:
    """A POST to a replication write, usually with a body of the shape it expects."""
    endpoint = draw(st.sampled_from(sorted(REPLICATION_SHAPES)))
    path = (f"{PREFIX}/replication/{endpoint}".encode(), frozenset({"POST"}))
    shaped = REPLICATION_SHAPES[endpoint].map(_json_text).map(_encoded)
    body = mostly(draw, draw(shaped), RAW_BODIES, 80)
    return draw(requests(st.just(path), styles=("raw",), bodies=st.just(body)))


@fuzz_settings(300)
@given(request=replication_writes())
def test_replication_writes_survive_bodies_of_every_shape(seed: Seed, request: Request) -> None:
    with served(seed) as app:
        check(app, seed, request)


@fuzz_settings(200)
@given(request=requests(stray_paths()))
def test_stray_paths_are_clean_not_founds(seed: Seed, request: Request) -> None:
    with served(seed) as app:
        check(app, seed, request)


@fuzz_settings(100)
@given(request=requests(), token=st.one_of(st.none(), values))
def test_a_token_protected_server_admits_nothing_without_it(seed: Seed, request: Request,
                                                            token: Optional[bytes]) -> None:
    params = [pair for pair in request.query.split(b"&") if not pair.lower().startswith(b"token=")]
    if token is not None:
        params.append(b"token=" + quote_from_bytes(token).encode())
    request = attrs.evolve(request, query=b"&".join(params))
    with served(seed, token=TOKEN) as app:
        before = dump(seed.work)
        answer = send(app, request)
        assert answer.status == "200 OK"
        error = answer.json()["error"]
        # Checked before the token: a body too large or malformed (400, 413), a method no
        # route has (405, from Flask). Neither says anything about the repository.
        assert error["code"] in (400, 405, 413, 498, 499), error
        assert dump(seed.work) == before


# --- what the fuzzing found (each failed before its fix) ---------------------------------------

def answer(seed: Seed, method: str, path: str, query: bytes = b"f=json&user=tester",
           body: bytes = b"", **headers: str) -> Any:
    """One request to a fresh copy, checked against the whole contract; its JSON answer."""
    request = Request(method, f"{PREFIX}/{path}".encode(), query, body,
                      tuple((name.upper(), value) for name, value in headers.items()))
    with served(seed) as app:
        return check(app, seed, request)


def error_of(payload: Any) -> Optional[int]:
    return payload.get("error", {}).get("code") if isinstance(payload, dict) else None


def test_raw_bytes_in_the_query_string_that_are_not_utf8(seed: Seed) -> None:
    """Werkzeug decodes a raw query as strict UTF-8: every read of the parameters raised,
    even the error page's, and the client got no envelope at all."""
    assert error_of(answer(seed, "GET", "jobs/1", b"f=json&user=\xfe\x07")) is None
    assert error_of(answer(seed, "POST", "jobs/1/notes/update",
                           b"f=json&user=tester&notes=caf\xe9")) is None
    assert error_of(answer(seed, "GET", "jobs", b"f=\xff")) == 400


@pytest.mark.parametrize("segment", ["\u00b2", ARABIC_ONE, MATH_ONE, str(2 ** 63), "9" * 5000])
def test_path_ids_that_are_not_64_bit_ascii_numbers_name_nothing(seed: Seed,
                                                                 segment: str) -> None:
    """``str.isdigit`` accepts "²" (``int`` then raised) and ids beyond SQLite's INTEGER
    reached the store (OverflowError): both answered 500."""
    for path in (f"jobs/{segment}", f"jobs/1/holds/{segment}", f"jobTypes/{segment}",
                 f"community/groups/{segment}"):
        request = Request("GET", f"{PREFIX}/{path}".encode(), b"f=json")
        with served(seed) as app:
            assert error_of(check(app, seed, request)) == 404, path


@pytest.mark.parametrize("query", [
    b"jobTypeId=9223372036854775808",
    b"jobTypeId=1&priority=123456789012345678901234567890",
    b"jobs=9223372036854775808",
])
def test_parameters_beyond_64_bits_are_malformed(seed: Seed, query: bytes) -> None:
    """They reached SQLite (OverflowError): 500. ``jobs`` was found by ``WMX_LONG=1``."""
    path = "jobs/close" if query.startswith(b"jobs=") else "jobs/create"
    assert error_of(answer(seed, "POST", path, b"f=json&user=tester&" + query)) == 400


@pytest.mark.parametrize("query", [
    "jobTypeId=0_1", "jobTypeId=\u0661", "jobTypeId=\uff11", "jobs=1_0", "jobs=1,\u0662",
])
def test_integers_are_ascii_digits_only(seed: Seed, query: str) -> None:
    """Python's int() reads "0_1" as 1 and Arabic-Indic or full-width digits as numbers;
    Esri's clients send ASCII digits, and anything else named a job or type by accident."""
    path = "jobs/close" if query.startswith("jobs=") else "jobs/create"
    encoded = quote_from_bytes(query.encode()).replace("%3D", "=").encode()
    assert error_of(answer(seed, "POST", path, b"f=json&user=tester&" + encoded)) == 400


@pytest.mark.parametrize("properties", [
    '{"priority": 123456789012345678901234567890}', '{"percent": Infinity}',
    '{"priority": 1e400}', '{"name": "\\ud800"}',
    '{"name": "x\\udc80y"}', "[" * 5000 + "]" * 5000,
])
def test_job_properties_json_that_cannot_be_stored_is_malformed(seed: Seed,
                                                                properties: str) -> None:
    """Without orjson, ``json`` parsed NaN, Infinity (int() then overflowed), 1e400, lone
    surrogates (SQLite cannot encode them) and nesting to a RecursionError: all 500s."""
    query = b"f=json&user=tester&properties=" + quote_from_bytes(properties.encode()).encode()
    assert error_of(answer(seed, "POST", "jobs/1/update", query)) == 400


def _row(**fields: Any) -> list:
    row = {"guid": "fuzz-guid", "kind": "hold_type", "int_id": 77, "job_guid": None,
           "name": "Fuzz", "body": '{"id": 77, "name": "Fuzz"}', "content": None,
           "hlc": 1 << 40, "origin": "child-node", "deleted": 0, **fields}
    return [row[field] for field in ROW_FIELDS]


@pytest.mark.parametrize("row", [
    _row(hlc=-(2 ** 63) - 1), _row(hlc=2 ** 64), _row(hlc=2 ** 63 - 1), _row(int_id=2 ** 63),
    _row(deleted=5),
    _row(deleted=2 ** 70), _row(job_guid="x\udc80y"), _row(kind="\ud800"),
    _row(body=None), _row(kind="job", body=""), _row(kind="job", body="{not json"),
], ids=["hlc-low", "hlc-high", "hlc-poison", "int-id", "deleted-5", "deleted-huge",
        "surrogate-guid", "surrogate-kind", "live-without-body", "job-empty-body",
        "job-body-not-json"])
def test_replicated_rows_the_store_cannot_hold_are_malformed(seed: Seed, row: list) -> None:
    """Out-of-range integers, lone surrogates and a live row without a body reached SQLite
    (500s, or a stored row every later read failed on); a job body that is not JSON failed
    the parent-job index and answered 503 "busy" with the repository's path in it. Each is
    refused where it arrives, staged rows included (not later, at the commit)."""
    for endpoint, body in (("x-apply", {"changes": [row], "parentNode": "p"}),
                           ("x-apply", {"changes": [], "parentNode": "p", "overlay": [row]}),
                           ("x-load/rows", {"loadId": LOAD_ID, "rows": [row]})):
        with served(seed) as app:
            payload = check(app, seed, Request(
                "POST", f"{PREFIX}/replication/{endpoint}".encode(), b"f=json&user=tester",
                json.dumps(body).encode()))
        assert error_of(payload) == 400, (endpoint, payload)


@pytest.mark.parametrize("body", [
    b'{"node": {"nodeId": "\xed\xbf\xbf", "name": "n"}}',  # a surrogate, UTF-8-encoded
    b'{"node": {"nodeId": "n", "name": "n", "idBlockStart": 18446744073709551616}}',
    b'{"node": {"nodeId": "n", "name": "n", "pullSeq": -9223372036854775809}}',
    b'{"loadId": "fuzz-load", "parentNodeId": "p", "idBlockStart": 9223372036854775808}',
    b'{"changes": [], "parentNode": "p", "detectSince": 9223372036854775808}',
])
def test_replication_bodies_the_store_cannot_hold_are_malformed(seed: Seed,
                                                               body: bytes) -> None:
    endpoint = ("x-nodes" if b'"node"' in body else
                "x-load/commit" if b"loadId" in body else "x-apply")
    payload = answer(seed, "POST", f"replication/{endpoint}", body=body,
                     content_type="application/json")
    assert error_of(payload) == 400, payload


def test_a_job_named_twice_in_a_multi_job_delete_is_deleted_once(seed: Seed) -> None:
    """``jobs/delete?jobs=2,2`` deleted job 2, then failed on the second 2: an error answer
    after a write."""
    assert error_of(answer(seed, "POST", "jobs/delete", b"f=json&user=tester&jobs=2,2")) is None
    assert error_of(answer(seed, "POST", "jobs/delete",
                           b"f=json&user=tester&jobs=2,99,2")) == 404


def test_a_multipart_part_whose_name_cannot_be_parsed_is_ignored(seed: Seed) -> None:
    """Werkzeug hands such a part over under the name None; ``Params`` lowered it (500)."""
    body = multipart([(b"f", b"json"), (b"user", b"tester"), (b'x\\', b"1")], [],
                     b"fuzzboundary")
    payload = answer(seed, "POST", "jobs/1/notes/update", b"", body,
                     content_type="multipart/form-data; boundary=fuzzboundary")
    assert error_of(payload) == 400 and "notes" in payload["error"]["message"]


def test_an_unavailable_store_is_reported_without_its_path(
        seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's message ("<path>: database is locked") was answered as it was."""
    from wmx.repository.base import RepositoryUnavailable

    def busy(self: EmbeddedRepository, *args: Any, **kwargs: Any) -> Any:
        raise RepositoryUnavailable(f"{self.location} is busy: database is locked")

    monkeypatch.setattr(EmbeddedRepository, "set_notes", busy)
    with served(seed) as app:
        response = send(app, Request("POST", f"{PREFIX}/jobs/1/notes/update".encode(),
                                     b"f=json&user=tester&notes=x"))
    error = response.json()["error"]
    assert error["code"] == 503 and error["message"] == "Repository unavailable"
    assert str(seed.folder) not in response.body.decode()
