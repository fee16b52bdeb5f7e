"""Connected clusters over real HTTP: every repository is a WMServer service on its own port,
edited through Esri's documented endpoints and synchronized by the arcpy-compatible tools with
URL value tables in Esri's own sample format."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.http_helpers import ADMIN, Client, error_code, make_repository
from wmx import arcpy
from wmx.server.run import ServerThread

pytestmark = pytest.mark.http

TOKEN = "s3cret-cluster-token"


def start_serve_process(path: Path, token_file: Path) -> tuple[subprocess.Popen, str]:
    """``wmx serve`` as a real process on an ephemeral port; returns it and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wmx", "serve", str(path), "--port", "0", "--token-file",
         str(token_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"Serving .* at (http://\S+/WMServer)", line)
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"wmx serve did not start: {line!r}")


@pytest.fixture
def served_cluster(tmp_path, monkeypatch):
    """A parent and two children, each published by its own ``wmx serve`` process."""
    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("WMX_TOKEN", TOKEN)
    monkeypatch.setenv("WMX_USER", ADMIN)
    paths = {"Redlands": make_repository(tmp_path, "Redlands", "quick"),
             "Ohio_Repository": make_repository(tmp_path, "Ohio_Repository", "minimum"),
             "AZ_Repository": make_repository(tmp_path, "AZ_Repository", "minimum")}
    processes, urls = [], {}
    try:
        for name, path in paths.items():
            process, url = start_serve_process(path, token_file)
            processes.append(process)
            urls[name] = url
        yield urls
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
            process.stdout.close()


def _jobs_everywhere(urls):
    """{server name: {job id: job JSON with holds, notes and activity}} via Esri endpoints."""
    seen = {}
    for name, url in urls.items():
        client = Client(url, TOKEN)
        jobs = {}
        for job_id in client.get("jobs")["jobIds"]:
            job = client.get(f"jobs/{job_id}")
            job["holds"] = client.get(f"jobs/{job_id}/holds")["holds"]
            job["notes"] = client.get(f"jobs/{job_id}/notes")["notes"]
            job["activity"] = client.get(f"jobs/{job_id}/activity")["activity"]
            jobs[job_id] = job
        seen[name] = jobs
    return seen


def test_replicate_and_synchronize_a_served_cluster(served_cluster):
    urls = served_cluster
    parent, ohio, az = (Client(urls[n], TOKEN) for n in urls)
    created = parent.post("jobs/create", user=ADMIN, jobTypeId=1, numJobs=3)["jobIds"]

    replicate = arcpy.ReplicateJobData_wmx(
        urls["Redlands"], "Redlands",
        f"Ohio_Repository true {urls['Ohio_Repository']};\n"
        f"AZ_Repository true {urls['AZ_Repository']}")
    assert replicate.getOutput(0) == "0", replicate.getMessages()
    assert sorted(ohio.get("jobs")["jobIds"]) == sorted(created)

    ohio_job = ohio.post("jobs/create", user=ADMIN, jobTypeId=2, name="Ohio field check")
    ohio_job = ohio_job["jobIds"][0]
    assert ohio.post(f"jobs/{created[0]}/update", user=ADMIN,
                     properties='{"description": "edited in Ohio", "percent": 40}') == \
        {"success": True}
    hold = az.post(f"jobs/{created[1]}/holds/create", user=ADMIN, type=1,
                   comments="waiting for imagery")
    assert "holdId" in hold
    assert az.post(f"jobs/{created[1]}/notes/update", user=ADMIN, notes="AZ notes") == \
        {"success": True}
    assert az.post(f"jobs/{created[1]}/activity/logAction", user=ADMIN, type=7,
                   comments="crew scheduled") == {"success": True}
    assert parent.post(f"jobs/{created[2]}/delete", user=ADMIN) == {"success": True}

    sync = arcpy.SynchronizeJobData_wmx(
        urls["Redlands"], "Redlands",
        f"Ohio_Repository true {urls['Ohio_Repository']} 2011-08-08 12:00;"
        f"AZ_Repository true {urls['AZ_Repository']} 2011-08-08 12:00")
    assert sync.getOutput(0) == "0", sync.getMessages()

    everywhere = _jobs_everywhere(urls)
    reference = everywhere.pop("Redlands")
    assert sorted(reference) == sorted([created[0], created[1], ohio_job])
    for name, jobs in everywhere.items():
        assert jobs == reference, f"{name} disagrees with the parent"
    assert reference[created[0]]["description"] == "edited in Ohio"
    assert reference[created[0]]["percentageComplete"] == 40
    assert reference[created[1]]["notes"] == "AZ notes"
    assert [h["holdComments"] for h in reference[created[1]]["holds"]] == ["waiting for imagery"]
    assert any(a["message"] == "crew scheduled" for a in reference[created[1]]["activity"])
    assert error_code(az.get(f"jobs/{created[2]}")) == 404

    again = arcpy.SynchronizeJobData_wmx(urls["Redlands"], "Redlands", sync.getOutput(1))
    assert again.getOutput(0) == "0"
    assert "0 new, 0 changed, 0 deleted" in again.getMessages()


def test_a_token_is_needed_and_never_shown(served_cluster, monkeypatch):
    urls = served_cluster
    monkeypatch.setenv("WMX_TOKEN", "wrong-token")
    with pytest.raises(arcpy.ExecuteError) as caught:
        arcpy.SynchronizeJobData_wmx(urls["Redlands"], "Redlands",
                                     f"Ohio_Repository true {urls['Ohio_Repository']}")
    assert "ERROR 999982" in str(caught.value)
    assert "wrong-token" not in str(caught.value) and TOKEN not in str(caught.value)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_child_server_that_is_down_fails_alone_and_is_caught_up_later(tmp_path, monkeypatch):
    monkeypatch.setenv("WMX_USER", ADMIN)
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    parent_path = make_repository(tmp_path, "Redlands", "quick")
    ohio_path = make_repository(tmp_path, "Ohio", "minimum")
    az_path = make_repository(tmp_path, "Arizona", "minimum")
    az_port = _free_port()
    with ServerThread(parent_path) as parent, ServerThread(ohio_path) as ohio:
        az = ServerThread(az_path, port=az_port).start()
        az_url = az.url
        table = f"Ohio true {ohio.url};Arizona true {az_url}"
        assert arcpy.ReplicateJobData_wmx(parent.url, "Redlands", table).getOutput(0) == "0"
        az.stop()

        job = Client(ohio.url).post("jobs/create", user=ADMIN, jobTypeId=1)["jobIds"][0]
        down = arcpy.SynchronizeJobData_wmx(parent.url, "Redlands", table)

        assert down.getOutput(0) == "1"
        warning = down.getMessages(1)
        assert f"Arizona ({az_url}) failed" in warning
        assert "connect" in warning.lower()
        assert [row.status for row in down.last_sync] == ["OK", "FAILED"]
        assert job in Client(parent.url).get("jobs")["jobIds"]

        with ServerThread(az_path, port=az_port) as az_again:
            assert az_again.url == az_url
            back = arcpy.SynchronizeJobData_wmx(parent.url, "Redlands", down.getOutput(1))
            assert back.getOutput(0) == "0", back.getMessages()
            assert job in Client(az_url).get("jobs")["jobIds"]
