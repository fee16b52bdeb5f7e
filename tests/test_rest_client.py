"""The REST client alone, against recorded answers: transport failures, retries, the error
envelope, and the token kept out of URLs and error messages."""

from __future__ import annotations

import getpass
import gzip
import json
import socket

import pytest
import requests
import responses
from responses import matchers

from wmx.model.changes import Change
from wmx.repository import open_repository
from wmx.repository.base import (
    InvalidRequest,
    NodeRecord,
    NotAuthorized,
    RepositoryError,
    RepositoryNotFound,
    RepositoryUnavailable,
)
from wmx.repository.rest import TOKEN_HEADER, RestRepository

BASE = "http://wm.example/arcgis/rest/services/Parent/WMServer"
TOKEN = "t0ken-never-shown"
ROOT = {"currentVersion": 10.91, "configProperties": {}, "jobTypes": []}
NODE = {"nodeId": "n1", "name": "Parent", "incarnation": "i1", "seq": 7, "clock": 99,
        "parentNodeId": None, "idBlockStart": 1, "serverTime": 1}


def envelope(code: int, message: str, details: list[str] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or [message]}}


def client(**options: object) -> RestRepository:
    options.setdefault("backoff", 0)
    options.setdefault("user", "tester")
    return RestRepository(BASE, **options)  # type: ignore[arg-type]


@pytest.fixture
def mocked() -> responses.RequestsMock:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(BASE, json=ROOT)
        yield mock


def test_opening_probes_the_service_root(mocked: responses.RequestsMock) -> None:
    repository = client()
    assert repository.location == BASE
    assert BASE + "?f=json" in [call.request.url for call in mocked.calls]


def test_open_repository_asks_a_wmx_server_its_identity_once(
        mocked: responses.RequestsMock) -> None:
    """First contact tells wmx from Esri by ``x-node``; the answer is the identity the engine
    asks for next, so a sync with nothing to do costs two requests per child (SPEC §4)."""
    mocked.get(f"{BASE}/replication/x-node", json=NODE)
    repository = open_repository(BASE + "/", user="tester")
    assert isinstance(repository, RestRepository) and repository.location == BASE
    assert repository.info().node_id == NODE["nodeId"]
    assert [call.request.url.split("?")[0] for call in mocked.calls] == [
        f"{BASE}/replication/x-node"]
    repository.info()
    assert len(mocked.calls) == 2, "later identities are asked for again"


def test_the_token_travels_in_a_header_never_in_the_url(mocked: responses.RequestsMock
                                                        ) -> None:
    mocked.get(f"{BASE}/replication/x-node", json=NODE)
    info = client(token=TOKEN).info()
    assert (info.node_id, info.seq, info.parent_node_id) == ("n1", 7, None)
    for call in mocked.calls:
        assert TOKEN not in call.request.url
        assert call.request.headers[TOKEN_HEADER] == f"Bearer {TOKEN}"
    assert "user=tester" in mocked.calls[-1].request.url


def test_urls_carrying_secrets_are_refused_without_echoing_them() -> None:
    for location in (f"{BASE}?token={TOKEN}", f"http://me:{TOKEN}@wm.example/WMServer"):
        with pytest.raises(InvalidRequest) as refused:
            RestRepository(location)
        assert TOKEN not in str(refused.value)
    with pytest.raises(RepositoryNotFound):
        RestRepository("ftp://wm.example/WMServer")


def test_timeouts_and_refused_connections_are_unavailable() -> None:
    with responses.RequestsMock() as mock:
        mock.get(BASE, body=requests.ReadTimeout("read timed out"))
        with pytest.raises(RepositoryUnavailable, match="did not answer within 2 s"):
            client(timeout=2)
    with responses.RequestsMock() as mock:
        mock.get(BASE, body=requests.ConnectionError("Connection refused"))
        with pytest.raises(RepositoryUnavailable, match=f"Cannot reach {BASE}: Connection"):
            client()


def test_a_dead_port_fails_at_open_with_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/arcgis/rest/services/X/WMServer"
    with pytest.raises(RepositoryUnavailable) as failed:
        RestRepository(url, token=TOKEN, retries=1, backoff=0)
    assert url in str(failed.value) and TOKEN not in str(failed.value)


def test_gateway_errors_are_retried_then_succeed(mocked: responses.RequestsMock) -> None:
    path = f"{BASE}/replication/x-node"
    mocked.get(path, status=503, json=envelope(503, "busy"))
    mocked.get(path, status=502, body="bad gateway")
    mocked.get(path, json=NODE)
    assert client().info().node_id == "n1"
    assert len([c for c in mocked.calls if c.request.url.startswith(path)]) == 3


def test_retries_exhausted_is_unavailable(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/replication/x-node", status=503, body="busy")
    with pytest.raises(RepositoryUnavailable, match="HTTP 503"):
        client(retries=2).info()
    assert len(mocked.calls) == 1 + 3


def test_idempotent_apply_is_replayed_but_esri_writes_are_not(
        mocked: responses.RequestsMock) -> None:
    apply = f"{BASE}/replication/x-apply"
    mocked.post(apply, status=504, body="timeout")
    mocked.post(apply, json={"seqBefore": 1, "seqAfter": 2, "inserted": 1})
    change = Change(guid="g", kind="job", hlc=5, origin="o", int_id=1, body="{}")
    report = client().apply([change], parent_node="p")
    assert (report.inserted, report.seq_after) == (1, 2)
    assert len([c for c in mocked.calls if c.request.url.startswith(apply)]) == 2

    create = f"{BASE}/jobs/create"
    mocked.post(create, status=503, body="busy")
    with pytest.raises(RepositoryUnavailable):
        client().create_job(1)
    assert len([c for c in mocked.calls if c.request.url.startswith(create)]) == 1

    rows = f"{BASE}/replication/x-load/rows"
    mocked.post(rows, status=503, body="busy")
    with pytest.raises(RepositoryUnavailable):
        client().load_rows("load", [("g", "job", 1, None, None, "{}", None, 5, "o", 0)])
    assert len([c for c in mocked.calls if c.request.url.startswith(rows)]) == 1


@pytest.mark.parametrize("code, expected", [
    (498, NotAuthorized), (499, NotAuthorized), (403, NotAuthorized),
    (400, InvalidRequest), (413, InvalidRequest), (404, RepositoryNotFound),
    (500, RepositoryError), (503, RepositoryUnavailable),
])
def test_error_envelopes_become_repository_errors(mocked: responses.RequestsMock, code: int,
                                                  expected: type[Exception]) -> None:
    mocked.get(f"{BASE}/replication/x-node", json=envelope(code, f"failure {code}",
                                                            ["because"]))
    with pytest.raises(expected) as raised:
        client(retries=0).info()
    assert type(raised.value) is expected
    assert str(raised.value) == f"{BASE}: failure {code} (because)"


def test_unknown_job_is_an_invalid_request_and_unknown_service_not_found(
        mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/jobs/5", json=envelope(404, "Job 5 does not exist"))
    with pytest.raises(InvalidRequest, match="Job 5 does not exist"):
        client().get_job(5)
    with responses.RequestsMock() as mock:
        mock.get(BASE, json=envelope(404, "Service not found"))
        with pytest.raises(RepositoryNotFound):
            client()


def test_token_errors_at_open(mocked: responses.RequestsMock) -> None:
    with responses.RequestsMock() as mock:
        mock.get(BASE, json=envelope(499, "Token Required"))
        with pytest.raises(NotAuthorized, match="Token Required"):
            client()
    with responses.RequestsMock() as mock:
        mock.get(BASE, json=envelope(498, f"Invalid Token {TOKEN}"))
        with pytest.raises(NotAuthorized) as refused:
            client(token=TOKEN)
    assert TOKEN not in str(refused.value)


def test_answers_that_are_not_json_are_repository_errors(mocked: responses.RequestsMock
                                                         ) -> None:
    mocked.get(f"{BASE}/replication/x-node", body="<html>login</html>",
               content_type="text/html")
    with pytest.raises(RepositoryError, match="did not answer with JSON"):
        client().info()
    mocked.get(f"{BASE}/replication/x-changes", json={"changes": [["short"]],
                                                      "lastSeq": 1, "more": False})
    with pytest.raises(RepositoryError, match="malformed answer"):
        client().changes(0, limit=10)
    with responses.RequestsMock() as mock:
        mock.get(BASE, status=404, body="Not Found")
        with pytest.raises(RepositoryNotFound, match="HTTP 404"):
            client()


def test_redirects_are_reported_not_followed(mocked: responses.RequestsMock) -> None:
    secure = BASE.replace("http://", "https://")
    mocked.get(f"{BASE}/jobs", status=301, headers={"Location": secure + "/jobs?x=1"})
    with pytest.raises(RepositoryError, match=f"redirects to {secure}/jobs; use that"):
        client(token=TOKEN).jobs()
    assert len(mocked.calls) == 2


def test_replication_bodies_are_gzip_json(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/replication/x-nodes", json={"success": True},
                match=[matchers.header_matcher({"Content-Encoding": "gzip",
                                                "Content-Type": "application/json"})])
    client().save_node(NodeRecord(node_id="c1", name="Child"))
    sent = json.loads(gzip.decompress(mocked.calls[-1].request.body))
    assert sent["node"]["nodeId"] == "c1" and sent["node"]["name"] == "Child"


def test_load_rows_are_sent_in_pages(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/replication/x-load/rows", json={"success": True})
    rows = [(f"g{i}", "job", i, None, None, "{}", b"\x00", 5, "o", 0) for i in range(10)]
    client(page_size=4).load_rows("load", rows)
    bodies = [json.loads(gzip.decompress(c.request.body)) for c in mocked.calls[1:]]
    assert [len(body["rows"]) for body in bodies] == [4, 4, 2]
    assert bodies[0]["rows"][0][6] == "AA=="


def test_users_default_to_the_os_login_in_esri_form(mocked: responses.RequestsMock) -> None:
    assert RestRepository(BASE).user == getpass.getuser()
    mocked.post(f"{BASE}/jobs/3/notes/update", json={"success": True},
                match=[matchers.urlencoded_params_matcher({"user": "CORP|ann",
                                                           "notes": "hi"})])
    client(user="CORP\\ann").set_notes(3, "hi")
