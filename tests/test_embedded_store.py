"""The embedded store's write path: new GUIDs and what an update rewrites.

Both are about the cost of a sync on a large repository (SPEC §4: it must follow the number of
changes, not the repository's size): every index an UPDATE touches and every random GUID an
INSERT adds costs one more random page write per changed row.
"""

from __future__ import annotations

import threading
import time
import uuid

import attrs
import pytest

from tests.conftest import ADMIN
from wmx.model.clock import MAX_STAMP
from wmx.model.guids import new_guid
from wmx.model.records import JobType
from wmx.repository.base import InvalidRequest


def test_new_guids_are_version_7_unique_and_ordered_by_creation_time():
    first = [new_guid() for _ in range(2000)]
    time.sleep(0.002)
    later = new_guid()
    parsed = [uuid.UUID(guid) for guid in first]
    assert {guid.version for guid in parsed} == {7}
    assert {guid.variant for guid in parsed} == {uuid.RFC_4122}
    assert len(set(first)) == len(first)
    assert all(guid == str(value) for guid, value in zip(first, parsed))  # canonical text
    assert max(first) < later  # a later millisecond sorts after every earlier GUID


def test_elements_created_locally_get_time_ordered_guids(cluster):
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
        job_type = parent.create_config(JobType(id=None, name="Survey"))
    assert uuid.UUID(job.guid).version == 7
    assert uuid.UUID(job_type.guid).version == 7


def _updates_made_by(repository, action) -> list[str]:
    statements: list[str] = []
    repository._db.set_trace_callback(statements.append)
    try:
        action()
    finally:
        repository._db.set_trace_callback(None)
    return [sql for sql in statements if sql.startswith("UPDATE elements")]


def test_an_update_leaves_unchanged_key_columns_and_their_indexes_alone(cluster):
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
        updates = _updates_made_by(
            parent, lambda: parent.update_job(job.id, user=ADMIN, description="edited"))
        assert updates, "the edit should update the job's row"
        assignments = updates[0].split(" SET ")[1].split(" WHERE ")[0]
        for column in ("kind=", "int_id=", "job_guid=", "name="):
            assert column not in assignments
        assert parent.get_job(job.id).description == "edited"


def test_a_rename_updates_the_name_and_lookups_by_name_follow_it(cluster):
    with cluster.parent() as parent:
        parent.create_config(JobType(id=None, name="Survey"))
        updates = _updates_made_by(
            parent, lambda: parent.update_config(JobType, "Survey", name="Field survey"))
        assert "name=" in updates[0]
        assert parent.get_config(JobType, "Field survey").name == "Field survey"
        assert parent._find_config(JobType, "Survey") is None
    outcome = cluster.sync()
    assert outcome.status_code == 0
    with cluster.child("Child1") as child:
        assert child.get_config(JobType, "Field survey").name == "Field survey"
        assert child._find_config(JobType, "Survey") is None
    cluster.assert_converged()


def test_an_edit_racing_another_writer_keeps_both_changes(cluster):
    """Found in review of the concurrent-writer tests: ``update_job`` read the job before its
    write transaction began, so a version written in between (by a sync, or another request
    to the same server) was overwritten by one built on the old read, with a newer stamp —
    the other writer's change was lost everywhere."""
    with cluster.parent() as script, cluster.parent() as other:
        job = script.create_job(1, user=ADMIN)
        read_job = script.get_job
        racers: list[threading.Thread] = []

        def read_then_let_the_other_writer_in(job_id: int):
            found = read_job(job_id)
            racer = threading.Thread(target=other.update_job, args=(job_id,),
                                     kwargs={"user": ADMIN, "name": "renamed elsewhere"})
            racer.start()
            racer.join(timeout=0.5)  # it waits for the write lock, if the edit holds it
            racers.append(racer)
            return found

        script.get_job = read_then_let_the_other_writer_in
        script.update_job(job.id, user=ADMIN, description="edited here")
        racers[0].join()
        final = other.get_job(job.id)
        assert (final.name, final.description) == ("renamed elsewhere", "edited here")


@pytest.mark.parametrize("stamp", [MAX_STAMP + 1, 2 ** 63 - 1, -1])
def test_a_version_no_clock_could_have_stamped_is_refused_and_poisons_nothing(cluster, stamp):
    """Found by the server fuzzing: a version stamped 2**63 - 1 was applied, the clock
    adopted it, and from then on every local write overflowed SQLite's integers (a raw
    OverflowError, not even a repository error): one hostile or corrupt peer disabled the
    repository for good. Applied directly, staged by a replicate, or sent as a dry run's
    overlay, such a version is refused and nothing is written."""
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN)
        good = child.changes(0, limit=10 ** 6, origin=child.info().node_id).changes
    poisoned = attrs.evolve(good[0], hlc=stamp)
    with cluster.parent() as parent:
        seq, clock = parent.info().seq, parent.clock.last
        with pytest.raises(InvalidRequest):
            parent.apply([poisoned], parent_node=parent.info().node_id)
        with pytest.raises(InvalidRequest):
            parent.apply([], parent_node=parent.info().node_id, overlay=[poisoned],
                         dry_run=True)
        load = parent.begin_load()
        with pytest.raises(InvalidRequest):
            parent.load_rows(load, [poisoned.to_row()])
        parent.abort_load(load)
        assert (parent.info().seq, parent.clock.last) == (seq, clock)
        parent.apply(good, parent_node=parent.info().node_id)
        assert parent.get_job(job.id).guid == job.guid
        assert parent.create_job(1, user=ADMIN).id
