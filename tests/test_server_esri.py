"""Esri's documented WMServer surface, served by wmx and spoken to over real HTTP."""

from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import requests

from tests.http_helpers import ADMIN, EDITOR, Client, error_code, make_repository, running_server
from wmx.repository.base import RepositoryUnavailable
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.jobs import JobTracking

pytestmark = pytest.mark.http


@attrs.define
class Service:
    client: Client
    path: Path
    url: str

    def repository(self) -> EmbeddedRepository:
        return EmbeddedRepository(self.path)

    def create_job(self, **params: object) -> int:
        answer = self.client.post("jobs/create", user=ADMIN, jobTypeId=1, **params)
        return answer["jobIds"][0]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    path = make_repository(tmp_path)
    with running_server(path) as server:
        yield Service(Client(server.url), path, server.url)


# --- service root, formats, paths ---------------------------------------------------------

def test_root_lists_the_documented_configuration(service: Service) -> None:
    root = service.client.get()
    for key in ("currentVersion", "serviceDescription", "configProperties", "jobTypes",
                "jobStatuses", "jobPriorities", "activityTypes", "holdTypes",
                "dataWorkspaces", "publicQueries"):
        assert key in root
    assert {"id", "name", "description", "category", "state"} <= set(root["jobTypes"][0])
    assert {"id", "name", "description", "caption"} <= set(root["jobStatuses"][0])
    assert {"value", "name", "description"} <= set(root["jobPriorities"][0])
    assert root["configProperties"]["JOB_ID_START_VALUE"] == "1"
    assert root["dataWorkspaces"] == []


def test_pjson_is_indented_json_and_jsonp_wraps_the_answer(service: Service) -> None:
    pretty = service.client.request("GET", f="pjson").text
    assert pretty.startswith("{\n  ") and json.loads(pretty)["currentVersion"]
    wrapped = service.client.request("GET", "jobs", callback="handle").text
    assert wrapped.startswith("/**/handle(") and wrapped.endswith(");")
    hostile = service.client.request("GET", "jobs", callback="alert(1)//").text
    assert json.loads(hostile) == {"jobIds": []}


def test_paths_match_case_insensitively(service: Service) -> None:
    job_id = service.create_job()
    upper = service.url.upper().replace("HTTP://", "http://")
    assert Client(upper).get(f"JOBS/{job_id}")["id"] == job_id
    for spelling in ("visibleJobTypes", "visiblejobtypes", "VISIBLEJOBTYPES"):
        assert service.client.get(spelling, user=ADMIN)["jobTypes"]


def test_reads_and_writes_accept_get_and_post(service: Service) -> None:
    by_get = service.client.get("jobs/create", user=ADMIN, jobTypeId=1)["jobIds"][0]
    by_post = service.client.post("jobs/create", user=ADMIN, jobTypeId=1)["jobIds"][0]
    assert service.client.post(f"jobs/{by_get}")["id"] == by_get
    assert service.client.get("jobs")["jobIds"] == [by_get, by_post]


def test_unknown_paths_methods_and_formats_get_the_error_envelope(service: Service) -> None:
    response = service.client.request("GET", "no/such/thing")
    assert response.status_code == 200 and error_code(response.json()) == 404
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert error_code(service.client.get("jobs/12345")) == 404
    other_service = service.url.replace("/Parent/", "/Other/")
    assert error_code(Client(other_service).get()) == 404
    assert error_code(requests.put(service.url, timeout=10).json()) == 405
    assert error_code(service.client.get("jobs", f="xml")) == 400


def test_large_answers_are_gzipped_when_the_client_accepts_it(service: Service) -> None:
    response = requests.get(service.url, params={"f": "json"},
                            headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
    assert response.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.raw.read()))["jobTypes"]
    plain = requests.get(service.url, params={"f": "json"},
                         headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in plain.headers


# --- jobs ---------------------------------------------------------------------------------------

def test_create_jobs_with_fields_and_many_at_once(service: Service) -> None:
    aoi = {"rings": [[[0, 0], [0, 1], [1, 1], [0, 0]]], "spatialReference": {"wkid": 4326}}
    first = service.create_job(name="Survey", dueDate=1_700_000_000_000, priority=3,
                               aoi=json.dumps(aoi), assignedType=1, assignedTo="DOMAIN|bob")
    job = service.client.get(f"jobs/{first}")
    assert (job["name"], job["dueDate"], job["priority"]) == ("Survey", 1_700_000_000_000, 3)
    assert job["aoi"] == aoi and job["assignedTo"] == "DOMAIN\\bob"
    assert job["createdBy"] == ADMIN and job["childJobIds"] == []
    many = service.client.post("jobs/create", user=ADMIN, jobTypeId=2, numJobs=3)["jobIds"]
    assert len(many) == 3
    explicit = service.client.post("jobs/create", user=ADMIN, jobTypeId=1, id=500)["jobIds"]
    assert explicit == [500]
    child = service.create_job(parentJobId=first)
    assert service.client.get(f"jobs/{first}")["childJobIds"] == [child]


def test_create_refuses_bad_parameters_and_writes_nothing(service: Service) -> None:
    with service.repository() as repository:
        before = repository.info().seq
    assert error_code(service.client.post("jobs/create", user=ADMIN)) == 400
    assert error_code(service.client.post("jobs/create", user=ADMIN, jobTypeId="x")) == 400
    assert error_code(service.client.post("jobs/create", user=ADMIN, jobTypeId=99)) == 400
    assert error_code(service.client.post("jobs/create", user=ADMIN, jobTypeId=1,
                                          dueDate="tomorrow")) == 400
    assert error_code(service.client.post("jobs/create", jobTypeId=1)) == 400
    assert error_code(service.client.post("jobs/create", user="nobody", jobTypeId=1)) == 403
    with service.repository() as repository:
        assert repository.info().seq == before


def test_update_with_properties_and_individual_parameters(service: Service) -> None:
    job_id = service.create_job(dueDate=1_700_000_000_000)
    assert service.client.post(f"jobs/{job_id}/update", user=ADMIN,
                               properties=json.dumps({"name": "Renamed", "percent": 40,
                                                      "status": 3})) == {"success": True}
    assert service.client.post(f"jobs/{job_id}/update", user=ADMIN, description="text",
                               clearDueDate="true")["success"]
    job = service.client.get(f"jobs/{job_id}")
    assert (job["name"], job["percentageComplete"], job["status"]) == ("Renamed", 40, 3)
    assert job["description"] == "text" and job["dueDate"] is None
    properties_win = service.client.post(f"jobs/{job_id}/update", user=ADMIN, name="param",
                                         properties=json.dumps({"name": "json"}))
    assert properties_win["success"] and service.client.get(f"jobs/{job_id}")["name"] == "json"
    assert error_code(service.client.post(f"jobs/{job_id}/update", user=ADMIN,
                                          properties=json.dumps({"stage": 5}))) == 400
    assert error_code(service.client.post(f"jobs/{job_id}/update", user=ADMIN,
                                          properties="{not json")) == 400
    assert error_code(service.client.post("jobs/999/update", user=ADMIN, name="x")) == 404


def test_assign_and_unassign_one_or_many(service: Service) -> None:
    first, second = service.create_job(), service.create_job()
    assert service.client.post(f"jobs/{first}/assign", user=ADMIN, assignedType=1,
                               assignedTo=EDITOR)["success"]
    assert service.client.get(f"jobs/{first}")["assignedTo"] == EDITOR
    assert service.client.post("jobs/assign", user=ADMIN, jobs=f"{first},{second}",
                               assignedType=2, assignedTo="Editors")["success"]
    assert service.client.get(f"jobs/{second}")["assignedType"] == 2
    assert service.client.post(f"jobs/{first}/unassign", user=ADMIN)["success"]
    assert service.client.post("jobs/unassign", user=ADMIN, jobs=str(second))["success"]
    assert service.client.get(f"jobs/{second}")["assignedTo"] is None
    assert error_code(service.client.post(f"jobs/{first}/assign", user=ADMIN,
                                          assignedType=7, assignedTo="x")) == 400


def test_close_reopen_and_delete(service: Service) -> None:
    first, second, third = (service.create_job() for _ in range(3))
    assert service.client.post(f"jobs/{first}/close", user=ADMIN)["success"]
    assert service.client.get(f"jobs/{first}")["stage"] == 5
    assert service.client.post("jobs/close", user=ADMIN, jobs=f"{second},{third}")["success"]
    assert service.client.post("jobs/reopen", user=ADMIN, jobs=f"{first},{second}")["success"]
    assert service.client.get(f"jobs/{first}")["stage"] == 2
    assert error_code(service.client.post("jobs/delete", user=ADMIN,
                                          jobs=f"{second},777")) == 404
    assert service.client.get("jobs")["jobIds"] == [first, second, third]
    assert service.client.post(f"jobs/{first}/delete", user=ADMIN, deleteHistory="true")
    assert service.client.post("jobs/delete", user=ADMIN, jobs=f"{second},{third}")["success"]
    assert service.client.get("jobs")["jobIds"] == []
    assert error_code(service.client.get(f"jobs/{first}")) == 404


def test_a_multi_job_write_that_fails_part_way_changes_no_job(service: Service,
                                                               monkeypatch) -> None:
    """Found by the server fuzzing review: ``jobs/delete`` (and close, reopen) wrote one
    transaction per job, so a store failure at the second job left the first deleted."""
    first, second = service.create_job(), service.create_job()
    delete_job = EmbeddedRepository.delete_job

    def fail_at_the_second(self, job_id: int, **kwargs) -> None:
        if job_id == second:
            raise RepositoryUnavailable("the disk went away")
        delete_job(self, job_id, **kwargs)

    monkeypatch.setattr(EmbeddedRepository, "delete_job", fail_at_the_second)
    answer = service.client.post("jobs/delete", user=ADMIN, jobs=f"{first},{second}")
    assert error_code(answer) == 503
    assert service.client.get("jobs")["jobIds"] == [first, second]


# --- holds, notes, activity -------------------------------------------------------------------

def test_holds_create_list_get_and_release(service: Service) -> None:
    job_id = service.create_job()
    hold_id = service.client.post(f"jobs/{job_id}/holds/create", user=ADMIN, type=2,
                                  comments="waiting")["holdId"]
    hold = service.client.get(f"jobs/{job_id}/holds/{hold_id}")
    assert (hold["type"], hold["holdComments"], hold["releaseDate"]) == (2, "waiting", None)
    assert [h["id"] for h in service.client.get(f"jobs/{job_id}/holds")["holds"]] == [hold_id]
    assert service.client.post(f"jobs/{job_id}/holds/{hold_id}/release", user=ADMIN,
                               comments="done")["success"]
    released = service.client.get(f"jobs/{job_id}/holds/{hold_id}")
    assert released["releasedBy"] == ADMIN and isinstance(released["releaseDate"], int)
    assert error_code(service.client.post(f"jobs/{job_id}/holds/{hold_id}/release",
                                          user=ADMIN)) == 400
    assert error_code(service.client.get(f"jobs/{job_id}/holds/999")) == 404
    assert error_code(service.client.post(f"jobs/{job_id}/holds/create", user=ADMIN,
                                          type=99)) == 400


def test_notes_are_one_text_replaced_wholesale(service: Service) -> None:
    job_id = service.create_job()
    assert service.client.get(f"jobs/{job_id}/notes") == {"notes": ""}
    assert service.client.post(f"jobs/{job_id}/notes/update", user=ADMIN,
                               notes="first line")["success"]
    service.client.post(f"jobs/{job_id}/notes/update", user=ADMIN, notes="second")
    assert service.client.get(f"jobs/{job_id}/notes") == {"notes": "second"}


def test_activity_log_and_log_action(service: Service) -> None:
    job_id = service.create_job()
    assert service.client.post(f"jobs/{job_id}/activity/logAction", user=ADMIN, type=7,
                               comments="checked")["success"]
    entries = service.client.get(f"jobs/{job_id}/activity")["activity"]
    assert {"type", "user", "date", "message"} <= set(entries[-1])
    assert (entries[-1]["type"], entries[-1]["message"]) == (7, "checked")
    assert entries[0]["type"] == 1  # CreateJob history written by jobs/create


# --- attachments, dependencies, extended properties ------------------------------------------

def test_embedded_attachment_round_trip(service: Service) -> None:
    job_id = service.create_job()
    content = bytes(range(256)) * 40
    response = service.client.request("POST", f"jobs/{job_id}/attachments/add", user=ADMIN,
                                      storageType=2, files={"file": ("plan.pdf", content)})
    attachment_id = response.json()["attachmentId"]
    listed = service.client.get(f"jobs/{job_id}/attachments")["attachments"]
    assert [(a["id"], a["filename"], a["storageType"]) for a in listed] == [
        (attachment_id, "plan.pdf", 2)]
    assert service.client.get(f"jobs/{job_id}/attachments/{attachment_id}")["id"] == \
        attachment_id
    download = service.client.request("GET", f"jobs/{job_id}/attachments/{attachment_id}/"
                                      "content", f="file")
    assert download.content == content
    assert download.headers["Content-Type"] == "application/pdf"
    assert "plan.pdf" in download.headers["Content-Disposition"]
    assert service.client.post(f"jobs/{job_id}/attachments/{attachment_id}/delete",
                               user=ADMIN)["success"]
    assert service.client.get(f"jobs/{job_id}/attachments") == {"attachments": []}


def test_linked_attachments_keep_their_path_but_have_no_content(service: Service) -> None:
    job_id = service.create_job()
    linked = service.client.post(f"jobs/{job_id}/attachments/add", user=ADMIN, storageType=1,
                                 filePath="\\\\share\\maps\\sheet.mxd")["attachmentId"]
    url = service.client.post(f"jobs/{job_id}/attachments/add", user=ADMIN, storageType=3,
                              filePath="https://example.org/doc")["attachmentId"]
    record = service.client.get(f"jobs/{job_id}/attachments/{linked}")
    assert (record["folder"], record["filename"]) == ("\\\\share\\maps", "sheet.mxd")
    assert service.client.get(f"jobs/{job_id}/attachments/{url}")["folder"] == \
        "https://example.org/doc"
    assert error_code(service.client.get(f"jobs/{job_id}/attachments/{linked}/content",
                                         f="file")) == 400
    assert error_code(service.client.post(f"jobs/{job_id}/attachments/add", user=ADMIN,
                                          storageType=2)) == 400


def test_dependencies_create_list_delete(service: Service) -> None:
    job_id, other = service.create_job(), service.create_job()
    dependency_id = service.client.post(f"jobs/{job_id}/dependencies/create", user=ADMIN,
                                        depJobId=other, heldOnType=3, heldOnValue=4,
                                        depOnType=2, depOnValue=5)["dependencyId"]
    listed = service.client.get(f"jobs/{job_id}/dependencies")["dependencies"]
    assert [(d["id"], d["depJobId"], d["depOnType"]) for d in listed] == [
        (dependency_id, other, 2)]
    assert service.client.post(f"jobs/{job_id}/dependencies/{dependency_id}/delete",
                               user=ADMIN)["success"]
    assert service.client.get(f"jobs/{job_id}/dependencies") == {"dependencies": []}
    assert error_code(service.client.post(f"jobs/{job_id}/dependencies/create", user=ADMIN,
                                          depJobId=4242)) == 400


def test_extended_properties_add_update_delete(service: Service) -> None:
    job_id = service.create_job()
    record_id = service.client.post(f"jobs/{job_id}/extendedProperties/JTX_PARCELS/add",
                                    user=ADMIN,
                                    properties=json.dumps({"PARCEL": "A-7", "AREA": 12})
                                    )["recordId"]
    assert service.client.post(f"jobs/{job_id}/extendedProperties/JTX_PARCELS/{record_id}/"
                               "update", user=ADMIN,
                               properties=json.dumps({"AREA": 13}))["success"]
    containers = service.client.get(f"jobs/{job_id}/extendedProperties")["containers"]
    assert containers[0]["tableName"] == "JTX_PARCELS"
    values = {v["name"]: (v["data"], v["dataType"])
              for v in containers[0]["records"][0]["recordValues"]}
    assert values == {"PARCEL": ("A-7", 4), "AREA": (13, 1)}
    assert error_code(service.client.post(f"jobs/{job_id}/extendedProperties/OTHER/"
                                          f"{record_id}/delete", user=ADMIN)) == 404
    assert service.client.post(f"jobs/{job_id}/extendedProperties/JTX_PARCELS/{record_id}/"
                               "delete", user=ADMIN)["success"]
    assert service.client.get(f"jobs/{job_id}/extendedProperties") == {"containers": []}


# --- configuration, community, replication info -------------------------------------------

def test_job_type_detail_and_visible_job_types(service: Service) -> None:
    detail = service.client.get("jobTypes/1")
    assert detail["name"] == "Data Edits" and detail["defaultPriority"] == 2
    assert "jobNamingScheme" in detail and "autoExecuteCreatedJobs" in detail
    assert error_code(service.client.get("jobTypes/99")) == 404
    assert error_code(service.client.get("visibleJobTypes")) == 400
    visible = service.client.get("visibleJobTypes", user=EDITOR)["jobTypes"]
    assert [t["id"] for t in visible] == [1, 2, 3]


def test_community_users_and_groups(service: Service) -> None:
    users = service.client.get("community/users")["users"]
    assert {u["userName"] for u in users} >= {ADMIN, EDITOR}
    editor = service.client.get(f"community/users/{EDITOR}")
    assert editor["fullName"] == "Editor One"
    assert [g["name"] for g in editor["groups"]] == ["Editors"]
    assert {"name": "CreateJob"} in editor["privileges"]
    assert error_code(service.client.get("community/users/ghost")) == 404
    groups = service.client.get("community/groups")["groups"]
    assert {"id", "name", "description", "users"} <= set(groups[0])
    assert service.client.get("community/groups/2")["users"] == ["editor1", "editor2"]
    assert error_code(service.client.get("community/groups/99")) == 404


def test_update_config_properties_needs_administrator_access(service: Service) -> None:
    properties = json.dumps({"AUTOCLOSEJOB": "true", "JOB_ID_START_VALUE": "5"})
    assert error_code(service.client.post("updateConfigProperties", user=EDITOR,
                                          properties=properties)) == 403
    answer = service.client.post("updateConfigProperties", user=ADMIN, properties=properties)
    assert answer == {"returnCode": 3, "failedProperties": ["JOB_ID_START_VALUE"]}
    assert service.client.get()["configProperties"]["AUTOCLOSEJOB"] == "true"
    assert service.client.post("updateConfigProperties", user=ADMIN,
                               properties=json.dumps({"AOIOVERLAP": "disallow"})
                               )["returnCode"] == 1


def test_replication_info_lists_this_server_first(service: Service) -> None:
    assert error_code(service.client.get("replication/info")) == 400
    nodes = service.client.get("replication/info", user=ADMIN)["nodes"]
    with service.repository() as repository:
        info = repository.info()
    assert nodes[0]["id"] == info.node_id and nodes[0]["name"] == "Parent"
    assert nodes[0]["serverURL"] == service.url
    assert set(nodes[0]) == {"id", "name", "description", "serverURL", "isParent",
                             "isConnected", "lastSync"}


def test_writes_over_rest_are_change_tracked(service: Service) -> None:
    with service.repository() as repository:
        before = repository.info().seq
    job_id = service.create_job()
    feed = service.client.get("replication/x-changes", user=ADMIN, since=before)
    kinds = {row[1] for row in feed["changes"]}
    assert "job" in kinds and "activity" in kinds
    job_rows = [row for row in feed["changes"] if row[1] == "job"]
    assert job_rows[0][2] == job_id


@pytest.mark.skipif(sys.platform == "win32", reason="Ctrl+C is sent as SIGINT (POSIX)")
def test_serve_prints_the_bound_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    path = make_repository(tmp_path, "Served Repo")
    token_file = tmp_path / "token.txt"
    token_file.write_text("abc\n", encoding="utf-8")
    code = ("import sys; from wmx.server.run import serve; "
            "serve(sys.argv[1], port=0, token_file=sys.argv[2])")
    process = subprocess.Popen([sys.executable, "-c", code, str(path), str(token_file)],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        url = line.split(" at ", 1)[1].strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/arcgis/rest/services/Served%20Repo/"
                            r"WMServer", url)
        assert Client(url, token="abc").get("jobs") == {"jobIds": []}
        assert error_code(Client(url).get("jobs")) == 499
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


def test_a_request_reads_the_user_it_names_not_every_user(service: Service,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Each write names its user; that user is read by name (one indexed read), where every
    request used to read and parse every user of the repository. A name written in another
    case is still the same user, as in Esri's."""
    listed: list[str] = []
    every_user = JobTracking.users

    def counted(self: JobTracking) -> list:
        listed.append("users")
        return every_user(self)

    monkeypatch.setattr(JobTracking, "users", counted)
    assert service.create_job() > 0
    assert listed == []
    assert service.client.post("jobs/create", user=ADMIN.upper(), jobTypeId=1)["jobIds"]
    assert error_code(service.client.post("jobs/create", user="nobody", jobTypeId=1)) == 403
