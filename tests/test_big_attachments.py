"""Big attachments over HTTP (SPEC §3 "Size"): an element any repository accepts is replicated
and synchronized to every HTTP child, its content split into parts (x-parts, x-content) so no
request or answer holds it whole; the parts protocol refuses what does not add up.

The tools run in a subprocess (:func:`tests.hostile_peer.run_tool`) so their peak memory is
measured; the children are real servers in this process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_peer import run_tool
from tests.http_helpers import ADMIN, Client, error_code, make_repository
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.rest import RestRepository
from wmx.repository.wire import INLINE_CONTENT_BYTES, PART_BYTES
from wmx.server import parts
from wmx.server.run import ServerThread

pytestmark = pytest.mark.http

MB = 1024 * 1024
ENV = {"WMX_USER": ADMIN}


def _content(size: int, seed: bytes) -> bytes:
    """``size`` bytes, distinct per seed, that gzip compresses quickly (the test is about
    size, not entropy; the checksum still catches any byte out of place)."""
    pattern = hashlib.sha256(seed).digest() * 4096
    return (pattern * (size // len(pattern) + 1))[:size]


def _served_content(url: str, job_id: int, filename: str) -> bytes:
    client = Client(url)
    found = [a for a in client.get(f"jobs/{job_id}/attachments")["attachments"]
             if a["filename"] == filename]
    assert len(found) == 1, found
    answer = client.request("GET", f"jobs/{job_id}/attachments/{found[0]['id']}/content",
                            f="file")
    return answer.content


def _parent_content(path: Path, job_id: int, filename: str) -> bytes:
    with EmbeddedRepository(path) as parent:
        found = [a for a in parent.attachments(job_id) if a.filename == filename]
        assert len(found) == 1, found
        return parent.attachment_content(job_id, found[0].id)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, int, dict[str, str], Path]]:
    """An embedded parent with one job, replicated to two served children (A and B); a
    third served repository (C) is not yet a replica."""
    parent = make_repository(tmp_path, "Parent")
    with EmbeddedRepository(parent) as store:
        job_id = store.create_job(1, user=ADMIN, name="survey with big files").id
    paths = {name: make_repository(tmp_path, name, "minimum") for name in ("A", "B", "C")}
    with ServerThread(paths["A"]) as a, ServerThread(paths["B"]) as b, \
            ServerThread(paths["C"]) as c:
        urls = {"A": a.url, "B": b.url, "C": c.url}
        done = run_tool("ReplicateJobData_wmx",
                        [str(parent), "Parent", f"A true {a.url};B true {b.url}"], ENV)
        assert done["status"] == "0", done["messages"]
        yield parent, job_id, urls, tmp_path


@pytest.mark.slow
def test_a_50_mb_attachment_added_through_esri_attachments_add_reaches_every_http_child(
        cluster) -> None:
    parent, job_id, urls, folder = cluster
    content = _content(50 * MB, b"fifty")
    added = Client(urls["A"]).request("POST", f"jobs/{job_id}/attachments/add", user=ADMIN,
                                      storageType=2, files={"file": ("big.bin", content)})
    assert "attachmentId" in added.json(), added.text

    sync = run_tool("SynchronizeJobData_wmx",
                    [str(parent), "Parent", f"A true {urls['A']};B true {urls['B']}"], ENV)
    assert sync["status"] == "0", sync["messages"]
    assert _parent_content(parent, job_id, "big.bin") == content
    assert _served_content(urls["B"], job_id, "big.bin") == content
    child_b = folder / "b.wmxdb"
    for location in {str(child_b), str(child_b.resolve())}:  # parts used are removed
        assert not list(parts.staging_for(location).folder.glob("*"))

    replicate = run_tool("ReplicateJobData_wmx", [str(parent), "Parent", f"C true {urls['C']}"],
                         ENV)
    assert replicate["status"] == "0", replicate["messages"]
    assert _served_content(urls["C"], job_id, "big.bin") == content
    print(f"\n50 MB: sync peak {sync['peak_mb']} MB in {sync['elapsed']:.1f} s, "
          f"replicate peak {replicate['peak_mb']} MB in {replicate['elapsed']:.1f} s")


@pytest.mark.slow
def test_a_200_mb_attachment_replicates_and_synchronizes_to_http_children_in_bounded_memory(
        cluster) -> None:
    parent, job_id, urls, _ = cluster
    size = 200 * MB
    content = _content(size, b"two hundred")
    with EmbeddedRepository(parent) as store:
        store.add_attachment(job_id, "huge.bin", content, user=ADMIN)

    replicate = run_tool("ReplicateJobData_wmx", [str(parent), "Parent", f"C true {urls['C']}"],
                         ENV)
    assert replicate["status"] == "0", replicate["messages"]
    sync = run_tool("SynchronizeJobData_wmx", [str(parent), "Parent", f"A true {urls['A']}"],
                    ENV)
    assert sync["status"] == "0", sync["messages"]
    for name in ("C", "A"):
        assert _served_content(urls[name], job_id, "huge.bin") == content, name
    print(f"\n200 MB: replicate peak {replicate['peak_mb']} MB in "
          f"{replicate['elapsed']:.1f} s, sync peak {sync['peak_mb']} MB in "
          f"{sync['elapsed']:.1f} s")
    for run in (replicate, sync):
        if run["peak_mb"] is not None:
            # The element itself is in memory (read from SQLite, then written); the wire adds
            # parts only, never a whole base64 or JSON copy of it.
            assert run["peak_mb"] <= 3 * size // MB + 100, run


# --- the parts protocol, adversarially --------------------------------------------------------

@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Client]]:
    with ServerThread(make_repository(tmp_path, "Lone")) as server:
        yield server.url, Client(server.url)


def _post_part(client: Client, **body: Any) -> Any:
    return client.request("POST", "replication/x-parts", user=ADMIN,
                          data=json.dumps(body),
                          headers={"Content-Type": "application/json"}).json()


def test_a_part_whose_id_names_a_path_is_refused(served) -> None:
    _, client = served
    data = base64.b64encode(b"x").decode()
    for bad_id in ("../../etc/passwd", "a" * 31, "A" * 32, "/tmp/x", ""):
        assert error_code(_post_part(client, id=bad_id, offset=0, data=data)) == 400, bad_id


def test_parts_sent_out_of_order_or_too_big_are_refused(served) -> None:
    _, client = served
    part_id = os.urandom(16).hex()
    data = base64.b64encode(b"abc").decode()
    assert error_code(_post_part(client, id=part_id, offset=10, data=data)) == 400
    assert error_code(_post_part(client, id=part_id, offset=-1, data=data)) == 400
    too_big = base64.b64encode(b"\0" * (PART_BYTES + 1)).decode()
    assert error_code(_post_part(client, id=part_id, offset=0, data=too_big)) == 400
    assert _post_part(client, id=part_id, offset=0, data=data) == {"success": True, "size": 3}
    # a replayed part overwrites the same bytes
    assert _post_part(client, id=part_id, offset=0, data=data) == {"success": True, "size": 3}


def test_a_row_whose_parts_do_not_match_its_checksum_is_refused_and_nothing_is_written(
        served) -> None:
    url, client = served
    with RestRepository(url, user=ADMIN) as lone:
        before = lone.info().seq
        node = lone.info().node_id
    part_id = os.urandom(16).hex()
    assert _post_part(client, id=part_id, offset=0,
                      data=base64.b64encode(b"tampered").decode())["success"]
    ref = {"id": part_id, "size": 8, "sha256": hashlib.sha256(b"original").hexdigest()}
    row = [os.urandom(16).hex(), "attachment", 900, None, None,
           '{"id": 900, "jobId": 1, "filename": "x.bin", "storageType": 2}', ref,
           1 << 40, node, 0]
    answer = client.request("POST", "replication/x-apply", user=ADMIN,
                            data=json.dumps({"changes": [row], "parentNode": node}),
                            headers={"Content-Type": "application/json"}).json()
    assert error_code(answer) == 400
    assert "checksum" in json.dumps(answer)
    with RestRepository(url, user=ADMIN) as lone:
        assert lone.info().seq == before


def test_a_client_that_does_not_ask_for_parts_gets_big_content_inline(served) -> None:
    url, client = served
    job = client.post("jobs/create", user=ADMIN, jobTypeId=1)["jobIds"][0]
    content = _content(INLINE_CONTENT_BYTES + 1, b"inline")
    client.request("POST", f"jobs/{job}/attachments/add", user=ADMIN, storageType=2,
                   files={"file": ("a.bin", content)})
    old_style = client.get("replication/x-changes", user=ADMIN, since=0, limit=1000)
    rows = [r for r in old_style["changes"] if r[1] == "attachment"]
    assert base64.b64decode(rows[0][6]) == content
    new_style = client.get("replication/x-changes", user=ADMIN, since=0, limit=1000,
                           contentParts="true")
    ref = next(r for r in new_style["changes"] if r[1] == "attachment")[6]
    assert ref["size"] == len(content) and ref["sha256"] == hashlib.sha256(content).hexdigest()
    with RestRepository(url, user=ADMIN) as lone:
        pulled = [c for c in lone.changes(0, limit=1000).changes if c.kind == "attachment"]
    assert pulled[0].content == content


def test_content_no_longer_kept_is_read_again_and_refused_once_it_has_changed(
        served, monkeypatch) -> None:
    monkeypatch.setattr(parts, "OUTGOING_SECONDS", -1.0)  # nothing kept: every part re-read
    url, client = served
    job = client.post("jobs/create", user=ADMIN, jobTypeId=1)["jobIds"][0]
    content = _content(INLINE_CONTENT_BYTES + PART_BYTES + 1, b"again")
    added = client.request("POST", f"jobs/{job}/attachments/add", user=ADMIN, storageType=2,
                           files={"file": ("b.bin", content)}).json()
    with RestRepository(url, user=ADMIN) as lone:
        pulled = [c for c in lone.changes(0, limit=1000).changes if c.kind == "attachment"]
    assert pulled[0].content == content

    listed = client.get("replication/x-changes", user=ADMIN, since=0, limit=1000,
                        contentParts="true")
    ref = next(r for r in listed["changes"] if r[1] == "attachment")[6]
    client.post(f"jobs/{job}/attachments/{added['attachmentId']}/delete", user=ADMIN)
    gone = client.get("replication/x-content", user=ADMIN, id=ref["id"], sha256=ref["sha256"])
    assert error_code(gone) == 404


def test_a_client_cannot_stage_more_than_the_servers_staging_budget(served, monkeypatch
                                                                    ) -> None:
    monkeypatch.setattr(parts, "MAX_STAGING_BYTES", 1000)
    _, client = served
    data = base64.b64encode(b"\0" * 600).decode()
    assert _post_part(client, id=os.urandom(16).hex(), offset=0, data=data)["success"]
    assert error_code(_post_part(client, id=os.urandom(16).hex(), offset=0, data=data)) == 400
