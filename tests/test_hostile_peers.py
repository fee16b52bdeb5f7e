"""A hostile or broken child listed before a healthy one: the hostile child fails alone, within
the replication timeout and with bounded memory, nothing it sent reaches another repository,
and the healthy child is synchronized.

Each sync runs in a subprocess (the arcpy-style tool, as a script would call it: see
:func:`tests.hostile_peer.run_tool`), so its peak resident memory is the run's own; the
servers and the hostile peer run here.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_peer import MODES, TAMPERED, HostilePeer, run_tool
from tests.http_helpers import ADMIN, Client, make_repository
from wmx import arcpy
from wmx.repository import open_repository, transport
from wmx.repository.base import RepositoryError, RepositoryTimeout
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.rest import RestRepository
from wmx.repository.wire import INLINE_CONTENT_BYTES
from wmx.server.run import ServerThread

pytestmark = pytest.mark.http

TIMEOUT_SECONDS = 2.0
"""The replication timeout these runs use (``WMX_TIMEOUT``)."""
PEAK_RSS_MB = 100
"""SPEC §4: no peer's answer may raise a run's memory past about 100 MB."""
SLACK_SECONDS = 8.0
"""Beyond the timeout: the healthy child's sync and the interpreter's start on a busy machine."""

def _names(client: Client) -> set[str]:
    return {client.get(f"jobs/{job_id}")["name"] for job_id in client.get("jobs")["jobIds"]}


def _parent_names(path: Path) -> set[str]:
    with EmbeddedRepository(path) as parent:
        return {parent.get_job(job_id).name for job_id in parent.jobs()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """An embedded parent with two served children, replicated once for every mode."""
    folder = tmp_path_factory.mktemp("hostile")
    parent = make_repository(folder, "Parent")
    paths = [make_repository(folder, name, "minimum") for name in ("Suspect", "Healthy")]
    with ServerThread(paths[0]) as suspect, ServerThread(paths[1]) as healthy:
        previous = os.environ.get("WMX_USER")
        os.environ["WMX_USER"] = ADMIN
        try:
            replicate = arcpy.ReplicateJobData_wmx(
                str(parent), "Parent", f"Suspect true {suspect.url};Healthy true {healthy.url}")
        finally:
            if previous is None:
                del os.environ["WMX_USER"]
            else:
                os.environ["WMX_USER"] = previous
        assert replicate.getOutput(0) == "0", replicate.getMessages()
        yield parent, suspect.url, healthy.url


def _sync(parent: Path, rows: str) -> dict[str, Any]:
    return run_tool("SynchronizeJobData_wmx", [str(parent), "Parent", rows],
                    {"WMX_USER": ADMIN, "WMX_TIMEOUT": str(TIMEOUT_SECONDS)})


FIGURES: dict[str, dict[str, Any]] = {}


@pytest.mark.parametrize("mode", MODES)
def test_a_hostile_child_fails_alone_within_its_timeout_and_the_healthy_child_is_synchronized(
        cluster, mode):
    parent, suspect_url, healthy_url = cluster
    suspect, healthy = Client(suspect_url), Client(healthy_url)
    hostile_job = f"written at the suspect ({mode})"
    healthy_job = f"written at the healthy child ({mode})"
    parent_job = f"written at the parent ({mode})"
    assert "jobIds" in suspect.post("jobs/create", user=ADMIN, jobTypeId=1, name=hostile_job)
    assert "jobIds" in healthy.post("jobs/create", user=ADMIN, jobTypeId=1, name=healthy_job)
    with EmbeddedRepository(parent) as store:
        store.create_job(1, user=ADMIN, name=parent_job)

    with HostilePeer(suspect_url, mode) as peer:
        started = time.monotonic()
        run = _sync(parent, f"Suspect true {peer.url};Healthy true {healthy_url}")
        wall = time.monotonic() - started
    FIGURES[mode] = {"peak_mb": run["peak_mb"], "failed_after_s": run["failed_after"],
                     "wall_s": round(wall, 1), "message": run["messages"]}
    print(f"\n{mode}: {json.dumps(FIGURES[mode])}")

    assert run["status"] not in ("0", "raised"), run["messages"]
    assert "Suspect" in run["messages"] and "failed" in run["messages"].lower()
    assert run["failed_after"] is not None
    assert run["failed_after"] <= TIMEOUT_SECONDS + SLACK_SECONDS, run
    assert run["elapsed"] <= TIMEOUT_SECONDS + 2 * SLACK_SECONDS, run
    if run["peak_mb"] is not None:
        assert run["peak_mb"] <= PEAK_RSS_MB, run
    # Nothing the suspect sent reached another repository...
    assert hostile_job not in _parent_names(parent)
    assert hostile_job not in _names(healthy)
    # ...and the healthy child was synchronized both ways.
    assert parent_job in _names(healthy)
    assert healthy_job in _parent_names(parent)


def test_a_silent_server_is_asked_once_and_reported_as_a_timeout(tmp_path) -> None:
    with ServerThread(make_repository(tmp_path, "Quiet", "minimum")) as server, \
            HostilePeer(server.url, "silent") as peer:
        started = time.monotonic()
        with pytest.raises(RepositoryTimeout, match="did not answer within 1 s"):
            RestRepository(peer.url, user=ADMIN, timeout=1.0, retries=3)
        elapsed = time.monotonic() - started
    assert len(peer.requests) == 1, peer.requests
    assert elapsed < 1.8


def test_https_to_a_plain_http_server_fails_within_the_connect_limit(tmp_path, monkeypatch
                                                                     ) -> None:
    monkeypatch.setattr(transport, "CONNECT_SECONDS", 1.0)  # 10 s in production
    with ServerThread(make_repository(tmp_path, "Plain", "minimum")) as server:
        started = time.monotonic()
        with pytest.raises(RepositoryTimeout):
            RestRepository("https://" + server.url.split("://", 1)[1], user=ADMIN,
                           timeout=30.0, retries=3)
        assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("mode", ("huge", "gzip-bomb", "slow-drip"))
def test_a_hostile_server_that_passes_for_an_esri_server_is_read_within_the_same_bounds(
        tmp_path, monkeypatch, mode) -> None:
    monkeypatch.setenv("WMX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WMX_TIMEOUT", str(TIMEOUT_SECONDS))
    with ServerThread(make_repository(tmp_path, "Pretender", "minimum")) as server, \
            HostilePeer(server.url, mode, route="wmserver", as_esri=True) as peer:
        started = time.monotonic()
        with pytest.raises(RepositoryError, match=r"too large|larger than|did not answer within"):
            open_repository(peer.url, user=ADMIN)
        assert time.monotonic() - started < TIMEOUT_SECONDS + 1.5
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*.wmxdb"))


def test_a_child_answering_an_impossible_apply_report_fails_alone(cluster) -> None:
    parent, suspect_url, healthy_url = cluster
    parent_job = "written at the parent (impossible report)"
    with EmbeddedRepository(parent) as store:
        store.create_job(1, user=ADMIN, name=parent_job)
    with HostilePeer(suspect_url, "out-of-range", route="replication/x-apply") as peer:
        run = _sync(parent, f"Suspect true {peer.url};Healthy true {healthy_url}")
    assert run["status"] not in ("0", "raised"), run["messages"]
    assert "Suspect" in run["messages"] and "ApplyReport" in run["messages"], run["messages"]
    assert parent_job in _names(Client(healthy_url))
    with EmbeddedRepository(parent) as store:  # the suspect's checkpoints stay storable
        assert all(0 <= node.pull_seq < 2 ** 63 for node in store.nodes())


def test_a_child_whose_content_parts_do_not_match_their_checksum_fails_alone(cluster) -> None:
    parent, suspect_url, healthy_url = cluster
    suspect = Client(suspect_url)
    job = suspect.post("jobs/create", user=ADMIN, jobTypeId=1, name="carries a big file")
    job_id = job["jobIds"][0]
    content = bytes(range(256)) * (INLINE_CONTENT_BYTES // 256 + 1)
    suspect.request("POST", f"jobs/{job_id}/attachments/add", user=ADMIN, storageType=2,
                    files={"file": ("tampered.bin", content)})
    with HostilePeer(suspect_url, TAMPERED, route="replication/x-content") as peer:
        run = _sync(parent, f"Suspect true {peer.url};Healthy true {healthy_url}")
    assert run["status"] not in ("0", "raised"), run["messages"]
    assert "checksum" in run["messages"], run["messages"]
    assert "carries a big file" not in _parent_names(parent)


def test_a_tls_handshake_dripped_byte_by_byte_fails_at_the_deadline() -> None:
    """Each byte arrives well within a socket read's timeout, yet the handshake as a whole
    must end within the request's deadline, once (a 16 KB record at 0.2 s a byte would take an
    hour; retried, it would cost the timeout four times)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KB...
            while not stop.wait(0.2):
                try:
                    connection.sendall(b"\x00")  # ...that never completes
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(RepositoryTimeout):
            RestRepository(f"https://127.0.0.1:{listener.getsockname()[1]}/arcgis/rest/"
                           "services/Drip/WMServer", user=ADMIN, timeout=1.0)
        assert time.monotonic() - started < 2.0
    finally:
        stop.set()
        listener.close()
        thread.join(5)
