"""The embedded store's write path: new GUIDs and what an update rewrites.

Both are about the cost of a sync on a large repository (SPEC §4: it must follow the number of
changes, not the repository's size): every index an UPDATE touches and every random GUID an
INSERT adds costs one more random page write per changed row.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid

import attrs
import pytest

from tests.conftest import ADMIN
from wmx.model.changes import Change
from wmx.model.clock import MAX_STAMP
from wmx.model.guids import new_guid
from wmx.model.records import JobType
from wmx.repository.base import InvalidRequest
from wmx.repository.embedded import EmbeddedRepository
from wmx.store.rows import SCHEMA_VERSION, parent_job_id


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


def _make_layout_1(path) -> None:
    """Turn a repository file back into the layout wmx wrote before version 2: no
    ``parent_job_id`` or ``row_no`` column, child jobs found through a ``json_extract``
    index on the body, elements in ``rowid`` order."""
    with contextlib.closing(sqlite3.connect(str(path), isolation_level=None)) as db:
        for statement in (
                "DROP INDEX elements_parent_job", "DROP INDEX elements_row_no",
                "ALTER TABLE elements DROP COLUMN parent_job_id",
                "ALTER TABLE elements DROP COLUMN row_no",
                "CREATE INDEX elements_parent_job ON elements("
                "json_extract(body, '$.parentJobId')) WHERE kind='job' AND deleted=0"
                " AND json_extract(body, '$.parentJobId') IS NOT NULL",
                "UPDATE meta SET value='1' WHERE key='schema_version'"):
            db.execute(statement)


def test_a_file_of_the_previous_layout_opens_upgraded_and_finds_its_child_jobs(cluster):
    with cluster.parent() as parent:
        top = parent.create_job(1, user=ADMIN)
        children = [parent.create_job(1, user=ADMIN, parent_job_id=top.id).id for _ in range(2)]
        parent.update_job(children[0], user=ADMIN, description="edited")
        rows_before = parent.all_rows()
    _make_layout_1(cluster.parent_path)
    with contextlib.closing(sqlite3.connect(str(cluster.parent_path))) as db:
        order_before = [guid for (guid,) in db.execute("SELECT guid FROM elements ORDER BY rowid")]

    with EmbeddedRepository(cluster.parent_path) as upgraded:
        assert upgraded.child_job_ids(top.id) == children
        assert upgraded.all_rows() == rows_before
        page = upgraded.snapshot(0, len(order_before) + 1)
        assert [row[0] for row in page.rows] == order_before  # row_no follows the old rowid
        later = upgraded.create_job(1, user=ADMIN, parent_job_id=top.id).id
        assert upgraded.child_job_ids(top.id) == [*children, later]
    with contextlib.closing(sqlite3.connect(str(cluster.parent_path))) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            SCHEMA_VERSION,)
    assert cluster.sync().status_code == 0
    with cluster.child("Child1") as child:
        assert child.child_job_ids(top.id) == [*children, later]
    cluster.assert_converged()


@pytest.mark.parametrize(("body", "parent"), [
    ('{"parentJobId": 7}', 7), ('{"parentJobId": 7.0}', 7), ('{"parentJobId": 7.5}', None),
    ('{"parentJobId": "7"}', None), ('{"parentJobId": true}', None),
    ('{"parentJobId": 1e30}', None), ('{"parentJobId": null}', None), ("{}", None),
    ("[7]", None), ("7", None), ("{not json", None), ("", None), (None, None)])
def test_the_parent_job_column_is_read_from_the_body_and_never_fails(body, parent):
    assert parent_job_id("job", body, 0) == parent
    assert parent_job_id("job", body, 1) is None  # a deleted job is nobody's child
    assert parent_job_id("hold", body, 0) is None


def test_a_job_body_that_is_not_json_is_stored_without_breaking_child_job_lookups(cluster):
    with cluster.parent() as parent:
        top = parent.create_job(1, user=ADMIN)
        child = parent.create_job(1, user=ADMIN, parent_job_id=top.id).id
        with parent.transaction() as tx:
            tx.write_local(Change(guid=new_guid(), kind="job", hlc=parent.clock.now(),
                                  origin=tx.node_id(), int_id=99_999, body="{not json"))
        assert parent.child_job_ids(top.id) == [child]
        assert 99_999 in parent.job_ids()
        parent.update_job(child, user=ADMIN, description="still writable")
        assert parent.child_job_ids(top.id) == [child]


def test_a_snapshot_cursor_survives_a_renumbering_of_rowids(cluster):
    """VACUUM may renumber the rowids of a table without an INTEGER PRIMARY KEY (the elements
    table's key is a GUID): a copy paging by rowid would then meet elements twice, or never."""
    with cluster.parent() as parent:
        for _ in range(5):
            parent.create_job(1, user=ADMIN)
        expected = sorted(row[0] for row in parent.all_rows())
        first = parent.snapshot(0, 4)
        with contextlib.closing(sqlite3.connect(str(cluster.parent_path),
                                                isolation_level=None)) as db:
            db.execute("UPDATE elements SET rowid = 1000000 - rowid")  # as VACUUM may
        seen = [row[0] for row in first.rows]
        cursor = first.cursor
        while True:
            page = parent.snapshot(cursor, 4)
            seen += [row[0] for row in page.rows]
            cursor = page.cursor
            if not page.more:
                break
    assert sorted(seen) == expected
