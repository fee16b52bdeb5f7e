"""The Esri double answers as reference/wmserver-rest.md says Esri's WMServer does.

Plain ``requests`` against a real double on 127.0.0.1: each documented route round trip, the
error envelope, ``user`` on writes, tokens, the record of undocumented requests, keep-alive,
latency, outages and injected faults.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.esri_double import ROUTES, SAMPLE_URLS, EsriDouble

AOI = {"rings": [[[0, 0], [10, 0], [10, 10], [0, 0]]], "spatialReference": {"wkid": 4326}}
POI = {"points": [[1, 2], [3, 4]], "spatialReference": {"wkid": 4326}}


@pytest.fixture
def double() -> Iterator[EsriDouble]:
    with EsriDouble() as running:
        yield running
    assert running.internal_errors == []


def call(double: EsriDouble, path: str = "", method: str = "POST", *, files: Any = None,
         **params: Any) -> Any:
    """One request the way an Esri client makes it (``f=json``), answered as JSON."""
    params.setdefault("f", "json")
    url = f"{double.url}/{path}" if path else double.url
    if method == "GET":
        response = requests.get(url, params=params, timeout=10)
    else:
        response = requests.post(url, data=params, files=files, timeout=10)
    assert response.status_code == 200
    return response.json()


def code(answer: Any) -> Any:
    return answer["error"]["code"] if "error" in answer else None


def create(double: EsriDouble, **params: Any) -> int:
    params.setdefault("jobTypeId", 1)
    answer = call(double, "jobs/create", user="admin", **params)
    assert code(answer) is None, answer
    return answer["jobIds"][0]


def test_the_root_lists_the_configuration_esri_documents(double: EsriDouble) -> None:
    root = call(double, method="GET")
    assert list(root)[:7] == ["currentVersion", "serviceDescription", "configProperties",
                              "jobTypes", "jobStatuses", "jobPriorities", "activityTypes"]
    assert set(root["jobTypes"][0]) == {"id", "name", "description", "category", "state"}
    assert set(root["jobStatuses"][0]) == {"id", "name", "description", "caption"}
    assert set(root["jobPriorities"][0]) == {"value", "name", "description"}
    assert set(root["activityTypes"][0]) == {"id", "name", "description", "message"}
    assert {"id", "name"} <= set(root["holdTypes"][0])
    assert all(isinstance(v, str) for v in root["configProperties"].values())
    assert root["configProperties"]["JOB_ID_START_VALUE"] == "1"


def test_configuration_resources_answer_their_documented_shapes(double: EsriDouble) -> None:
    job_type = call(double, "jobTypes/2", "GET")
    assert job_type["name"] == "Map Production" and "defaultJobDuration" in job_type
    assert code(call(double, "jobTypes/99", "GET")) == 404
    users = call(double, "community/users", "GET")["users"]
    assert {u["userName"] for u in users} == {"admin", "editor1", "editor2", "reviewer1"}
    admin = call(double, "community/users/admin", "GET")
    assert {"name": "AdministratorAccess"} in admin["privileges"]
    assert call(double, "community/users/nobody", "GET") == {}
    groups = call(double, "community/groups", "GET")["groups"]
    assert set(groups[0]) == {"id", "name", "description", "users"}
    assert call(double, "community/groups/2", "GET")["users"] == ["editor1", "editor2"]
    double.seed_replication_node(name="Redlands", serverURL=double.url, isParent=True,
                                 lastSync=1230768000000)
    nodes = call(double, "replication/info", "GET", user="admin")["nodes"]
    assert set(nodes[0]) == {"id", "name", "description", "serverURL", "isParent",
                             "isConnected", "lastSync"}
    assert code(call(double, "replication/info", "GET")) == 400  # user is required


def test_a_job_created_with_an_id_keeps_it_and_reads_back_with_epoch_ms_dates(
        double: EsriDouble) -> None:
    job_id = create(double, id=500, name="Survey", description="d", priority=3,
                    startDate=1230768000000, dueDate=1233446400000, assignedType=1,
                    assignedTo="editor1", aoi=json.dumps(AOI), poi=json.dumps(POI))
    job = call(double, "jobs/500", "GET")
    assert job_id == 500
    assert (job["name"], job["priority"], job["assignedTo"], job["aoi"], job["poi"]) == \
        ("Survey", 3, "editor1", AOI, POI)
    assert job["startDate"] == 1230768000000 and isinstance(job["createdDate"], int)
    assert job["endDate"] is None and job["parentJobId"] == 0 and job["childJobIds"] == []
    assert call(double, "jobs", "GET") == {"jobIds": [500]}
    assert create(double) == 1  # the id sequence is not moved by an explicit id


def test_a_taken_job_id_is_refused_and_nothing_is_created(double: EsriDouble) -> None:
    double.seed_job(id=7, name="Theirs")
    answer = call(double, "jobs/create", user="admin", jobTypeId=1, id=7, name="Mine")
    assert code(answer) == 400
    assert double.job(7)["name"] == "Theirs" and list(double.jobs) == [7]
    assert code(call(double, "jobs/create", user="admin", jobTypeId=1, id=8, numJobs=2)) == 400
    assert list(double.jobs) == [7]


def test_numjobs_creates_several_jobs_and_parent_jobs_list_their_children(
        double: EsriDouble) -> None:
    parent = create(double)
    answer = call(double, "jobs/create", user="admin", jobTypeId=2, numJobs=3,
                  parentJobId=parent)
    assert answer == {"jobIds": [2, 3, 4]}
    assert call(double, f"jobs/{parent}", "GET")["childJobIds"] == [2, 3, 4]


def test_update_properties_changes_fields_and_clears_aoi(double: EsriDouble) -> None:
    job_id = create(double, aoi=json.dumps(AOI))
    properties = {"name": "Renamed", "priority": 4, "status": 3, "percent": 40,
                  "dueDate": 1233446400000, "ownedBy": "editor2", "poi": POI,
                  "assignedType": 2, "assignedTo": "Editors"}
    assert call(double, f"jobs/{job_id}/update", user="admin",
                properties=json.dumps(properties)) == {"success": True}
    job = double.job(job_id)
    assert (job["name"], job["priority"], job["status"], job["percentageComplete"],
            job["dueDate"], job["ownedBy"], job["poi"], job["assignedTo"]) == \
        ("Renamed", 4, 3, 40, 1233446400000, "editor2", POI, "Editors")
    assert call(double, f"jobs/{job_id}/update", user="admin", clearAOI="true",
                clearDueDate="true", description="legacy parameter") == {"success": True}
    job = double.job(job_id)
    assert (job["aoi"], job["dueDate"], job["description"]) == (None, None, "legacy parameter")


@pytest.mark.parametrize("properties", [
    {"modifiedDate": 1}, {"priority": 99}, {"status": 77}, {"percent": 101},
    {"ownedBy": "nobody"}, {"aoi": {"points": []}}, {"assignedType": 1, "assignedTo": "ghost"},
    {"parentJobId": 404}, {"startDate": "yesterday"}])
def test_update_refuses_bad_properties_and_changes_nothing(double: EsriDouble,
                                                            properties: dict) -> None:
    job_id = create(double)
    before = double.job(job_id)
    answer = call(double, f"jobs/{job_id}/update", user="admin",
                  properties=json.dumps(properties))
    assert code(answer) == 400
    assert double.job(job_id) == before


def test_an_undocumented_job_property_is_recorded(double: EsriDouble) -> None:
    job_id = create(double)
    call(double, f"jobs/{job_id}/update", user="admin", properties='{"lastModified": 1}')
    assert [r.path for r in double.undocumented] == [f"jobs/{job_id}/update"]


def test_close_reopen_assign_unassign_and_delete_one_or_many(double: EsriDouble) -> None:
    first, second = create(double), create(double)
    jobs = f"{first},{second}"
    assert call(double, "jobs/close", user="admin", jobs=jobs) == {"success": True}
    assert {double.job(j)["stage"] for j in (first, second)} == {5}
    assert isinstance(double.job(first)["endDate"], int)
    assert call(double, "jobs/reopen", user="admin", jobs=jobs) == {"success": True}
    assert double.job(second)["endDate"] is None and double.job(second)["stage"] != 5
    assert call(double, f"jobs/{first}/close", user="admin") == {"success": True}
    assert call(double, "jobs/assign", user="admin", jobs=jobs, assignedType=2,
                assignedTo="Reviewers") == {"success": True}
    assert double.job(first)["assignedTo"] == "Reviewers"
    assert call(double, f"jobs/{first}/assign", user="admin", assignedType=1,
                assignedTo="editor1") == {"success": True}
    assert code(call(double, f"jobs/{first}/assign", user="admin", assignedType=1,
                     assignedTo="ghost")) == 400
    assert call(double, f"jobs/{first}/unassign", user="admin") == {"success": True}
    assert double.job(first)["assignedType"] == 0
    assert code(call(double, "jobs/close", user="admin", jobs=f"{first},999")) == 404
    assert double.job(first)["stage"] == 5  # the job list is refused whole
    assert call(double, f"jobs/{first}/delete", user="admin") == {"success": True}
    assert call(double, "jobs/delete", user="admin", jobs=str(second),
                deleteHistory="true") == {"success": True}
    assert double.jobs == {}


def test_a_missing_job_reads_as_an_empty_object_and_its_children_as_not_found(
        double: EsriDouble) -> None:
    assert call(double, "jobs/41", "GET") == {}
    for path in ("holds", "notes", "activity", "attachments", "dependencies",
                 "extendedProperties"):
        assert code(call(double, f"jobs/41/{path}", "GET")) == 404
    assert code(call(double, "jobs/41/update", user="admin", name="x")) == 404


def test_holds_are_created_listed_read_and_released_once(double: EsriDouble) -> None:
    job_id = create(double)
    hold_id = call(double, f"jobs/{job_id}/holds/create", user="editor1", type=2,
                   comments="waiting")["holdId"]
    hold = call(double, f"jobs/{job_id}/holds/{hold_id}", "GET")
    assert set(hold) == {"id", "type", "heldBy", "holdDate", "holdComments", "releasedBy",
                         "releaseDate", "releaseComments"}
    assert (hold["type"], hold["heldBy"], hold["releaseDate"]) == (2, "editor1", None)
    assert call(double, f"jobs/{job_id}/holds/{hold_id}/release", user="admin",
                comments="done") == {"success": True}
    released = call(double, f"jobs/{job_id}/holds", "GET")["holds"][0]
    assert (released["releasedBy"], released["releaseComments"]) == ("admin", "done")
    assert isinstance(released["releaseDate"], int)
    assert code(call(double, f"jobs/{job_id}/holds/{hold_id}/release", user="admin")) == 400
    assert code(call(double, f"jobs/{job_id}/holds/create", user="admin", type=42)) == 400
    other = create(double)
    assert code(call(double, f"jobs/{other}/holds/{hold_id}", "GET")) == 404


def test_notes_are_one_text_replaced_wholesale(double: EsriDouble) -> None:
    job_id = create(double)
    assert call(double, f"jobs/{job_id}/notes", "GET") == {"notes": ""}
    assert call(double, f"jobs/{job_id}/notes/update", user="admin",
                notes="first\nline ü") == {"success": True}
    call(double, f"jobs/{job_id}/notes/update", user="admin", notes="second")
    assert call(double, f"jobs/{job_id}/notes", "GET") == {"notes": "second"}


def test_the_server_logs_activity_itself_and_log_action_appends(double: EsriDouble) -> None:
    job_id = create(double)
    hold_id = call(double, f"jobs/{job_id}/holds/create", user="admin", type=1)["holdId"]
    call(double, f"jobs/{job_id}/holds/{hold_id}/release", user="admin")
    call(double, f"jobs/{job_id}/close", user="admin")
    assert call(double, f"jobs/{job_id}/activity/logAction", user="editor1", type=7,
                comments="looked at it") == {"success": True}
    records = call(double, f"jobs/{job_id}/activity", "GET")["activity"]
    assert [r["type"] for r in records] == [1, 5, 6, 3, 7]
    assert set(records[-1]) == {"type", "user", "date", "message"}
    assert (records[-1]["user"], records[-1]["message"]) == ("editor1", "looked at it")
    assert code(call(double, f"jobs/{job_id}/activity/logAction", user="admin", type=99)) == 400
    quiet = EsriDouble(auto_activity=False)
    quiet_job = quiet.seed_job()
    assert quiet.activity(quiet_job) == []


def test_attachments_of_every_kind_round_trip_and_embedded_bytes_are_exact(
        double: EsriDouble, tmp_path: Path) -> None:
    job_id = create(double)
    payload = bytes(range(256)) * 40 + b"\r\n--\r\n\r\n"
    embedded = call(double, f"jobs/{job_id}/attachments/add", user="admin", storageType=2,
                    files={"file": ("plan ü.pdf", payload)})["attachmentId"]
    linked_file = tmp_path / "linked.txt"
    linked_file.write_bytes(b"on the server's disk")
    linked = call(double, f"jobs/{job_id}/attachments/add", user="admin", storageType=1,
                  filePath=str(linked_file))["attachmentId"]
    url = call(double, f"jobs/{job_id}/attachments/add", "GET", user="admin", storageType=3,
               filePath="https://example.com/a?b=1")["attachmentId"]
    listed = {a["id"]: a for a in call(double, f"jobs/{job_id}/attachments", "GET")
              ["attachments"]}
    assert listed[embedded] == {"id": embedded, "storageType": 2, "type": "pdf", "folder": "",
                                "filename": "plan ü.pdf"}
    assert (listed[linked]["folder"], listed[linked]["filename"]) == \
        (str(tmp_path), "linked.txt")
    assert listed[url]["folder"] == "https://example.com/a?b=1"
    assert call(double, f"jobs/{job_id}/attachments/{url}", "GET") == listed[url]
    content = requests.get(f"{double.url}/jobs/{job_id}/attachments/{embedded}/content",
                           params={"f": "file"}, timeout=10)
    assert content.content == payload
    linked_content = requests.get(f"{double.url}/jobs/{job_id}/attachments/{linked}/content",
                                  params={"f": "file"}, timeout=10)
    assert linked_content.content == b"on the server's disk"
    assert code(call(double, f"jobs/{job_id}/attachments/{embedded}/content", "GET")) == 400
    assert code(call(double, f"jobs/{job_id}/attachments/add", user="admin")) == 400
    assert call(double, f"jobs/{job_id}/attachments/{embedded}/delete",
                user="admin") == {"success": True}
    assert embedded not in double.attachment_bytes
    assert len(double.attachments(job_id)) == 2


def test_dependencies_are_created_listed_and_deleted(double: EsriDouble) -> None:
    held, blocking = create(double), create(double)
    dependency_id = call(double, f"jobs/{held}/dependencies/create", user="admin",
                         heldOnType=2, heldOnValue=3, depJobId=blocking, depOnType=3,
                         depOnValue=5)["dependencyId"]
    assert call(double, f"jobs/{held}/dependencies", "GET")["dependencies"] == [
        {"id": dependency_id, "jobId": held, "heldOnType": 2, "heldOnValue": 3,
         "depJobId": blocking, "depOnType": 3, "depOnValue": 5}]
    assert code(call(double, f"jobs/{held}/dependencies/create", user="admin", heldOnType=2,
                     heldOnValue=3, depJobId=999, depOnType=3, depOnValue=5)) == 400
    assert call(double, f"jobs/{held}/dependencies/{dependency_id}/delete",
                user="admin") == {"success": True}
    assert double.dependencies(held) == []


def test_extended_properties_are_added_updated_and_deleted(double: EsriDouble) -> None:
    double.seed_extended_table("PARCELS", ["PARCEL_ID", "OWNER"], tableAlias="Parcels")
    job_id = create(double)
    record_id = call(double, f"jobs/{job_id}/extendedProperties/parcels/add",
                     user="admin")["recordId"]
    assert call(double, f"jobs/{job_id}/extendedProperties/PARCELS/{record_id}/update",
                user="admin", properties='{"owner": "Ada", "PARCEL_ID": "12-4"}') == \
        {"success": True}
    container = call(double, f"jobs/{job_id}/extendedProperties", "GET")["containers"][0]
    assert (container["tableName"], container["relationshipType"]) == ("PARCELS", 2)
    values = {v["name"]: v["data"] for v in container["records"][0]["recordValues"]}
    assert values == {"PARCEL_ID": "12-4", "OWNER": "Ada"}
    assert code(call(double, f"jobs/{job_id}/extendedProperties/PARCELS/{record_id}/update",
                     user="admin", properties='{"AREA": 1}')) == 400
    assert code(call(double, f"jobs/{job_id}/extendedProperties/ROADS/add",
                     user="admin")) == 404
    assert call(double, f"jobs/{job_id}/extendedProperties/PARCELS/{record_id}/delete",
                user="admin") == {"success": True}
    assert double.extended_records(job_id, "parcels") == {}


def test_jobs_query_answers_string_cells_and_locale_formatted_dates(double: EsriDouble) -> None:
    double.seed_job(id=806, name="Roads", createdDate=1275314709000, dueDate=None)
    double.seed_job(id=807, name="Rivers", createdDate=1230768000000)
    answer = call(double, "jobs/query", "GET", fields="JTX_JOBS.JOB_ID,JOB_NAME,CREATED_DATE,"
                  "DUE_DATE", tables="JTX_JOBS", aliases="ID,Name,Created,Due",
                  where="CREATED_DATE > '2010-01-01 00:00:00'", orderBy="JOB_ID DESC")
    assert answer["fields"][0] == {"name": "JTX_JOBS.JOB_ID", "alias": "ID", "type": 1,
                                   "length": 4}
    assert [f["type"] for f in answer["fields"]] == [1, 4, 5, 5]
    assert answer["rows"] == [["806", "Roads", "5/31/2010 2:05:09 PM", ""]]
    assert code(call(double, "jobs/query", "GET", fields="JOB_ID", tables="JTX_HOLDS")) == 400
    assert code(call(double, "jobs/query", "GET", fields="JOB_ID", tables="JTX_JOBS",
                     where="1=1; DROP TABLE JTX_JOBS")) == 400
    assert code(call(double, "jobs/query", "GET", fields="JOB_ID", tables="JTX_JOBS",
                     orderBy="JOB_ID, JOB_NAME")) == 400
    assert code(call(double, "jobs/query", "GET", id=3)) == 404
    assert code(call(double, "jobs/query", "GET")) == 400


WRITES = [
    ("jobs/create", {"jobTypeId": 1}), ("jobs/close", {"jobs": "1"}),
    ("jobs/reopen", {"jobs": "1"}), ("jobs/delete", {"jobs": "1"}),
    ("jobs/assign", {"jobs": "1", "assignedType": 1, "assignedTo": "admin"}),
    ("jobs/1/update", {"name": "x"}), ("jobs/1/close", {}), ("jobs/1/delete", {}),
    ("jobs/1/assign", {"assignedType": 1, "assignedTo": "admin"}),
    ("jobs/1/notes/update", {"notes": "x"}), ("jobs/1/activity/logAction", {"type": 7}),
    ("jobs/1/holds/create", {"type": 1}), ("jobs/1/holds/1/release", {}),
    ("jobs/1/attachments/add", {"storageType": 3, "filePath": "http://x"}),
    ("jobs/1/attachments/2/delete", {}),
    ("jobs/1/dependencies/create", {"heldOnType": 2, "heldOnValue": 1, "depJobId": 4,
                                    "depOnType": 2, "depOnValue": 5}),
    ("jobs/1/dependencies/3/delete", {}),
    ("jobs/1/extendedProperties/T/add", {}),
    ("jobs/1/extendedProperties/T/4/update", {"properties": "{}"}),
    ("jobs/1/extendedProperties/T/4/delete", {}),
    ("updateConfigProperties", {"properties": "{}"}),
]


@pytest.fixture(scope="module")
def seeded() -> Iterator[EsriDouble]:
    """One double for the write checks that must change nothing: job 1 with hold 1,
    attachment 2, dependency 3 on job 4 and record 4 in table T."""
    with EsriDouble() as running:
        running.seed_job(id=1)
        running.seed_hold(1)
        running.seed_attachment(1, content=b"x", filename="x.txt")
        running.seed_job(id=4)
        running.seed_dependency(1, depJobId=4)
        running.seed_extended_table("T", ["A"])
        running.seed_extended_record(1, "T")
        yield running


@pytest.mark.parametrize("user", [None, "", "ghost"])
@pytest.mark.parametrize(("path", "params"), WRITES, ids=[w[0] for w in WRITES])
def test_every_write_needs_a_known_user_and_changes_nothing_without_one(
        seeded: EsriDouble, path: str, params: dict, user: Any) -> None:
    double = seeded
    before = (json.dumps(double.jobs, sort_keys=True), double.holds(1), double.notes(1),
              double.activity(1), double.attachments(1), double.dependencies(1),
              double.extended_records(1, "T"), dict(double.config_properties))
    if user is not None:
        params = {**params, "user": user}
    answer = call(double, path, **params)
    assert code(answer) == 400 and "user" in json.dumps(answer["error"]).lower()
    assert before == (json.dumps(double.jobs, sort_keys=True), double.holds(1),
                      double.notes(1), double.activity(1), double.attachments(1),
                      double.dependencies(1), double.extended_records(1, "T"),
                      dict(double.config_properties))


def test_a_domain_user_is_named_with_a_pipe(double: EsriDouble) -> None:
    double.seed_user("CORP\\ada")
    job_id = create(double)
    call(double, f"jobs/{job_id}/holds/create", user="CORP|ada", type=1)
    assert double.holds(job_id)[0]["heldBy"] == "CORP\\ada"
    assert call(double, "community/users/CORP|ada", "GET")["userName"] == "CORP\\ada"


def test_config_properties_need_administrator_access(double: EsriDouble) -> None:
    answer = call(double, "updateConfigProperties", user="editor1",
                  properties='{"AUTOCLOSEJOB": "true"}')
    assert code(answer) == 403
    assert call(double, "updateConfigProperties", user="admin",
                properties='{"AUTOCLOSEJOB": "true"}') == {"returnCode": 1}
    assert call(double, method="GET")["configProperties"]["AUTOCLOSEJOB"] == "true"


@pytest.mark.parametrize(("method", "path", "params"), [
    ("GET", "replication/x-changes", {"since": "0"}),
    ("POST", "replication/x-apply", {"user": "admin"}),
    ("GET", "replication/X-TIME", {}),
    ("GET", "jobs/1/history", {}),
    ("GET", "jobs/abc", {}),
    ("GET", "jobs", {"start": "0", "num": "100"}),
    ("GET", "jobs/1", {"modifiedSince": "0"}),
    ("POST", "jobs/create", {"user": "admin", "jobTypeId": "1", "guid": "x"}),
])
def test_undocumented_paths_and_parameters_are_refused_and_recorded(
        double: EsriDouble, method: str, path: str, params: dict) -> None:
    double.seed_job(id=1)
    answer = call(double, path, method, **params)
    assert code(answer) == 400 and set(answer["error"]) == {"code", "message", "details"}
    assert [r.path for r in double.undocumented] == [path]
    assert list(double.jobs) == [1]


def test_other_verbs_other_services_and_unimplemented_paths_are_never_a_success(
        double: EsriDouble) -> None:
    put = requests.put(f"{double.url}/jobs", params={"f": "json"}, timeout=10).json()
    assert code(put) == 405
    other = requests.get(double.url.replace("/Redlands/", "/Other/"), params={"f": "json"},
                         timeout=10).json()
    assert code(other) == 404
    assert len(double.undocumented) == 2
    assert code(call(double, "jobs/1/workflow", "GET")) == 400
    assert [r.path for r in double.unimplemented] == ["jobs/1/workflow"]


def test_path_segments_match_case_insensitively(double: EsriDouble) -> None:
    job_id = create(double)
    lower_url = double.url.lower()
    answer = requests.get(f"{lower_url}/JOBS/{job_id}/HOLDS", params={"f": "json"},
                          timeout=10).json()
    assert answer == {"holds": []}
    assert call(double, f"Jobs/{job_id}/Notes/Update", user="admin", notes="x") == \
        {"success": True}
    assert double.undocumented == []


def test_get_post_form_and_multipart_all_work(double: EsriDouble) -> None:
    assert call(double, "jobs/create", "GET", user="admin", jobTypeId=1) == {"jobIds": [1]}
    multipart = requests.post(f"{double.url}/jobs/create", timeout=10, files={
        "f": (None, "json"), "user": (None, "admin"), "jobTypeId": (None, "1"),
        "name": (None, "Multi ü")}).json()
    assert multipart == {"jobIds": [2]} and double.job(2)["name"] == "Multi ü"
    mixed = requests.post(f"{double.url}/jobs/1/notes/update", params={"f": "json"},
                          data={"user": "admin", "notes": "split"}, timeout=10).json()
    assert mixed == {"success": True}
    twice = requests.post(f"{double.url}/jobs/1/notes/update", params={"notes": "a"},
                          data={"f": "json", "user": "admin", "notes": "b"}, timeout=10)
    assert code(twice.json()) == 400 and double.notes(1) == "split"


def test_formats_pjson_html_and_jsonp(double: EsriDouble) -> None:
    pretty = requests.get(double.url, params={"f": "pjson"}, timeout=10)
    assert "\n  " in pretty.text and pretty.json()["currentVersion"]
    page = requests.get(double.url, timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    padded = requests.get(f"{double.url}/jobs", params={"f": "json", "callback": "cb"},
                          timeout=10)
    assert padded.text == 'cb({"jobIds": []});'
    hostile = requests.get(f"{double.url}/jobs", params={"f": "json", "callback": "<x>"},
                           timeout=10)
    assert code(hostile.json()) == 400
    assert code(call(double, "jobs", "GET", f="xml")) == 400
    assert code(call(double, "jobs", "GET", _ts=str(int(time.time() * 1000)))) is None


def test_requests_are_recorded_with_their_user_and_no_secret(double: EsriDouble) -> None:
    call(double, "jobs/create", user="admin", jobTypeId=1, token="s3cret")
    double.clear_requests()
    call(double, "jobs/1/notes/update", user="editor1", notes="n", token="s3cret")
    (record,) = double.requests
    assert (record.method, record.path, record.user) == ("POST", "jobs/1/notes/update",
                                                         "editor1")
    assert record.params["notes"] == "n" and record.params["token"] == "***"
    assert "s3cret" not in repr(double.requests)


def test_a_static_token_is_required_and_checked() -> None:
    with EsriDouble(token="static-token") as double:
        assert code(call(double, "jobs", "GET")) == 499
        assert code(call(double, "jobs", "GET", token="wrong")) == 498
        assert code(call(double, "jobs", "GET", token="wröng")) == 498
        header = requests.get(f"{double.url}/jobs", params={"f": "json"}, timeout=10,
                              headers={"X-Esri-Authorization": "Bearer static-token"})
        assert code(header.json()) == 499
        assert call(double, "jobs", "GET", token="static-token") == {"jobIds": []}


def test_generate_token_gives_expiring_tokens_for_known_credentials() -> None:
    now = [1_800_000_000.0]
    with EsriDouble(credentials={"ada": "pa55"}, token_ttl_minutes=5,
                    clock=lambda: now[0]) as double:
        form = {"username": "ada", "password": "pa55", "client": "requestip", "f": "json"}
        assert code(requests.get(double.token_url, params=form, timeout=10).json()) == 405
        wrong = requests.post(double.token_url, data={**form, "password": "nope"},
                              timeout=10).json()
        assert code(wrong) == 400 and "pa55" not in json.dumps(wrong)
        issued = requests.post(double.token_url, data={**form, "expiration": "60"},
                               timeout=10).json()
        assert set(issued) == {"token", "expires", "ssl"}
        assert issued["expires"] == 1_800_000_000_000 + 5 * 60_000  # capped at the ttl
        assert call(double, "jobs", "GET", token=issued["token"]) == {"jobIds": []}
        now[0] += 5 * 60 - 1
        assert call(double, "jobs", "GET", token=issued["token"]) == {"jobIds": []}
        now[0] += 1
        assert code(call(double, "jobs", "GET", token=issued["token"])) == 498
        fresh = requests.post(double.token_url, data=form, timeout=10).json()["token"]
        double.expire_tokens()
        assert code(call(double, "jobs", "GET", token=fresh)) == 498
        record = next(r for r in double.requests if r.path.endswith("generateToken"))
        assert record.params["password"] == "***"
        info = requests.get(double.url.split("/services/")[0] + "/info",
                            params={"f": "json"}, timeout=10).json()
        assert info["authInfo"]["tokenServicesUrl"] == double.token_url


def test_a_token_with_a_short_real_ttl_expires_in_real_time() -> None:
    with EsriDouble(credentials={"ada": "pa55"}, token_ttl_minutes=0.002) as double:
        token = requests.post(double.token_url, timeout=10, data={
            "username": "ada", "password": "pa55", "f": "json"}).json()["token"]
        time.sleep(0.15)
        assert code(call(double, "jobs", "GET", token=token)) == 498


def test_a_referer_token_is_valid_only_with_that_referer() -> None:
    with EsriDouble(credentials={"ada": "pa55"}) as double:
        token = requests.post(double.token_url, timeout=10, data={
            "username": "ada", "password": "pa55", "client": "referer",
            "referer": "https://wmx.example", "f": "json"}).json()["token"]
        url = f"{double.url}/jobs"
        params = {"f": "json", "token": token}
        assert code(requests.get(url, params=params, timeout=10).json()) == 498
        assert requests.get(url, params=params, timeout=10,
                            headers={"Referer": "https://wmx.example"}).json() == \
            {"jobIds": []}


def test_one_keep_alive_connection_carries_many_requests(double: EsriDouble) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", double.port, timeout=10)
    path = double.url.split(str(double.port), 1)[1]
    connection.request("GET", f"{path}?f=json")
    connection.getresponse().read()
    first_socket = connection.sock
    for _ in range(5):
        connection.request("POST", f"{path}/jobs/create", body="f=json&user=admin&jobTypeId=1",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert json.loads(connection.getresponse().read())["jobIds"]
    assert connection.sock is first_socket and len(double.jobs) == 5
    connection.close()


def test_latency_is_slept_on_every_request() -> None:
    with EsriDouble(latency=0.05) as double:
        started = time.perf_counter()
        for _ in range(4):
            call(double, "jobs", "GET")
        assert time.perf_counter() - started >= 0.2


def test_a_restart_comes_back_on_the_same_port_with_the_same_state(
        double: EsriDouble) -> None:
    create(double)
    url = double.url
    session = requests.Session()
    assert session.get(f"{url}/jobs", params={"f": "json"}, timeout=10).json() == \
        {"jobIds": [1]}
    double.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{url}/jobs", params={"f": "json"}, timeout=2)
    double.start()
    assert double.url == url
    assert session.get(f"{url}/jobs", params={"f": "json"}, timeout=10).json() == \
        {"jobIds": [1]}
    assert double.restart().url == url


def test_injected_faults_fail_drop_or_lose_the_reply(double: EsriDouble) -> None:
    job_id = create(double)
    double.fail_next("holds/create", error_code=500, times=2)
    for _ in range(2):
        assert code(call(double, f"jobs/{job_id}/holds/create", user="admin", type=1)) == 500
    assert double.holds(job_id) == []
    double.fail_next("notes/update", mode="drop")
    with pytest.raises(requests.ConnectionError):
        call(double, f"jobs/{job_id}/notes/update", user="admin", notes="lost")
    assert double.notes(job_id) == ""
    double.fail_next("HOLDS/CREATE", mode="lost_reply")
    with pytest.raises(requests.ConnectionError):
        call(double, f"jobs/{job_id}/holds/create", user="admin", type=1)
    assert len(double.holds(job_id)) == 1  # done, though the client never heard
    assert "holdId" in call(double, f"jobs/{job_id}/holds/create", user="admin", type=1)


def test_eight_concurrent_connections_create_distinct_jobs(double: EsriDouble) -> None:
    created: list[int] = []

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(10):
                answer = session.post(f"{double.url}/jobs/create", timeout=10, data={
                    "f": "json", "user": "admin", "jobTypeId": "1"}).json()
                created.extend(answer["jobIds"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(created) == list(range(1, 81)) == sorted(double.jobs)
    assert all(len(double.activity(j)) == 1 for j in created)


def test_the_double_loads_by_path_without_being_a_registered_module() -> None:
    import importlib.util

    path = Path(__file__).with_name("esri_double.py")
    spec = importlib.util.spec_from_file_location("esri_double_by_path", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.EsriDouble(service="Bench") as loaded:
        assert call(loaded, "jobs", "GET") == {"jobIds": []}


def test_a_bug_of_the_double_is_esris_500_and_is_kept_for_the_tests() -> None:
    with EsriDouble() as double:
        job_id = double.seed_job(percentageComplete=float("nan"))
        assert code(call(double, f"jobs/{job_id}", "GET")) == 500
        assert len(double.internal_errors) == 1
        assert call(double, "jobs", "GET") == {"jobIds": [job_id]}


def test_ids_beyond_esris_32_bit_fields_and_huge_numjobs_are_refused(double: EsriDouble) -> None:
    assert code(call(double, "jobs/create", user="admin", jobTypeId=1, id=2**31)) == 400
    assert code(call(double, "jobs/create", user="admin", jobTypeId=1, numJobs=10**9)) == 400
    assert call(double, f"jobs/{2**64}", "GET") == {}
    assert double.jobs == {}


def test_the_10_0_dotnet_root_serves_the_same_surface() -> None:
    with EsriDouble("SO", root="wmrest/services") as double:
        assert "/wmrest/services/SO/WMServer" in double.url
        assert call(double, "jobs", "GET") == {"jobIds": []}
        moved = requests.get(double.url.replace("/wmrest/", "/arcgis/rest/"),
                             params={"f": "json"}, timeout=10).json()
        assert code(moved) == 404


def test_populate_builds_the_same_repository_every_time() -> None:
    first, second = EsriDouble(), EsriDouble()
    assert first.populate(100) == list(range(1, 101)) == second.populate(100)
    assert first.jobs == second.jobs
    assert sum(len(first.holds(j)) for j in first.jobs) == 25
    assert sum(len(first.attachments(j)) for j in first.jobs) == 15
    assert sum(len(first.dependencies(j)) for j in first.jobs) == 3


def test_the_double_serves_from_its_own_process_until_stdin_closes() -> None:
    script = Path(__file__).with_name("esri_double.py")
    with subprocess.Popen([sys.executable, str(script), "--jobs", "3", "--service", "Ohio"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdin is not None and process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.endswith("/arcgis/rest/services/Ohio/WMServer")
        assert requests.get(f"{url}/jobs", params={"f": "json"}, timeout=10).json() == \
            {"jobIds": [1, 2, 3]}
        requests.get(f"{url}/replication/x-time", params={"f": "json"}, timeout=10)
        process.stdin.close()
        summary = json.loads(process.stdout.readline())
        assert process.wait(timeout=10) == 0
    assert summary == {"requests": 2, "undocumented": ["replication/x-time"],
                       "unimplemented": [], "internal_errors": []}


def raw_request(double: EsriDouble, method: str, path: str, body: bytes = b"",
                headers: Any = None) -> tuple[Any, http.client.HTTPConnection]:
    """One request over a fresh connection, headers exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", double.port, timeout=10)
    prefix = double.url.split(str(double.port), 1)[1]
    connection.putrequest(method, f"{prefix}/{path}", skip_accept_encoding=True)
    for key, value in (headers or {}).items():
        connection.putheader(key, value)
    connection.endheaders(body or None)
    response = connection.getresponse()
    text = response.read()
    return (json.loads(text) if text else None), connection


@pytest.mark.parametrize(("path", "body", "headers"), [
    ("jobs?f=json&user=%FF%FE", b"", {}),
    ("jobs/create?f=json", b"user=admin&jobTypeId=1&name=\xff",
     {"Content-Type": "application/x-www-form-urlencoded"}),
    ("jobs/create?f=json", b"--x\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nadmin",
     {"Content-Type": "multipart/form-data; boundary=x"}),
    ("jobs/create?f=json", b"user=admin", {"Content-Type": "multipart/form-data"}),
    ("jobs/create?f=json", b"--x\r\nContent-Disposition: form-data\r\n\r\nadmin\r\n--x--\r\n",
     {"Content-Type": "multipart/form-data; boundary=x"}),
    ("jobs/1/update?f=json&user=admin", b"properties=" + b"[" * 100_000,
     {"Content-Type": "application/x-www-form-urlencoded"}),
    ("jobs/1/update?f=json&user=admin", b'properties={"priority": 1e400, "name": NaN}',
     {"Content-Type": "application/x-www-form-urlencoded"}),
], ids=["query-not-utf8", "form-not-utf8", "multipart-unterminated", "multipart-no-boundary",
        "multipart-unnamed-part", "json-nested-100000-deep", "json-nan-and-1e400"])
def test_damaged_requests_get_an_envelope_and_change_nothing(
        double: EsriDouble, path: str, body: bytes, headers: dict) -> None:
    double.seed_job(id=1, name="kept")
    headers = {**headers, "Content-Length": str(len(body))}
    answer, connection = raw_request(double, "POST", path, body, headers)
    connection.close()
    assert code(answer) == 400
    assert list(double.jobs) == [1] and double.job(1)["name"] == "kept"


def test_a_bad_content_length_is_refused_and_the_connection_closed(double: EsriDouble) -> None:
    for length in ("abc", str(2**40)):
        answer, connection = raw_request(double, "POST", "jobs/create?f=json", b"",
                                         {"Content-Length": length})
        assert code(answer) == 400
        assert connection.sock is None or connection.sock.recv(1) == b""
        connection.close()
    assert double.jobs == {}


def test_a_chunked_body_is_read(double: EsriDouble) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", double.port, timeout=10)
    prefix = double.url.split(str(double.port), 1)[1]
    body = iter([b"f=json&user=admin", b"&jobTypeId=1&name=Chunked"])
    connection.request("POST", f"{prefix}/jobs/create", body=body, encode_chunked=True,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert json.loads(connection.getresponse().read()) == {"jobIds": [1]}
    connection.request("GET", f"{prefix}/jobs/1?f=json")
    assert json.loads(connection.getresponse().read())["name"] == "Chunked"
    connection.close()


def test_head_and_options_are_refused_without_breaking_keep_alive(double: EsriDouble) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", double.port, timeout=10)
    prefix = double.url.split(str(double.port), 1)[1]
    for method in ("HEAD", "OPTIONS"):
        connection.request(method, f"{prefix}/jobs?f=json")
        connection.getresponse().read()
    connection.request("GET", f"{prefix}/jobs?f=json")
    assert json.loads(connection.getresponse().read()) == {"jobIds": []}
    assert [r.method for r in double.undocumented] == ["HEAD", "OPTIONS"]
    connection.close()


def test_visible_job_types_and_unassigning_many_jobs(double: EsriDouble) -> None:
    assert code(call(double, "visibleJobTypes", "GET")) == 400
    visible = call(double, "visibleJobTypes", "GET", user="editor1")["jobTypes"]
    assert [t["id"] for t in visible] == [1, 2, 3]
    first = create(double, assignedType=1, assignedTo="editor1")
    second = create(double, assignedType=2, assignedTo="Editors")
    assert call(double, "jobs/unassign", user="admin", jobs=f"{first},{second}") == \
        {"success": True}
    assert {(double.job(j)["assignedType"], double.job(j)["assignedTo"])
            for j in (first, second)} == {(0, "")}


def test_an_undocumented_request_without_a_token_is_still_recorded() -> None:
    with EsriDouble(token="static-token") as double:
        assert code(call(double, "replication/x-changes", "GET", since=0)) == 499
        assert code(call(double, "jobs", "GET", start=0)) == 499
        assert [r.path for r in double.undocumented] == ["replication/x-changes", "jobs"]


@pytest.mark.parametrize("sample_url", sorted(SAMPLE_URLS.values()))
def test_a_double_stands_at_each_sample_url_shape(sample_url: str) -> None:
    with EsriDouble.at_sample_url(sample_url) as double:
        local = double.local_url(sample_url)
        assert local.split("/", 3)[3] == sample_url.split("/", 3)[3]  # the path as written
        assert call(double, method="GET")["currentVersion"]
        assert requests.get(f"{local}/jobs", params={"f": "json"}, timeout=10).json() == \
            {"jobIds": []}
        with pytest.raises(ValueError):
            double.local_url("http://elsewhere/arcgis/rest/services/Other/WMServer")


def test_a_slow_answer_times_the_client_out_and_the_work_is_done_later(
        double: EsriDouble) -> None:
    job_id = create(double)
    double.fail_next("notes/update", mode="slow", delay=0.25)
    with pytest.raises(requests.Timeout):
        requests.post(f"{double.url}/jobs/{job_id}/notes/update", timeout=0.05,
                      data={"f": "json", "user": "admin", "notes": "late"})
    deadline = time.monotonic() + 5
    while double.notes(job_id) != "late" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert double.notes(job_id) == "late"


@pytest.mark.parametrize(("path", "params", "privilege"), [
    ("jobs/create", {"jobTypeId": 1}, "CreateJob"),
    ("jobs/create", {"jobTypeId": 1, "aoi": json.dumps(AOI)}, "ManageAOI"),
    ("jobs/1/update", {"properties": json.dumps({"poi": POI})}, "ManageAOI"),
    ("jobs/1/update", {"clearAOI": "true"}, "ManageAOI"),
    ("jobs/1/close", {}, "CloseJob"), ("jobs/close", {"jobs": "1"}, "CloseJob"),
    ("jobs/1/delete", {}, "DeleteJobs"), ("jobs/delete", {"jobs": "1"}, "DeleteJobs"),
    ("jobs/1/assign", {"assignedType": 1, "assignedTo": "editor1"}, "AssignAnyJob"),
    ("jobs/assign", {"jobs": "1", "assignedType": 1, "assignedTo": "editor1"}, "AssignAnyJob"),
    ("jobs/1/attachments/add", {"storageType": 3, "filePath": "http://x"},
     "ManageAttachments"),
    ("jobs/1/attachments/1/delete", {}, "ManageAttachments"),
])
def test_a_user_without_the_documented_privilege_is_refused(
        path: str, params: dict, privilege: str) -> None:
    with EsriDouble() as double:
        double.seed_job(id=1)
        double.seed_attachment(1, content=b"x", filename="x.txt")
        double.seed_user("clerk")
        everything = [p for p in ("CreateJob", "CloseJob", "DeleteJobs", "AssignAnyJob",
                                  "ManageAOI", "ManageAttachments") if p != privilege]
        double.seed_group("Clerks", users=["clerk"], privileges=everything)
        before = (json.dumps(double.jobs, sort_keys=True), double.attachments(1))
        answer = call(double, path, user="clerk", **params)
        assert code(answer) == 403 and privilege in json.dumps(answer)
        assert before == (json.dumps(double.jobs, sort_keys=True), double.attachments(1))
        double.seed_group("Clerks", users=["clerk"], privileges=[privilege], id=99)
        assert code(call(double, path, user="clerk", **params)) is None


def test_a_cached_root_shows_configuration_changes_only_after_the_cache_is_cleared() -> None:
    with EsriDouble(cache_root=True) as double:
        assert len(call(double, method="GET")["holdTypes"]) == 3
        double.seed_hold_type("Waiting for Budget")
        assert len(call(double, method="GET")["holdTypes"]) == 3
        assert len(call(double, "jobTypes/1", "GET")) > 5  # only the root is cached
        double.clear_root_cache()
        assert len(call(double, method="GET")["holdTypes"]) == 4


@pytest.mark.parametrize("key", ["percentageComplete", "jobTypeId", "stage", "endDate",
                                 "createdDate", "createdBy", "childJobIds", "id"])
def test_output_only_job_fields_are_not_update_properties(double: EsriDouble, key: str) -> None:
    job_id = create(double)
    before = double.job(job_id)
    answer = call(double, f"jobs/{job_id}/update", user="admin",
                  properties=json.dumps({key: 1}))
    assert code(answer) == 400 and [r.path for r in double.undocumented] == \
        [f"jobs/{job_id}/update"]
    assert double.job(job_id) == before


@pytest.mark.parametrize(("path", "params"), [
    ("jobs/1/holds/create", {"type": 1, "holdComments": "x"}),
    ("jobs/1/holds/1/release", {"releaseComments": "x"}),
    ("jobs/1/notes/update", {"notes": "x", "append": "true"}),
    ("jobs/1/activity/logAction", {"type": 7, "message": "x"}),
    ("jobs/1/attachments/add", {"storageType": 3, "filePath": "http://x", "filename": "x"}),
    ("jobs/1/update", {"percentageComplete": 5}),
])
def test_esri_field_names_used_as_parameters_are_undocumented(
        double: EsriDouble, path: str, params: dict) -> None:
    double.seed_job(id=1)
    double.seed_hold(1)
    answer = call(double, path, user="admin", **params)
    assert code(answer) == 400 and [r.path for r in double.undocumented] == [path]


def test_a_coarse_date_store_rounds_written_and_stamped_dates_down() -> None:
    with EsriDouble(date_resolution_ms=1000, clock=lambda: 1_800_000_000.789) as double:
        job_id = create(double, startDate=1_230_768_000_999)
        job = double.job(job_id)
        assert (job["startDate"], job["createdDate"]) == (1_230_768_000_000, 1_800_000_000_000)
        call(double, f"jobs/{job_id}/holds/create", user="admin", type=1)
        assert double.holds(job_id)[0]["holdDate"] == 1_800_000_000_000


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[EsriDouble]:
    """A double the fuzz test may change at will: jobs 1-3, a hold, an attachment, table T."""
    with EsriDouble() as running:
        for _ in range(3):
            running.seed_job()
        running.seed_hold(1)
        running.seed_attachment(1, content=b"x", filename="x.txt")
        running.seed_extended_table("T", ["A"])
        running.seed_extended_record(1, "T")
        yield running


ROUTE_PATTERNS = [("/".join(route.pattern), route) for route in ROUTES]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
VALUES = st.one_of(TEXT, st.integers(-(2**70), 2**70).map(str), st.sampled_from(
    ["", "1", "2", "true", "{}", "[]", '{"name": 1}', '{"aoi": null}', "admin", "1,2", "nan"]))


@settings(max_examples=3000 if os.environ.get("WMX_LONG") else 80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTE_PATTERNS), ids=st.lists(st.integers(0, 5), min_size=4,
                                                             max_size=4),
       names=st.lists(st.sampled_from(["user", "f", "jobs", "type", "comments", "notes",
                                       "properties", "storageType", "filePath", "id",
                                       "fields", "tables", "where", "assignedTo",
                                       "assignedType", "jobTypeId", "numJobs", "depJobId",
                                       "x-since", "guid"]), max_size=6),
       values=st.lists(VALUES, min_size=6, max_size=6), post=st.booleans())
def test_any_parameters_on_any_route_get_json_and_never_break_the_double(
        fuzzed: EsriDouble, route: tuple, ids: list, names: list, values: list,
        post: bool) -> None:
    seeded = fuzzed
    pattern, spec = route
    parts = pattern.split("/")
    captures = iter(ids)
    path = "/".join(str(next(captures)) if p.startswith("{") and p.endswith(":int}") else
                    ("T" if p.startswith("{") else p) for p in parts)
    params = {"f": "json", **dict(zip(names, values))}
    seeded.clear_requests()
    url = f"{seeded.url}/{path}" if path else seeded.url
    response = (requests.post(url, data=params, timeout=10) if post else
                requests.get(url, params=params, timeout=10))
    assert response.status_code == 200
    answer = response.json() if params["f"] == "json" else None
    assert seeded.internal_errors == []
    undocumented = {n for n in params if n not in spec.params and n not in
                    ("f", "token", "_ts", "callback", "user")}
    if undocumented and answer is not None:
        assert code(answer) == 400 and len(seeded.undocumented) == 1


def test_a_snapshot_holds_everything_a_job_carries_and_nothing_else(double: EsriDouble) -> None:
    other = EsriDouble()
    assert double.snapshot() == other.snapshot() == {}
    double.populate(30)
    other.populate(30)
    assert double.snapshot() == other.snapshot()
    snapshot = double.snapshot()
    assert set(snapshot[1]) == {"job", "holds", "notes", "activity", "attachments",
                                "dependencies", "extendedProperties"}
    assert snapshot[1]["attachments"][0]["content"] == b"1" * 64
    assert "pendingDays" not in snapshot[1]["job"]
    call(double, "jobs/2/notes/update", user="admin", notes="changed")
    assert double.snapshot() != other.snapshot()
    json.dumps(snapshot, default=bytes.hex)  # plain data


def test_a_linked_windows_path_keeps_its_folder_as_written(double: EsriDouble) -> None:
    job_id = create(double)
    call(double, f"jobs/{job_id}/attachments/add", user="admin", storageType=1,
         filePath=r"\\files\plans\sheet 1.pdf")
    (attachment,) = double.attachments(job_id)
    assert (attachment["folder"], attachment["filename"], attachment["type"]) == \
        (r"\\files\plans", "sheet 1.pdf", "pdf")


def test_eight_busy_clients_survive_two_restarts_and_leave_no_internal_error() -> None:
    with EsriDouble() as double:
        double.populate(20)
        stop = threading.Event()
        answered: list[int] = []

        def client(number: int) -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    job_id = 1 + number % 20
                    try:
                        session.get(f"{double.url}/jobs/{job_id}/holds", params={"f": "json"},
                                    timeout=5).json()
                        session.post(f"{double.url}/jobs/{job_id}/notes/update", timeout=5,
                                     data={"f": "json", "user": "admin", "notes": str(number)})
                        answered.append(number)
                    except requests.RequestException:  # the outage: refused, or cut
                        time.sleep(0.01)                # mid-answer (ChunkedEncodingError)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for _ in range(2):
            time.sleep(0.2)
            double.restart()
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in threads)
        assert len(answered) > 8 and double.internal_errors == []
        assert call(double, "jobs", "GET")["jobIds"] == list(range(1, 21))
