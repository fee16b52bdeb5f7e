"""Web pages on other origins against a server without a token (SPEC §2.8): they can neither
change the repository nor read its replication feed or user list, whatever form the request
takes (Esri's GET writes, text/plain POSTs, JSONP, a rebound DNS name); scripts and
same-origin pages keep every documented form. Real servers on 127.0.0.1, real HTTP."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests

from tests.http_helpers import ADMIN, EDITOR, Client, error_code, make_repository, running_server
from wmx.repository.base import NodeRecord
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.rest import RestRepository
from wmx.server.run import ServerThread

pytestmark = pytest.mark.http

FOREIGN = "http://evil.example"
CROSS_SITE = {
    "a foreign Origin": {"Origin": FOREIGN},
    "an opaque Origin": {"Origin": "null"},
    "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
    "Sec-Fetch-Site same-site": {"Sec-Fetch-Site": "same-site"},
    "a foreign Referer": {"Referer": f"{FOREIGN}/page.html"},
}
"""What a browser sends with a request a page on another origin makes (Origin on every POST
and CORS request; Sec-Fetch-Site or only a Referer on a link, an image or a script tag)."""


@attrs.frozen
class Target:
    """A served parent with one job and one registered child, shared by the tests that only
    watch it refuse (each compares its state before and after)."""

    path: Path
    server: ServerThread
    job_id: int


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    path = make_repository(tmp_path_factory.mktemp("target"))
    with running_server(path) as running:
        register_child(running)
        yield Target(path, running, create_job(running))


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    return make_repository(tmp_path)


@pytest.fixture
def server(parent: Path) -> Iterator[ServerThread]:
    """A server of its own, for tests whose requests succeed and change it."""
    with running_server(parent) as running:
        yield running


def own_origin(server: ServerThread) -> str:
    return f"http://127.0.0.1:{server.port}"


def same_origin_marks(server: ServerThread) -> dict[str, dict[str, str]]:
    """What scripts and pages served from this server's own origin send."""
    return {"a script (no browser headers)": {},
            "its own Origin": {"Origin": own_origin(server)},
            "Sec-Fetch-Site same-origin": {"Sec-Fetch-Site": "same-origin"},
            "a typed address (Sec-Fetch-Site none)": {"Sec-Fetch-Site": "none"},
            "its own Referer": {"Referer": f"{server.url}/jobs"}}


def state(path: Path) -> tuple[list[tuple], list]:
    with EmbeddedRepository(path) as repository:
        return repository.all_rows(), repository.nodes()


def job_ids(path: Path) -> list[int]:
    with EmbeddedRepository(path) as repository:
        return repository.jobs()


def create_job(server: ServerThread) -> int:
    return Client(server.url).post("jobs/create", user=ADMIN, jobTypeId=1)["jobIds"][0]


def register_child(server: ServerThread) -> None:
    with RestRepository(server.url, user=ADMIN) as client:
        client.save_node(NodeRecord("child-1", "Child"))


# --- Esri's writes ----------------------------------------------------------------------------

@pytest.mark.parametrize("marks", CROSS_SITE.values(), ids=CROSS_SITE.keys())
def test_a_page_elsewhere_cannot_delete_a_job_through_esris_get_form(
        target: Target, marks: dict[str, str]) -> None:
    before = state(target.path)
    answer = Client(target.server.url).request("GET", f"jobs/{target.job_id}/delete",
                                               user=ADMIN, headers=marks).json()
    assert error_code(answer) == 403
    assert "another origin" in answer["error"]["message"]
    assert state(target.path) == before


@pytest.mark.parametrize("path, params", [
    ("jobs/create", {"jobTypeId": "1"}),
    ("jobs/{job}/update", {"name": "Defaced"}),
    ("jobs/{job}/notes/update", {"notes": "owned"}),
    ("jobs/close", {"jobs": "{job}"}),
    ("updateConfigProperties", {"properties": json.dumps({"AUTOCLOSEJOB": "true"})}),
])
def test_a_page_elsewhere_cannot_post_esri_writes(target: Target, path: str,
                                                  params: dict[str, str]) -> None:
    job_id = str(target.job_id)
    before = state(target.path)
    form = {"f": "json", "user": ADMIN,
            **{key: value.replace("{job}", job_id) for key, value in params.items()}}
    answer = requests.post(f"{target.server.url}/{path.replace('{job}', job_id)}", data=form,
                           headers={"Origin": FOREIGN}, timeout=10).json()
    assert error_code(answer) == 403
    assert state(target.path) == before


def test_a_page_elsewhere_cannot_upload_an_attachment(target: Target) -> None:
    before = state(target.path)
    answer = Client(target.server.url).request(
        "POST", f"jobs/{target.job_id}/attachments/add", user=ADMIN,
        files={"file": ("x.txt", b"x")}, headers={"Origin": FOREIGN}).json()
    assert error_code(answer) == 403
    assert state(target.path) == before


def test_scripts_and_same_origin_pages_keep_esris_get_writes(server: ServerThread,
                                                             parent: Path) -> None:
    client = Client(server.url)
    for name, marks in same_origin_marks(server).items():
        created = client.request("GET", "jobs/create", user=ADMIN, jobTypeId=1,
                                 headers=marks).json()
        assert error_code(created) is None, (name, created)
        job_id = created["jobIds"][0]
        deleted = client.request("GET", f"jobs/{job_id}/delete", user=ADMIN,
                                 headers=marks).json()
        assert deleted == {"success": True}, name
    assert job_ids(parent) == []


def test_a_page_elsewhere_may_still_read_esris_public_resources(target: Target) -> None:
    client = Client(target.server.url)
    for marks in CROSS_SITE.values():
        job = client.request("GET", f"jobs/{target.job_id}", headers=marks).json()
        assert job["id"] == target.job_id
        assert "currentVersion" in client.request("GET", headers=marks).json()


# --- the replication extension ----------------------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("replication/x-clear", b""),
    ("replication/x-clear", b"{}"),
    ("replication/x-apply", b'{"changes": [], "parentNode": "p"}'),
    ("replication/x-nodes", b'{"node": {"nodeId": "n", "name": "Intruder"}}'),
])
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None,
])
def test_replication_posts_that_are_not_json_are_refused(
        target: Target, path: str, body: bytes, content_type: str | None) -> None:
    """text/plain, form and body-less POSTs are what any page can send without a preflight."""
    before = state(target.path)
    headers = {"Content-Type": content_type} if content_type else {}
    answer = requests.post(f"{target.server.url}/{path}", params={"f": "json", "user": ADMIN},
                           data=body, headers=headers, timeout=10).json()
    assert error_code(answer) in (400, 403)
    assert "application/json" in json.dumps(answer)
    assert state(target.path) == before


@pytest.mark.parametrize("method, path", [
    ("POST", "replication/x-clear"), ("POST", "replication/x-apply"),
    ("GET", "replication/x-changes"), ("GET", "replication/x-node"),
    ("GET", "replication/x-nodes"), ("GET", "replication/x-snapshot"),
])
def test_replication_refuses_pages_elsewhere_even_in_json(target: Target, method: str,
                                                          path: str) -> None:
    before = state(target.path)
    for marks in CROSS_SITE.values():
        answer = requests.request(method, f"{target.server.url}/{path}",
                                  params={"f": "json", "user": ADMIN},
                                  json={"changes": [], "parentNode": "p"}
                                  if method == "POST" else None,
                                  headers=marks, timeout=10).json()
        assert error_code(answer) == 403, (path, marks)
    assert state(target.path) == before


def test_the_wmx_client_still_replicates_in_json(server: ServerThread, parent: Path) -> None:
    register_child(server)
    with RestRepository(server.url, user=ADMIN) as client:
        assert [node.name for node in client.nodes()] == ["Child"]
        assert client.changes(0, limit=10).changes
        client.clear_replication_info()
    assert state(parent)[1] == []


# --- JSONP ------------------------------------------------------------------------------------

PRIVATE_READS = ["replication/x-changes", "replication/x-nodes", "replication/x-node",
                 "replication/x-snapshot", "replication/x-conflicts", "replication/info",
                 "community/users", f"community/users/{ADMIN}", "community/groups",
                 "community/groups/1"]


@pytest.mark.parametrize("path", PRIVATE_READS)
def test_jsonp_never_carries_the_feed_or_the_user_lists(target: Target, path: str) -> None:
    response = Client(target.server.url).request("GET", path, user=ADMIN, callback="steal")
    assert not response.text.startswith("/**/")
    assert response.headers["Content-Type"].startswith("application/json")
    assert error_code(response.json()) == 403
    assert ADMIN not in response.text


@pytest.mark.parametrize("path, params", [
    ("jobs/create", {"jobTypeId": 1}),
    ("jobs/{job}/delete", {}),
    ("jobs/{job}/notes/update", {"notes": "owned"}),
])
def test_jsonp_never_runs_a_write(target: Target, path: str, params: dict[str, Any]) -> None:
    before = state(target.path)
    response = Client(target.server.url).request(
        "GET", path.replace("{job}", str(target.job_id)), user=ADMIN, callback="steal",
        **params)
    assert not response.text.startswith("/**/")
    assert error_code(response.json()) == 403
    assert state(target.path) == before


def test_jsonp_still_wraps_esris_public_reads(target: Target) -> None:
    client = Client(target.server.url)
    job_id = target.job_id
    for path in ("", "jobs", f"jobs/{job_id}", f"jobs/{job_id}/holds", "jobTypes/1"):
        response = client.request("GET", path, callback="dojo.io.script.jsonp_1",
                                  headers={"Sec-Fetch-Site": "cross-site"})
        assert re.fullmatch(r"/\*\*/dojo\.io\.script\.jsonp_1\(.*\);", response.text,
                            re.DOTALL), path
        assert response.headers["Content-Type"].startswith("application/javascript")


# --- the Host header --------------------------------------------------------------------------

def test_a_rebound_dns_name_reaches_nothing_without_a_token(target: Target) -> None:
    """DNS rebinding: the attacker's name now points at 127.0.0.1, so its page is
    "same-origin" with the server; only the Host header shows where it came from."""
    host = f"evil.example:{target.server.port}"
    before = state(target.path)
    client = Client(target.server.url)
    for method, path, params in (("GET", "replication/info", {}),
                                 ("GET", "community/users", {}),
                                 ("GET", "replication/x-changes", {}),
                                 ("POST", "jobs/create", {"jobTypeId": 1})):
        response = client.request(method, path, user=ADMIN, headers={
            "Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
            **params)
        assert error_code(response.json()) == 403, path
        assert "evil.example" not in response.text
    assert state(target.path) == before


def test_the_server_answers_to_its_loopback_names_and_names_itself_as_bound(
        target: Target) -> None:
    server = target.server
    client = Client(server.url)
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}",
                 f"LOCALHOST:{server.port}", f"[::1]:{server.port}"):
        answer = client.request("GET", "replication/info", user=ADMIN,
                                headers={"Host": host}).json()
        assert answer["nodes"][0]["serverURL"] == server.url, host


def test_a_dns_alias_the_server_was_started_with_is_answered(parent: Path) -> None:
    with ServerThread(parent, hosts=["GIS.example.com"]) as server:
        client = Client(server.url)
        alias = {"Host": f"gis.example.com:{server.port}"}
        answer = client.request("GET", "replication/info", user=ADMIN, headers=alias).json()
        assert answer["nodes"][0]["serverURL"] == server.url
        other = {"Host": f"gis.example.org:{server.port}"}
        assert error_code(client.request("GET", "jobs", headers=other).json()) == 403


def test_urls_the_server_builds_never_name_a_foreign_host(parent: Path) -> None:
    token = "t0ken-for-the-host-test"
    with running_server(parent, token=token) as server:
        answer = Client(server.url, token=token).request(
            "GET", "replication/info", user=ADMIN,
            headers={"Host": f"evil.example:{server.port}"})
        assert answer.json()["nodes"][0]["serverURL"] == server.url
        assert "evil.example" not in answer.text


# --- what refusals say ------------------------------------------------------------------------

HOSTILE_USER = "<img src=x onerror=alert(1)>"
PLANTED = [HOSTILE_USER, "Access revoked: call +1 555 0100 to restore it", "x" * 300,
           "tester\u202e"]
"""``user`` values a page could plant for the refusal to repeat: markup, prose, a long value,
a bidi control after a real name. A plain user name is repeated (SPEC §2.8 names the acting
user); these never are."""


@pytest.mark.parametrize("user", PLANTED)
@pytest.mark.parametrize("method, path, params", [
    ("POST", "jobs/create", {"jobTypeId": 1}),
    ("GET", "jobs/create", {"jobTypeId": 1}),
    ("GET", "visibleJobTypes", {}),
    ("GET", "replication/x-changes", {}),
    ("GET", "replication/info", {}),
    ("POST", "updateConfigProperties", {"properties": "{}"}),
])
def test_refusals_do_not_repeat_what_a_page_put_in_user(target: Target, method: str,
                                                        path: str, user: str,
                                                        params: dict[str, Any]) -> None:
    response = Client(target.server.url).request(method, path, user=user, **params)
    assert error_code(response.json()) == 403
    message = response.json()["error"]["message"]
    assert user not in message and user not in response.text
    assert "onerror" not in response.text and "555" not in response.text
    assert "is not a Workflow Manager user" in message


@pytest.mark.parametrize("path", ["replication/x-changes", "updateConfigProperties"])
def test_a_privilege_refusal_names_a_plain_user(target: Target, path: str) -> None:
    answer = Client(target.server.url).get(path, user=EDITOR, properties="{}")
    assert error_code(answer) == 403
    assert f"User '{EDITOR}'" in answer["error"]["message"]


def test_an_unknown_user_page_does_not_repeat_the_name(target: Target) -> None:
    response = Client(target.server.url).request("GET", f"community/users/{HOSTILE_USER}")
    assert error_code(response.json()) == 404
    assert "onerror" not in response.text


def test_an_unknown_job_property_is_not_repeated(target: Target) -> None:
    response = Client(target.server.url).request(
        "POST", f"jobs/{target.job_id}/update", user=ADMIN,
        properties=json.dumps({HOSTILE_USER: 1}))
    assert error_code(response.json()) == 400
    assert "onerror" not in response.text


# --- binding ----------------------------------------------------------------------------------

def test_wmx_serve_warns_when_it_listens_beyond_this_machine_without_a_token(
        parent: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "wmx", "serve", str(parent), "--host", "0.0.0.0", "--port",
         "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert "Serving Parent at http://" in line
    finally:
        process.kill()
        _, errors = process.communicate(timeout=20)
    assert "without a token" in errors and "--token-file" in errors
    assert "any Workflow Manager user" in errors


@pytest.mark.parametrize("host, token", [("127.0.0.1", None), ("localhost", None),
                                         ("0.0.0.0", "a-t0ken")])
def test_no_warning_on_loopback_or_with_a_token(parent: Path, host: str, token: str | None,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wmx.server")
    started = time.monotonic()
    with ServerThread(parent, host=host, token=token):
        pass
    assert time.monotonic() - started < 10
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_server_thread_warns_too_when_bound_beyond_this_machine(
        parent: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wmx.server")
    with ServerThread(parent, host="0.0.0.0"):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "without a token" in warnings[0]
