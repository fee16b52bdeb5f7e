"""Esri servers under stress in a cluster: pushes cut off half-way, a server down, clusters of
Esri servers only, configuration an Esri child cannot take, the state folder deleted."""

from __future__ import annotations

import os
import shutil

import pytest

import wmx
from tests.http_helpers import ADMIN, make_repository
from tests.test_esri_replication import (
    assert_documented_only,
    esri_server,
    replicate,
    seed_rich_job,
    state_folder,  # noqa: F401  (the autouse fixture: a private state folder per test)
    synchronize,
)
from wmx.engine.outcome import ChildTarget
from wmx.engine.synchronize import synchronize as engine_synchronize
from wmx.model.records import JobType
from wmx.repository.embedded import EmbeddedRepository
from wmx.tools.connect import open_location as open_repository


def _posts(double, fragment: str) -> int:
    return sum(1 for r in double.requests if r.method == "POST" and fragment in r.path.lower())


def _same_posts(double, fragment: str) -> int:
    """How many times the first write to a path like ``fragment`` was sent, as it was."""
    posts = [(r.path, sorted(r.params.items())) for r in double.requests
             if r.method == "POST" and fragment in r.path.lower()]
    return posts.count(posts[0])


@pytest.mark.parametrize("cut", ["jobs/create", "holds/create", "activity/logaction",
                                 "attachments/add", "dependencies/create", "notes/update",
                                 "/release"])
def test_a_push_cut_off_half_way_is_finished_by_the_next_run_without_creating_twice(
        tmp_path, cut):
    with esri_server() as esri:
        first, _ = seed_rich_job(esri)
        child = make_repository(tmp_path, "Child")
        assert replicate(esri.url, Child=child).status_code == 0
        with EmbeddedRepository(child) as repository:
            made = repository.create_job(2, user=ADMIN, name="new at the child")
            repository.create_hold(made.id, 3, user=ADMIN, comments="held")
            repository.log_action(made.id, 7, user=ADMIN, comments="a comment")
            repository.add_attachment(made.id, "f.bin", b"\x01\x02", user=ADMIN)
            repository.add_dependency(made.id, first, user=ADMIN)
            repository.set_notes(made.id, "notes", user=ADMIN)
            hold = next(h for h in repository.holds(first) if h.release_date is None)
            repository.release_hold(first, hold.id, user=ADMIN, comments="released")
        esri.fail_next(cut, mode="lost_reply")  # the server does the work; the reply is lost

        with pytest.raises(wmx.ExecuteError):  # the parent failed: the run failed
            synchronize(esri.url, Child=child)
        # A dry run in between writes nothing to the server: the unfinished push waits.
        posts = _posts(esri, "")
        with EmbeddedRepository(child) as repository:
            child_seq = repository.info().seq
        wmx.SynchronizeJobData(esri.url, "Redlands", f"Child true {child}", dry_run=True)
        assert _posts(esri, "") == posts
        with EmbeddedRepository(child) as repository:
            assert repository.info().seq == child_seq
        assert synchronize(esri.url, Child=child).status_code == 0
        assert synchronize(esri.url, Child=child).status_code == 0

        assert [j for j in esri.jobs if j == made.id] == [made.id]
        assert [h["holdComments"] for h in esri.holds(made.id)] == ["held"]
        assert [a["message"] for a in esri.activity(made.id)].count("a comment") == 1
        assert [a["filename"] for a in esri.attachments(made.id)] == ["f.bin"]
        assert [d["depJobId"] for d in esri.dependencies(made.id)] == [first]
        assert esri.notes(made.id) == "notes"
        released = [h for h in esri.holds(first) if h["releaseComments"] == "released"]
        assert len(released) == 1
        assert _same_posts(esri, cut) == 1, "the cut-off write was not made again"
        with EmbeddedRepository(child) as repository:
            assert len(repository.holds(made.id)) == 1
            assert len(repository.attachments(made.id)) == 1
        assert_documented_only(esri)


def test_an_esri_child_down_fails_alone_and_is_caught_up_by_the_next_run(tmp_path):
    parent = make_repository(tmp_path, "Parent")
    other = make_repository(tmp_path, "Other", job_id_start=50_000_001)
    with esri_server() as esri:
        rows = f"Esri true {esri.url};Other true {other}"
        assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
        with EmbeddedRepository(parent) as repository:
            job = repository.create_job(1, user=ADMIN, name="while Esri is down")
        esri.stop()
        result = wmx.SynchronizeJobData(str(parent), "Parent", rows)
        assert result.status_code != 0
        assert [row.status for row in result.last_sync] == ["FAILED", "OK"]
        with EmbeddedRepository(other) as repository:
            assert job.id in repository.jobs()
        esri.restart()
        result = wmx.SynchronizeJobData(str(parent), "Parent", result.getOutput(1))
        assert result.status_code == 0, result.getMessages()
        assert esri.job(job.id)["name"] == "while Esri is down"
        assert_documented_only(esri)


def test_a_cluster_of_esri_servers_only_replicates_and_synchronizes_through_wmx(tmp_path):
    with esri_server("Redlands") as parent, esri_server("Ohio") as ohio:
        first, second = seed_rich_job(parent)
        ohio.seed_job(name="Ohio's own, replaced", id=77)
        result = wmx.ReplicateJobData(parent.url, "Redlands", f"Ohio true {ohio.url}")
        assert result.status_code == 0, result.getMessages()
        assert sorted(ohio.jobs) == [first, second]
        assert {h["holdComments"] for h in ohio.holds(first)} == {"waiting for survey", "old"}
        [scan] = [a for a in ohio.attachments(first) if a["storageType"] == 2]
        assert ohio.attachment_content(scan["id"]) == bytes(range(256)) * 40
        assert ohio.notes(first) == "call the surveyor"
        assert [d["depJobId"] for d in ohio.dependencies(second)] == [first]

        ohio.update_job(second, description="edited in Ohio")
        ohio.seed_hold(first, type=3, holdComments="Ohio holds it")
        parent.update_job(first, name="renamed in Redlands")
        rows = f"Ohio true {ohio.url}"
        result = wmx.SynchronizeJobData(parent.url, "Redlands", rows)
        assert result.status_code == 0, result.getMessages()
        assert parent.job(second)["description"] == "edited in Ohio"
        assert "Ohio holds it" in {h["holdComments"] for h in parent.holds(first)}
        assert ohio.job(first)["name"] == "renamed in Redlands"

        wmx.SynchronizeJobData(parent.url, "Redlands", rows)  # logged activity echoes back
        parent.clear_requests()
        ohio.clear_requests()
        assert wmx.SynchronizeJobData(parent.url, "Redlands", rows).status_code == 0
        assert _posts(parent, "") == 0 and _posts(ohio, "") == 0, "nothing new, nothing written"
        assert len([h for h in ohio.holds(first) if h["holdComments"] == "Ohio holds it"]) == 1
        assert_documented_only(parent)
        assert_documented_only(ohio)


def test_the_activity_esri_logs_itself_for_a_pushed_job_is_the_clusters_record_not_a_second(
        tmp_path):
    with esri_server() as esri:
        esri.seed_job(name="there first")
        child = make_repository(tmp_path, "Child")
        assert replicate(esri.url, Child=child).status_code == 0
        with EmbeddedRepository(child) as repository:
            made = repository.create_job(2, user=ADMIN, name="made at the child")
            hold = repository.create_hold(made.id, 3, user=ADMIN, comments="child hold")
            repository.release_hold(made.id, hold.id, user=ADMIN, comments="go")
            repository.log_action(made.id, 7, user=ADMIN, comments="a comment")
            logged = {a.type for a in repository.activity(made.id)}
        for _ in range(3):
            assert synchronize(esri.url, Child=child).status_code == 0
        # One record per operation on both sides: the child's CreateJob and AddHold are the
        # ones Esri logged; the ReleaseHold Esri logged (wmx logs none) came to the child.
        types = sorted(a["type"] for a in esri.activity(made.id))
        assert len(types) == len(set(types)) and logged < set(types)
        assert [a["message"] for a in esri.activity(made.id)].count("a comment") == 1
        with EmbeddedRepository(child) as repository:
            assert sorted(a.type for a in repository.activity(made.id)) == types
        assert _posts(esri, "logaction") == 1, "only the comment was logged through logAction"
        assert_documented_only(esri)


def test_a_job_id_taken_on_an_esri_child_is_never_overwritten_and_reported_every_run(
        tmp_path):
    """An Esri user takes the id of a job the parent just made (a server ignoring
    JOB_ID_START_VALUE): the parent keeps its job and renumbers Esri's. Esri cannot renumber:
    the renumbered job reaches the server under its new id, and the server's old job is named
    by every run until it is deleted there; then the parent's job takes its id."""
    parent = make_repository(tmp_path, "Parent")
    with esri_server() as esri:
        rows = f"Esri true {esri.url}"
        assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
        with EmbeddedRepository(parent) as repository:
            mine = repository.create_job(1, user=ADMIN, name="made at the parent")
        esri.seed_job(id=mine.id, name="made on Esri", jobTypeId=2)
        messages = wmx.SynchronizeJobData(str(parent), "Parent", rows).getMessages()
        assert esri.job(mine.id)["name"] == "made on Esri", "never overwritten"
        assert f"job {mine.id}" in messages and "collision" in messages
        assert "it is now job" in messages
        for _ in range(2):  # the next runs, and every one after them
            messages = wmx.SynchronizeJobData(str(parent), "Parent", rows).getMessages()
            assert f"job {mine.id} on the Esri server" in messages
            assert "no longer synchronized" in messages and "collision" in messages
        with EmbeddedRepository(parent) as repository:
            [renumbered] = [j for j in repository.jobs() if j != mine.id]
            assert repository.get_job(renumbered).name == "made on Esri"
            assert repository.get_job(mine.id).name == "made at the parent"
        assert esri.job(renumbered)["name"] == "made on Esri"

        esri.jobs.pop(mine.id)  # deleted on the server by hand, as the warning says
        messages = wmx.SynchronizeJobData(str(parent), "Parent", rows).getMessages()
        assert "no longer synchronized" not in messages
        assert esri.job(mine.id)["name"] == "made at the parent"
        with EmbeddedRepository(parent) as repository:
            assert sorted(repository.jobs()) == sorted(esri.jobs)
        assert_documented_only(esri)


def test_a_replicate_into_an_esri_child_names_the_configuration_it_could_not_write(tmp_path):
    parent = make_repository(tmp_path, "Parent")
    with EmbeddedRepository(parent) as repository:
        repository.create_config(JobType(id=None, name="Road Survey"))  # type: ignore
        job = repository.create_job(1, user=ADMIN, name="travels anyway")
    with esri_server() as esri:
        result = wmx.ReplicateJobData(str(parent), "Parent", f"Esri true {esri.url}")
        assert result.status_code == 0
        road = [line for line in result.getMessages(1).splitlines() if "Road Survey" in line]
        assert len(road) == 1 and "job types" in road[0]
        assert esri.job(job.id)["name"] == "travels anyway"


def test_configuration_an_esri_child_cannot_take_is_a_warning_and_the_jobs_still_travel(
        tmp_path, caplog):
    parent = make_repository(tmp_path, "Parent")
    with esri_server() as esri:
        assert wmx.ReplicateJobData(str(parent), "Parent",
                                    f"Esri true {esri.url}").status_code == 0
        with EmbeddedRepository(parent) as repository:
            repository.create_config(JobType(id=None, name="Road Survey"))  # type: ignore
            job = repository.create_job(1, user=ADMIN, name="travels anyway")
        targets = [ChildTarget("Esri", esri.url)]
        with EmbeddedRepository(parent) as repository:
            outcome = engine_synchronize(repository, targets, open_repository)
        assert outcome.status_code == 0
        [child] = outcome.children
        road = [w for w in child.pushed.warnings if "Road Survey" in w]
        assert len(road) == 1, child.pushed.warnings
        assert "job types" in road[0] and esri.url in road[0]
        assert esri.job(job.id)["name"] == "travels anyway"

        with EmbeddedRepository(parent) as repository:
            repository.update_config(JobType, "Road Survey", description="renamed")
        result = wmx.SynchronizeJobData(str(parent), "Parent", f"Esri true {esri.url}")
        assert result.status_code == 0
        assert "Road Survey" in result.getMessages(1)
        assert "Road Survey" not in {t["name"] for t in esri.job_types.values()}

        caplog.clear()  # reported again by the next run, while it is unresolved
        with EmbeddedRepository(parent) as repository:
            assert engine_synchronize(repository, targets, open_repository).status_code == 0
        again = [r.getMessage() for r in caplog.records
                 if r.levelname == "WARNING" and "Road Survey" in r.getMessage()]
        assert len(again) == 1
        assert_documented_only(esri)


def _job_with_records(repository, job_type: int, name: str):
    """A new job with a hold, an activity record and an attachment."""
    job = repository.create_job(job_type, user=ADMIN, name=name)
    repository.create_hold(job.id, 3, user=ADMIN, comments=f"hold of {name}")
    repository.log_action(job.id, 7, user=ADMIN, comments=f"comment on {name}")
    repository.add_attachment(job.id, "c.txt", name.encode(), user=ADMIN)
    return job


def _settle_then_lose_the_state_folder(sync, esri, repository_path=None) -> tuple[str, dict]:
    """Synchronize twice, check both sides agree (with the embedded repository at
    ``repository_path``), delete the state folder; the next run's value table and the counts
    on both sides."""
    assert sync().status_code == 0
    result = sync()
    assert result.status_code == 0
    before: dict = {}
    if repository_path is not None:
        with EmbeddedRepository(repository_path) as repository:
            before = _counts(esri, repository)
        assert before["wmx"] == before["esri"]
    shutil.rmtree(os.environ["WMX_STATE_DIR"])
    return result.getOutput(1), before


def _counts(esri, repository) -> dict:
    """Per job, on both sides: holds, activity records, attachments, notes."""
    mine = {j: (len(repository.holds(j)), len(repository.activity(j)),
                len(repository.attachments(j)), repository.get_notes(j))
            for j in repository.jobs()}
    theirs = {j: (len(esri.holds(j)), len(esri.activity(j)), len(esri.attachments(j)),
                  esri.notes(j)) for j in esri.jobs}
    return {"wmx": mine, "esri": theirs}


def test_deleting_the_state_folder_duplicates_nothing_and_deletes_nothing(tmp_path):
    """An Esri parent whose mirror is lost (the state folder deleted, or the scheduled task
    now runs as another user): the next sync rebuilds it from the server and goes on, the
    edits made on both sides in the meantime travel, and nothing is doubled or dropped."""
    with esri_server() as esri:
        first, second = seed_rich_job(esri)
        child = make_repository(tmp_path, "Child")
        assert replicate(esri.url, Child=child).status_code == 0
        with EmbeddedRepository(child) as repository:
            made = _job_with_records(repository, 2, "made at the child")
            repository.set_notes(made.id, "child notes", user=ADMIN)
        rows, before = _settle_then_lose_the_state_folder(
            lambda: synchronize(esri.url, Child=child), esri, child)
        # Meanwhile, on both sides: an edit at the child, an edit and a new hold on Esri.
        with EmbeddedRepository(child) as repository:
            repository.update_job(made.id, user=ADMIN, description="edited at the child")
            repository.set_notes(first, "call the surveyor twice", user=ADMIN)
        esri.update_job(second, name="QA (renamed on Esri)")
        esri.seed_hold(made.id, type=2, holdComments="held on Esri")
        esri.clear_requests()

        result = wmx.SynchronizeJobData(esri.url, "Redlands", rows)
        assert result.status_code == 0, result.getMessages()
        assert "rebuilt" in result.getMessages()
        assert esri.job(made.id)["description"] == "edited at the child"
        assert esri.notes(first) == "call the surveyor twice"
        with EmbeddedRepository(child) as repository:
            assert repository.get_job(second).name == "QA (renamed on Esri)"
            after = _counts(esri, repository)
            names = [repository.get_job(j).name for j in repository.jobs()]
        assert len(names) == len(set(names))
        assert after["wmx"] == after["esri"]
        assert sorted(after["wmx"]) == sorted(before["wmx"])
        for job_id, (holds, activity, attachments, _notes) in before["wmx"].items():
            now = after["wmx"][job_id]
            assert now[0] == holds + (job_id == made.id)
            assert now[1] == activity and now[2] == attachments
        assert after["wmx"][made.id][3] == "child notes"
        assert _posts(esri, "holds/create") == 0 and _posts(esri, "attachments/add") == 0
        assert _posts(esri, "logaction") == 0 and _posts(esri, "jobs/create") == 0

        # The run after that rests.
        esri.clear_requests()
        assert wmx.SynchronizeJobData(esri.url, "Redlands", result.getOutput(1)
                                      ).status_code == 0
        assert _posts(esri, "") == 0
        with EmbeddedRepository(child) as repository:
            assert _counts(esri, repository) == after
        assert_documented_only(esri)


def test_an_esri_child_whose_state_folder_was_deleted_rejoins_at_the_next_sync(tmp_path):
    parent = make_repository(tmp_path, "Parent")
    with esri_server() as esri:
        rows = f"Esri true {esri.url}"
        with EmbeddedRepository(parent) as repository:
            job = _job_with_records(repository, 1, "from wmx")
            other = repository.create_job(1, user=ADMIN, name="second")
        assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
        esri.seed_hold(job.id, type=3, holdComments="made on Esri")
        rows, before = _settle_then_lose_the_state_folder(
            lambda: wmx.SynchronizeJobData(str(parent), "Parent", rows), esri, parent)
        with EmbeddedRepository(parent) as repository:
            repository.update_job(other.id, user=ADMIN, description="edited at the parent")
        esri.update_job(job.id, description="edited on Esri")
        with open_repository(esri.url) as looked_at:  # an admin looks at the server first
            assert sorted(looked_at.jobs()) == sorted(esri.jobs)
        esri.clear_requests()

        result = wmx.SynchronizeJobData(str(parent), "Parent", rows)
        assert result.status_code == 0, result.getMessages()
        assert esri.job(other.id)["description"] == "edited at the parent"
        with EmbeddedRepository(parent) as repository:
            assert repository.get_job(job.id).description == "edited on Esri"
            assert _counts(esri, repository) == before
        assert _posts(esri, "holds/create") == 0 and _posts(esri, "attachments/add") == 0
        assert _posts(esri, "logaction") == 0 and _posts(esri, "jobs/create") == 0
        assert_documented_only(esri)


def test_a_rebuilt_mirror_never_takes_a_job_an_esri_user_made_under_a_cluster_id_for_its_own(
        tmp_path):
    parent = make_repository(tmp_path, "Parent")
    with esri_server() as esri:
        rows = f"Esri true {esri.url}"
        assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
        rows, _ = _settle_then_lose_the_state_folder(
            lambda: wmx.SynchronizeJobData(str(parent), "Parent", rows), esri)
        with EmbeddedRepository(parent) as repository:
            late = repository.create_job(1, user=ADMIN, name="made at the parent")
        esri.seed_job(id=late.id, name="made on Esri under that id", jobTypeId=2)
        result = wmx.SynchronizeJobData(str(parent), "Parent", rows)
        assert esri.job(late.id)["name"] == "made on Esri under that id", "never overwritten"
        assert "collision" in result.getMessages()
        with EmbeddedRepository(parent) as repository:
            assert repository.get_job(late.id).name == "made at the parent"
            names = sorted(repository.get_job(j).name for j in repository.jobs())
        assert names == ["made at the parent", "made on Esri under that id"]


def test_a_replicate_after_the_state_folder_was_lost_keeps_what_the_child_had_not_sent(
        tmp_path):
    """ReplicateJobData consolidates a replica's unsent changes before it replaces it: with
    the Esri parent's mirror lost, the child is registered again first, so its new job
    reaches the server instead of only a rescue file, and nothing is doubled."""
    with esri_server() as esri:
        first, _ = seed_rich_job(esri)
        child = make_repository(tmp_path, "Child")
        assert replicate(esri.url, Child=child).status_code == 0
        with EmbeddedRepository(child) as repository:
            sent = _job_with_records(repository, 2, "sent before")
        _rows, before = _settle_then_lose_the_state_folder(
            lambda: synchronize(esri.url, Child=child), esri, child)
        with EmbeddedRepository(child) as repository:
            unsent = repository.create_job(2, user=ADMIN, name="made after the loss")
        result = replicate(esri.url, Child=child)
        assert result.status_code == 0, result.getMessages()
        assert esri.job(unsent.id)["name"] == "made after the loss"
        with EmbeddedRepository(child) as repository:
            after = _counts(esri, repository)
            assert repository.get_job(unsent.id).name == "made after the loss"
        assert after["wmx"] == after["esri"]
        for job_id in (first, sent.id):
            assert after["wmx"][job_id] == before["wmx"][job_id]
        assert_documented_only(esri)


def test_a_cluster_of_esri_servers_that_lost_both_mirrors_is_refused_until_replicated(
        tmp_path):
    """Both mirrors lived in the lost state folder: nothing records that Ohio is Redlands'
    replica any more (Esri servers keep no trace of wmx), and merging two servers wmx cannot
    tell apart from strangers would mix unrelated job data. The sync refuses Ohio, writing
    nothing; ReplicateJobData makes it a replica again, with nothing doubled."""
    with esri_server("Redlands") as parent, esri_server("Ohio") as ohio:
        first, _ = seed_rich_job(parent)
        replica = f"Ohio true {ohio.url}"
        assert wmx.ReplicateJobData(parent.url, "Redlands", replica).status_code == 0
        ohio.seed_hold(first, type=3, holdComments="Ohio holds it")
        rows, _ = _settle_then_lose_the_state_folder(
            lambda: wmx.SynchronizeJobData(parent.url, "Redlands", replica), parent)
        parent.clear_requests()
        ohio.clear_requests()
        with pytest.raises(wmx.ExecuteError, match="not a replica"):
            wmx.SynchronizeJobData(parent.url, "Redlands", rows)
        assert _posts(parent, "") == 0 and _posts(ohio, "") == 0
        assert wmx.ReplicateJobData(parent.url, "Redlands", replica).status_code == 0
        assert wmx.SynchronizeJobData(parent.url, "Redlands", rows).status_code == 0
        for server in (parent, ohio):
            assert [h["holdComments"] for h in server.holds(first)].count("Ohio holds it") == 1
            assert_documented_only(server)


def test_a_stranger_with_a_new_mirror_is_still_refused(tmp_path):
    """A rebuilt mirror is taken back only by a parent that registered the server: an Esri
    server never replicated from this parent gets the usual answer, and nothing is written."""
    parent = make_repository(tmp_path, "Parent")
    with esri_server() as esri:
        esri.seed_job(name="theirs")
        with pytest.raises(wmx.ExecuteError, match="not a replica"):
            wmx.SynchronizeJobData(str(parent), "Parent", f"Esri true {esri.url}")
        assert _posts(esri, "") == 0
        with EmbeddedRepository(parent) as repository:
            assert repository.jobs() == []


def test_an_esri_server_listed_twice_under_two_spellings_is_refused_before_any_write(tmp_path):
    parent = make_repository(tmp_path, "Parent")
    with esri_server() as esri:
        esri.seed_job(name="kept")
        other = esri.url.replace("127.0.0.1", "localhost").replace("WMServer", "wmserver")
        with pytest.raises(wmx.ExecuteError, match=r"000733|000589"):
            wmx.ReplicateJobData(str(parent), "Parent", f"A true {esri.url};B true {other}")
        assert _posts(esri, "") == 0
        assert [j["name"] for j in map(esri.job, esri.jobs)] == ["kept"]


@pytest.mark.parametrize("failure", ["envelope", "timeout"])
def test_an_esri_child_that_errs_or_stalls_fails_alone_within_the_timeout(
        tmp_path, monkeypatch, failure):
    import time

    parent = make_repository(tmp_path, "Parent")
    other = make_repository(tmp_path, "Other", job_id_start=50_000_001)
    with esri_server() as esri:
        rows = f"Esri true {esri.url};Other true {other}"
        assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
        with EmbeddedRepository(parent) as repository:
            job = repository.create_job(1, user=ADMIN, name="made while Esri misbehaves")
        if failure == "envelope":
            esri.fail_next("/holds", error_code=500, times=1)
        else:
            monkeypatch.setenv("WMX_TIMEOUT", "1")
            esri.latency = 3.0
        started = time.monotonic()
        result = wmx.SynchronizeJobData(str(parent), "Parent", rows)
        assert time.monotonic() - started < 20
        assert [row.status for row in result.last_sync] == ["FAILED", "OK"]
        with EmbeddedRepository(other) as repository:
            assert job.id in repository.jobs()
        esri.latency = 0.0
        monkeypatch.delenv("WMX_TIMEOUT", raising=False)
        assert wmx.SynchronizeJobData(str(parent), "Parent", rows).status_code == 0
        assert esri.job(job.id)["name"] == "made while Esri misbehaves"


def test_an_esri_child_whose_state_folder_was_deleted_is_replicated_again_without_duplicates(
        tmp_path):
    parent = make_repository(tmp_path, "Parent")
    with esri_server() as esri:
        rows = f"Esri true {esri.url}"
        with EmbeddedRepository(parent) as repository:
            job = repository.create_job(1, user=ADMIN, name="from wmx")
            repository.create_hold(job.id, 2, user=ADMIN, comments="hold it")
            repository.log_action(job.id, 7, user=ADMIN, comments="a comment")
            repository.add_attachment(job.id, "a.txt", b"bytes", user=ADMIN)
        assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
        esri.seed_hold(job.id, type=3, holdComments="made on Esri")
        assert wmx.SynchronizeJobData(str(parent), "Parent", rows).status_code == 0
        assert wmx.SynchronizeJobData(str(parent), "Parent", rows).status_code == 0

        def counts() -> tuple:
            with EmbeddedRepository(parent) as repository:
                mine = (len(repository.holds(job.id)), len(repository.activity(job.id)),
                        len(repository.attachments(job.id)))
            return mine, (len(esri.holds(job.id)), len(esri.activity(job.id)),
                          len(esri.attachments(job.id)))

        before = counts()
        shutil.rmtree(os.environ["WMX_STATE_DIR"])
        assert wmx.ReplicateJobData(str(parent), "Parent", rows).status_code == 0
        assert wmx.SynchronizeJobData(str(parent), "Parent", rows).status_code == 0
        assert counts() == before
        assert_documented_only(esri)
