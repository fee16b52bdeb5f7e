"""What the server refuses: missing or wrong tokens, unprivileged replication, oversized or
malformed bodies, hostile names, and what it never reveals (tokens, tracebacks)."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest
import requests

from tests.http_helpers import ADMIN, EDITOR, Client, error_code, make_repository, running_server
from wmx.repository.base import NotAuthorized
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.rest import RestRepository
from wmx.tokens import read_token_file

pytestmark = pytest.mark.http

TOKEN = "s3cret-T0ken-value"


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    return make_repository(tmp_path)


def _state(path: Path) -> tuple[list[tuple], list]:
    with EmbeddedRepository(path) as repository:
        return repository.all_rows(), repository.nodes()


# --- tokens -----------------------------------------------------------------------------------

def test_a_secured_server_wants_the_token_on_every_request(parent: Path) -> None:
    before = _state(parent)
    with running_server(parent, token=TOKEN) as server:
        anonymous = Client(server.url)
        assert anonymous.get()["error"] == {"code": 499, "message": "Token Required",
                                            "details": ["Token Required"]}
        assert error_code(anonymous.post("jobs/create", user=ADMIN, jobTypeId=1)) == 499
        wrong = Client(server.url, token="guess")
        assert error_code(wrong.get("jobs")) == 498
        assert error_code(wrong.post("jobs/create", user=ADMIN, jobTypeId=1)) == 498
        assert error_code(anonymous.request("GET", "jobs", headers={
            "X-Esri-Authorization": "Bearer guess"}).json()) == 498
        assert _state(parent) == before

        assert Client(server.url, token=TOKEN).get("jobs") == {"jobIds": []}
        for header in ("X-Esri-Authorization", "Authorization"):
            answer = anonymous.request("GET", "jobs",
                                       headers={header: f"Bearer {TOKEN}"}).json()
            assert answer == {"jobIds": []}
        form_token = requests.post(f"{server.url}/jobs", data={"f": "json", "token": TOKEN},
                                   timeout=10).json()
        assert form_token == {"jobIds": []}


def test_the_token_never_reaches_logs_or_answers(parent: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_server(parent, token=TOKEN) as server:
        # Esri's clients put the token in the query string; the server must not log it.
        good = Client(server.url, token=TOKEN)
        bad = Client(server.url, token=TOKEN + "x")
        answers = [good.get("jobs"), good.get("jobs/99"), bad.get("jobs"),
                   good.post("jobs/create", user=ADMIN, jobTypeId=1),
                   good.get("replication/x-changes", user=ADMIN)]
        server_records = [record.getMessage() for record in caplog.records
                          if not record.name.startswith("urllib3")]
        caplog.clear()
        # wmx's own client sends it in a header, so not even urllib3's debug log shows it.
        with RestRepository(server.url, token=TOKEN, user=ADMIN) as client:
            client.info()
        with pytest.raises(NotAuthorized) as refused:
            RestRepository(server.url, token=TOKEN + "x", user=ADMIN)
    assert any("/jobs" in message for message in server_records)
    assert not [message for message in server_records if TOKEN in message]
    assert caplog.records and TOKEN not in caplog.text
    assert all(TOKEN not in json.dumps(answer) for answer in answers)
    assert TOKEN not in str(refused.value)


def test_token_file_contents_are_stripped(tmp_path: Path) -> None:
    token_file = tmp_path / "token.txt"
    token_file.write_text(f"  {TOKEN}\n", encoding="utf-8")
    assert read_token_file(token_file) == TOKEN
    token_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        read_token_file(token_file)


# --- privileges -------------------------------------------------------------------------------

REPLICATION_WRITES = [
    ("replication/x-apply", {"changes": [], "parentNode": "p"}),
    ("replication/x-load/begin", {}),
    ("replication/x-load/abort", {"loadId": "x"}),
    ("replication/x-nodes", {"node": {"nodeId": "n", "name": "Intruder"}}),
    ("replication/x-clear", {}),
]


@pytest.mark.parametrize("user", [EDITOR, "ghost", None])
def test_replication_writes_need_manage_replication(parent: Path, user: str | None) -> None:
    before = _state(parent)
    with running_server(parent) as server:
        for path, body in REPLICATION_WRITES:
            params = {"f": "json", **({"user": user} if user else {})}
            answer = requests.post(f"{server.url}/{path}", params=params, json=body,
                                   timeout=10).json()
            assert error_code(answer) in (400, 403), path
        reads = Client(server.url).get("replication/x-changes", **({"user": user} if user
                                                                     else {}))
        assert error_code(reads) in (400, 403)
    assert _state(parent) == before


def test_an_administrator_may_replicate(parent: Path) -> None:
    with running_server(parent) as server:
        answer = requests.post(f"{server.url}/replication/x-nodes",
                               params={"f": "json", "user": ADMIN},
                               json={"node": {"nodeId": "n1", "name": "Child"}},
                               timeout=10).json()
        assert answer == {"success": True}
    assert [node.name for node in _state(parent)[1]] == ["Child"]


def test_replication_writes_refuse_get(parent: Path) -> None:
    with running_server(parent) as server:
        assert error_code(Client(server.url).get("replication/x-clear", user=ADMIN)) == 405


# --- bodies -----------------------------------------------------------------------------------

def test_oversized_bodies_are_refused_unread(parent: Path) -> None:
    before = _state(parent)
    with running_server(parent, max_body_bytes=4096) as server:
        big = {"changes": [], "parentNode": "p", "padding": "x" * 10_000}
        answer = requests.post(f"{server.url}/replication/x-apply",
                               params={"f": "json", "user": ADMIN}, json=big,
                               timeout=10).json()
        assert error_code(answer) == 413
        bomb = gzip.compress(b"[" + b"0," * 100_000 + b"0]")
        answer = requests.post(f"{server.url}/replication/x-apply",
                               params={"f": "json", "user": ADMIN}, data=bomb,
                               headers={"Content-Encoding": "gzip",
                                        "Content-Type": "application/json"},
                               timeout=10).json()
        assert error_code(answer) == 413
        upload = Client(server.url).request("POST", "jobs/1/attachments/add", user=ADMIN,
                                            files={"file": ("big.bin", b"0" * 10_000)})
        assert error_code(upload.json()) == 413
    assert _state(parent) == before


@pytest.mark.parametrize("body, headers", [
    (b"{not json", {}),
    (b"[1, 2]", {}),
    (b'{"changes": [["too", "short"]], "parentNode": "p"}', {}),
    (b'{"changes": [], "parentNode": 5}', {}),
    (b'{"changes": [], "parentNode": "p", "policy": "loudest"}', {}),
    (b"\x1f\x8b not really gzip", {"Content-Encoding": "gzip"}),
    (b"data", {"Content-Encoding": "br"}),
])
def test_malformed_bodies_get_400_not_500(parent: Path, body: bytes,
                                          headers: dict[str, str]) -> None:
    with running_server(parent) as server:
        answer = requests.post(f"{server.url}/replication/x-apply",
                               params={"f": "json", "user": ADMIN}, data=body,
                               headers={"Content-Type": "application/json", **headers},
                               timeout=10).json()
        assert error_code(answer) == 400, answer
        assert "application/json" not in json.dumps(answer)  # refused for its body


def test_malformed_rows_in_a_load_change_nothing(parent: Path) -> None:
    before = _state(parent)
    with running_server(parent) as server:
        post = Client(server.url).session.post
        params = {"f": "json", "user": ADMIN}
        load_id = post(f"{server.url}/replication/x-load/begin", params=params, json={},
                       timeout=10).json()["loadId"]
        row = ["g", "job", 1, None, None, "{}", "not base64!", 5, "o", 0]
        answer = post(f"{server.url}/replication/x-load/rows", params=params,
                      json={"loadId": load_id, "rows": [row]}, timeout=10).json()
        assert error_code(answer) == 400
        assert "content" in answer["error"]["details"][0]
    assert _state(parent)[0] == before[0]


# --- hostile names and internal errors -------------------------------------------------------

def test_path_like_names_stay_names(parent: Path, tmp_path: Path) -> None:
    with running_server(parent) as server:
        client = Client(server.url)
        job_id = client.post("jobs/create", user=ADMIN, jobTypeId=1)["jobIds"][0]
        upload = client.request("POST", f"jobs/{job_id}/attachments/add", user=ADMIN,
                                files={"file": ("../../escape.txt", b"data")}).json()
        stored = client.get(f"jobs/{job_id}/attachments/{upload['attachmentId']}")
        assert stored["filename"] == "escape.txt"
        windows = client.request("POST", f"jobs/{job_id}/attachments/add", user=ADMIN,
                                 files={"file": ("..\\..\\boot.ini", b"x")}).json()
        name = client.get(f"jobs/{job_id}/attachments/{windows['attachmentId']}")["filename"]
        assert name.endswith("boot.ini") and "\\" not in name and "/" not in name
        linked = client.post(f"jobs/{job_id}/attachments/add", user=ADMIN, storageType=1,
                             filePath="/etc/passwd")["attachmentId"]
        assert error_code(client.get(f"jobs/{job_id}/attachments/{linked}/content",
                                     f="file")) == 400
        assert error_code(client.post(f"jobs/{job_id}/extendedProperties/..;rm/add",
                                      user=ADMIN)) == 400
        traversal = requests.get(f"{server.url}/../../../etc/passwd", timeout=10)
        assert error_code(traversal.json()) == 404
    assert not (tmp_path.parent / "escape.txt").exists()
    assert not (Path.cwd() / "escape.txt").exists()


def test_internal_errors_answer_500_without_details(parent: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: EmbeddedRepository) -> list[int]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(EmbeddedRepository, "jobs", explode)
    with running_server(parent) as server:
        response = Client(server.url).request("GET", "jobs")
    assert response.status_code == 200
    assert error_code(response.json()) == 500
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
