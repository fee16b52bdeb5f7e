"""Esri Workflow Manager (Classic) servers in a cluster, end to end: the strict Esri double and
`wmx serve` on 127.0.0.1, the arcpy-style tools, real files in a temporary state folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import wmx
from tests.esri_double import EsriDouble
from tests.http_helpers import ADMIN, make_repository, running_server
from wmx.remote.esri import EsriRepository
from wmx.repository.embedded import EmbeddedRepository

PROBE = "replication/x-node"
"""The one request outside Esri's surface wmx sends a server: the first-contact probe."""


@pytest.fixture(autouse=True)
def state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("WMX_STATE_DIR", str(folder))
    monkeypatch.setenv("WMX_USER", ADMIN)
    for name in ("WMX_TOKEN", "WMX_USERNAME", "WMX_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return folder


@contextlib.contextmanager
def esri_server(service: str = "Redlands", **options: object) -> Iterator[EsriDouble]:
    double = EsriDouble(service, users=(ADMIN,), **options)  # type: ignore[arg-type]
    with double:
        yield double


@pytest.fixture
def esri() -> Iterator[EsriDouble]:
    with esri_server() as double:
        yield double


def assert_documented_only(double: EsriDouble) -> None:
    """Nothing outside Esri's documented surface reached the server, but the probe of first
    contact (at most once)."""
    probes = [r for r in double.undocumented if r.path == PROBE and r.method == "GET"]
    assert len(probes) <= 1
    assert [r for r in double.undocumented if r not in probes] == []
    assert double.unimplemented == []


def seed_rich_job(double: EsriDouble) -> tuple[int, int]:
    """Two jobs with every kind of sub-record Esri documents; returns their ids."""
    double.seed_extended_table("PARCELS", ["PARCEL_ID", "OWNER"])
    first = double.seed_job(name="Parcel edits", jobTypeId=1, description="north sheet",
                            aoi={"rings": [[[0, 0], [0, 1], [1, 1], [0, 0]]]},
                            poi={"points": [[0.5, 0.5]]}, dueDate=1_800_000_000_000)
    double.seed_hold(first, type=2, holdComments="waiting for survey")
    released = double.seed_hold(first, type=1, holdComments="old")
    double.holds(first)  # (the double keeps a copy; release it in place below)
    double.job_holds[first][released].update(releasedBy=ADMIN, releaseDate=1_700_000_000_000,
                                             releaseComments="done")
    double.seed_note(first, "call the surveyor")
    double.seed_activity(first, type=7, message="first comment", date=1_700_000_000_000)
    double.seed_activity(first, type=7, message="second comment", date=1_700_000_100_000)
    double.seed_attachment(first, content=bytes(range(256)) * 40, filename="scan.tif")
    double.seed_attachment(first, storageType=3, folder="https://example.com/plan")
    double.seed_attachment(first, storageType=1, folder=r"\\files\plans", filename="a.pdf")
    double.seed_extended_record(first, "PARCELS", {"PARCEL_ID": "17", "OWNER": "Ada"})
    second = double.seed_job(name="QA", jobTypeId=3, parentJobId=first)
    double.seed_dependency(second, depJobId=first, heldOnType=3, heldOnValue=2,
                           depOnType=3, depOnValue=5)
    return first, second


def replicate(parent: str, **children: Path | str) -> wmx.Result:
    rows = ";".join(f"{name} true {location}" for name, location in children.items())
    return wmx.ReplicateJobData(parent, "Redlands", rows)


def synchronize(parent: str, parent_name: str = "Redlands", **children: Path | str
                ) -> wmx.Result:
    rows = ";".join(f"{name} true {location}" for name, location in children.items())
    return wmx.SynchronizeJobData(parent, parent_name, rows)


def assert_has_rich_job(repository: object, first: int, second: int) -> None:
    job = repository.get_job(first)  # type: ignore[attr-defined]
    assert (job.name, job.description, job.job_type_id) == ("Parcel edits", "north sheet", 1)
    assert job.aoi == {"rings": [[[0, 0], [0, 1], [1, 1], [0, 0]]]}
    assert job.poi == {"points": [[0.5, 0.5]]}
    assert job.due_date is not None and int(job.due_date.timestamp() * 1000) == 1_800_000_000_000
    holds = {h.hold_comments: h for h in repository.holds(first)}  # type: ignore[attr-defined]
    assert set(holds) == {"waiting for survey", "old"}
    assert holds["old"].release_comments == "done" and holds["old"].release_date is not None
    assert repository.get_notes(first) == "call the surveyor"  # type: ignore[attr-defined]
    assert [a.message for a in repository.activity(first)] == [  # type: ignore[attr-defined]
        "first comment", "second comment"]
    attachments = {a.storage_type: a for a in repository.attachments(first)}  # type: ignore
    assert set(attachments) == {1, 2, 3}
    assert repository.attachment_content(  # type: ignore[attr-defined]
        first, attachments[2].id) == bytes(range(256)) * 40
    assert attachments[3].folder == "https://example.com/plan"
    assert (attachments[1].folder, attachments[1].filename) == (r"\\files\plans", "a.pdf")
    [record] = repository.extended_properties(first)  # type: ignore[attr-defined]
    assert record.table_name == "PARCELS"
    assert record.values["PARCEL_ID"] == "17" and record.values["OWNER"] == "Ada"
    [dependency] = repository.dependencies(second)  # type: ignore[attr-defined]
    assert (dependency.dep_job_id, dependency.held_on_value, dependency.dep_on_value) == (
        first, 2, 5)
    assert repository.get_job(second).parent_job_id == first  # type: ignore[attr-defined]


# --- detection -----------------------------------------------------------------------------

def test_an_esri_server_is_told_from_wmx_serve_on_first_contact(esri, tmp_path):
    served = make_repository(tmp_path, "Served")
    with running_server(served) as server, wmx.open_repository(server.url) as repository:
        assert type(repository).__name__ == "RestRepository"
    with wmx.open_repository(esri.url) as repository:
        assert isinstance(repository, EsriRepository)
    with wmx.open_repository(esri.url.replace("127.0.0.1", "localhost")) as repository:
        assert isinstance(repository, EsriRepository)
    assert [r.path for r in esri.undocumented] == [PROBE]
    assert_documented_only(esri)


def test_a_server_identity_survives_another_spelling_of_its_url(esri):
    with wmx.open_repository(esri.url) as one, wmx.open_repository(
            esri.url.replace("127.0.0.1", "localhost").replace("WMServer", "wmserver")) as two:
        assert one.info().node_id == two.info().node_id


# --- replicate from an Esri parent ------------------------------------------------------------

def test_replicate_from_an_esri_parent_brings_every_job_and_record_to_embedded_and_served_children(
        esri, tmp_path):
    first, second = seed_rich_job(esri)
    embedded = make_repository(tmp_path, "Embedded")
    served_path = make_repository(tmp_path, "Served")
    with running_server(served_path) as served:
        result = replicate(esri.url, Embedded=embedded, Served=served.url)
        assert result.status_code == 0, result.getMessages()
        with EmbeddedRepository(embedded) as child:
            assert child.jobs() == [first, second]
            assert_has_rich_job(child, first, second)
        with wmx.open_repository(served.url, user=ADMIN) as child:
            assert child.jobs() == [first, second]
            assert_has_rich_job(child, first, second)
    assert not [r for r in esri.requests if r.method == "POST"], "a replicate only reads it"
    assert_documented_only(esri)


def test_the_esri_configuration_travels_into_the_child(esri, tmp_path):
    esri.seed_job_type("Esri Only Type", id=40)
    esri.seed_status("Esri Review", id=40)
    child = make_repository(tmp_path, "Child")
    assert replicate(esri.url, Child=child).status_code == 0
    with EmbeddedRepository(child) as repository:
        assert [t.name for t in repository.list_config(wmx.model.records.JobType)
                if t.id == 40] == ["Esri Only Type"]
        assert repository.get_config(wmx.model.records.JobStatus, 40).name == "Esri Review"


# --- synchronize with an Esri parent ----------------------------------------------------------

def test_two_way_sync_with_an_esri_parent_carries_edits_both_ways_and_then_rests(esri, tmp_path):
    first, second = seed_rich_job(esri)
    child = make_repository(tmp_path, "Child")
    assert replicate(esri.url, Child=child).status_code == 0
    with EmbeddedRepository(child) as repository:
        made = repository.create_job(2, user=ADMIN, name="made at the child",
                                     description="from wmx")
        repository.create_hold(first, 3, user=ADMIN, comments="child hold")
        released = next(h for h in repository.holds(first) if h.hold_comments ==
                    "waiting for survey")
        repository.release_hold(first, released.id, user=ADMIN, comments="survey came")
        repository.set_notes(first, "notes from the child", user=ADMIN)
        repository.log_action(made.id, 7, user=ADMIN, comments="child comment")
        repository.add_attachment(made.id, "child.bin", b"\x00\x01child", user=ADMIN)
        repository.add_dependency(made.id, first, user=ADMIN)
        repository.update_job(second, user=ADMIN, description="edited at the child")
    esri.update_job(first, name="renamed on Esri")

    result = synchronize(esri.url, Child=child)
    assert result.status_code == 0, result.getMessages()

    assert esri.job(made.id)["name"] == "made at the child"
    assert esri.job(made.id)["description"] == "from wmx"
    assert esri.job(second)["description"] == "edited at the child"
    holds = {h["holdComments"]: h for h in esri.holds(first)}
    assert holds["child hold"]["releaseDate"] is None
    assert holds["waiting for survey"]["releaseComments"] == "survey came"
    assert esri.notes(first) == "notes from the child"
    assert [a["message"] for a in esri.activity(made.id)].count("child comment") == 1
    [attachment] = esri.attachments(made.id)
    assert esri.attachment_content(attachment["id"]) == b"\x00\x01child"
    assert [d["depJobId"] for d in esri.dependencies(made.id)] == [first]
    with EmbeddedRepository(child) as repository:
        assert repository.get_job(first).name == "renamed on Esri"

    synchronize(esri.url, Child=child)  # the server's own echoes (logged activity) come back
    with EmbeddedRepository(child) as repository:
        seq = repository.info().seq
    esri.clear_requests()
    result = synchronize(esri.url, Child=child)
    assert result.status_code == 0
    with EmbeddedRepository(child) as repository:
        assert repository.info().seq == seq, "a sync with nothing new writes nothing"
    assert [r.path for r in esri.requests if r.method == "POST"] == []
    assert_documented_only(esri)


# --- an Esri child of a wmx parent ------------------------------------------------------------

def test_replicate_into_an_esri_child_replaces_its_jobs_keeping_the_parent_ids(esri, tmp_path):
    parent = make_repository(tmp_path, "Parent")
    with EmbeddedRepository(parent) as repository:
        job = repository.create_job(1, user=ADMIN, name="from wmx", description="d",
                                    aoi={"rings": [[[2, 2], [2, 3], [3, 3], [2, 2]]]},
                                    poi={"points": [[2.5, 2.5]]})
        repository.create_hold(job.id, 2, user=ADMIN, comments="hold it")
        repository.set_notes(job.id, "wmx notes", user=ADMIN)
        repository.add_attachment(job.id, "plan.txt", b"plan", user=ADMIN)
        other = repository.create_job(3, user=ADMIN, name="second")
        repository.add_dependency(other.id, job.id, user=ADMIN)
    stale = esri.seed_job(name="only on the Esri server", id=900)

    result = wmx.ReplicateJobData(str(parent), "Parent", f"Esri true {esri.url}")
    assert result.status_code == 0, result.getMessages()

    assert sorted(esri.jobs) == [job.id, other.id] and stale not in esri.jobs
    assert esri.job(job.id)["name"] == "from wmx"
    assert esri.job(job.id)["aoi"] == {"rings": [[[2, 2], [2, 3], [3, 3], [2, 2]]]}
    assert esri.job(job.id)["poi"] == {"points": [[2.5, 2.5]]}
    assert [h["holdComments"] for h in esri.holds(job.id)] == ["hold it"]
    assert esri.notes(job.id) == "wmx notes"
    [attachment] = esri.attachments(job.id)
    assert esri.attachment_content(attachment["id"]) == b"plan"
    assert [d["depJobId"] for d in esri.dependencies(other.id)] == [job.id]

    with EmbeddedRepository(parent) as repository:
        repository.update_job(job.id, user=ADMIN, name="renamed at the parent")
    esri.update_job(other.id, description="edited on Esri")
    result = wmx.SynchronizeJobData(str(parent), "Parent", f"Esri true {esri.url}")
    assert result.status_code == 0, result.getMessages()
    assert esri.job(job.id)["name"] == "renamed at the parent"
    with EmbeddedRepository(parent) as repository:
        assert repository.get_job(other.id).description == "edited on Esri"
        assert [h.hold_comments for h in repository.holds(job.id)] == ["hold it"]
    assert [h["holdComments"] for h in esri.holds(job.id)] == ["hold it"]
    assert_documented_only(esri)


def test_each_resource_of_an_esri_server_is_read_once_a_run_and_attachment_bytes_once_ever(
        esri, tmp_path):
    jobs = 30
    for number in range(jobs):
        job = esri.seed_job(name=f"job {number}")
        esri.seed_attachment(job, content=b"x" * number, filename=f"{number}.bin")
    child = make_repository(tmp_path, "Child")
    per_run = 8 + 7 * jobs  # root, replication/info, 3 job types, users, groups, jobs; per job 7
    assert replicate(esri.url, Child=child).status_code == 0
    reads = [r for r in esri.requests if r.path != PROBE]
    assert len(reads) == per_run + jobs, "one download per embedded attachment"
    assert len({(r.path, tuple(sorted(r.params.items()))) for r in reads}) == len(reads)
    esri.clear_requests()
    assert synchronize(esri.url, Child=child).status_code == 0
    assert len(esri.requests) == per_run
    assert not [r for r in esri.requests if r.path.endswith("/content")]


def test_a_push_reads_again_only_what_its_writes_changed_and_never_downloads_its_own_bytes(
        esri, tmp_path):
    """Writing a job's hold must not cost the job's other six resources again, nor the bytes
    of an attachment wmx itself just uploaded (a replicate into an Esri child cost 51 requests
    a job before, 22 after)."""
    jobs = 10
    parent = make_repository(tmp_path, "Parent")
    with EmbeddedRepository(parent) as repository:
        for number in range(jobs):
            job = repository.create_job(1, user=ADMIN, name=f"job {number}")
            repository.create_hold(job.id, 2, user=ADMIN, comments="hold it")
            repository.log_action(job.id, 7, user=ADMIN, comments="a comment")
            repository.add_attachment(job.id, "a.bin", b"y" * 4096, user=ADMIN)
            repository.set_notes(job.id, "notes", user=ADMIN)
    rows = f"Esri true {esri.url}"
    assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
    writes = [r for r in esri.requests if r.method == "POST"]
    reads = [r for r in esri.requests if r.method == "GET"]
    assert len(writes) == 6 * jobs + 1  # per job: create, update, hold, comment, file, notes
    assert len(reads) <= 17 * jobs, f"{len(reads)} reads for {jobs} jobs"
    assert not [r for r in reads if r.path.endswith("/content")]
    with EmbeddedRepository(parent) as repository:
        for job_id in repository.jobs():
            repository.update_job(job_id, user=ADMIN, description="changed")
    esri.clear_requests()
    assert wmx.SynchronizeJobData(str(parent), "Parent", rows).status_code == 0
    per_job = 7 + 1 + 2  # the poll, the update, the job and its activity read again
    assert len(esri.requests) <= per_job * jobs + 8
    assert [esri.job(j)["description"] for j in sorted(esri.jobs)] == ["changed"] * jobs
    assert_documented_only(esri)


def test_job_operations_on_an_esri_server_go_to_it_and_travel_to_the_cluster(esri, tmp_path):
    child = make_repository(tmp_path, "Child")
    assert replicate(esri.url, Child=child).status_code == 0
    with wmx.open_repository(esri.url, user=ADMIN) as server:
        job = server.create_job(2, user=ADMIN, name="made through wmx jobs")
        server.create_hold(job.id, 1, user=ADMIN, comments="hold via wmx")
        assert [j.name for j in map(server.get_job, server.jobs())] == ["made through wmx jobs"]
    assert esri.job(job.id)["name"] == "made through wmx jobs"
    assert [h["holdComments"] for h in esri.holds(job.id)] == ["hold via wmx"]
    assert synchronize(esri.url, Child=child).status_code == 0
    with EmbeddedRepository(child) as repository:
        assert repository.get_job(job.id).name == "made through wmx jobs"
        assert [h.hold_comments for h in repository.holds(job.id)] == ["hold via wmx"]
    assert [h["holdComments"] for h in esri.holds(job.id)] == ["hold via wmx"]
    assert_documented_only(esri)


def test_an_esri_parent_and_a_served_wmx_child_synchronize_both_ways(esri, tmp_path):
    first, _ = seed_rich_job(esri)
    with running_server(make_repository(tmp_path, "Served")) as served:
        assert replicate(esri.url, Served=served.url).status_code == 0
        with wmx.open_repository(served.url, user=ADMIN) as child:
            made = child.create_job(1, user=ADMIN, name="made behind wmx serve")
            child.set_notes(first, "noted behind wmx serve", user=ADMIN)
        esri.update_job(first, description="changed on Esri")
        result = synchronize(esri.url, Served=served.url)
        assert result.status_code == 0, result.getMessages()
        assert esri.job(made.id)["name"] == "made behind wmx serve"
        assert esri.notes(first) == "noted behind wmx serve"
        with wmx.open_repository(served.url, user=ADMIN) as child:
            assert child.get_job(first).description == "changed on Esri"
    assert_documented_only(esri)
