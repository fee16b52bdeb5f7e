"""The store contract: one suite of the Repository protocol and JobTracking, run against every
store this process can hold itself (SQLite files and PostgreSQL schemas).

Each test names a promise of :class:`wmx.repository.base.Repository` or of the store
primitives, and proves it the way a user meets it: through the engine (replicate, sync) or the
protocol calls a peer makes. The PostgreSQL half is skipped without a server, and fails under
``WMX_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import attrs
import pytest

from tests import postgres_helpers
from tests.postgres_helpers import drop_schema
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.model.records import JobType
from wmx.repository import InvalidRequest, open_repository
from wmx.repository.base import NodeRecord
from wmx.repository.setup import initialise

USER = "tester"
postgres_server = postgres_helpers.postgres_server


@attrs.define
class Backend:
    """Makes repositories of one store kind; every one is removed after the test."""

    kind: str
    new_location: Callable[[str], str]
    opened: list[Any] = attrs.Factory(list)

    def create(self, name: str, *, job_id_start: int = 1) -> str:
        location = self.new_location(name)
        initialise(location, name=name, config="quick", job_id_start=job_id_start,
                   admin=USER).close()
        return location

    def open(self, location: str) -> Any:
        repository = open_repository(location)
        self.opened.append(repository)
        return repository

    def cluster(self, children: int = 1) -> tuple[Any, list[str]]:
        """A parent and replicated children; returns the open parent and the children's
        locations."""
        parent = self.open(self.create("Parent"))
        locations = [self.create(f"Child{n}", job_id_start=1000 * n)
                     for n in range(1, children + 1)]
        outcome = replicate(parent, targets(locations), open_repository)
        assert outcome.status_code == 0, outcome
        return parent, locations


def targets(locations: list[str]) -> list[ChildTarget]:
    return [ChildTarget(f"Child{n}", location) for n, location in enumerate(locations, 1)]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    schemas: list[str] = []
    if request.param == "sqlite":
        store = Backend("sqlite", lambda name: str(tmp_path / f"{name.lower()}.wmxdb"))
    else:
        server = request.getfixturevalue("postgres_server")

        def new_location(name: str) -> str:
            schemas.append(f"c_{name.lower()}_{uuid.uuid4().hex[:8]}")
            return str(server.location(schemas[-1]))

        store = Backend("postgresql", new_location)
    yield store
    for repository in store.opened:
        repository.close()
    for schema in schemas:
        drop_schema(request.getfixturevalue("postgres_server"), schema)


def test_a_repository_keeps_its_identity_across_opens_and_a_renewed_incarnation_shows(
        backend: Backend) -> None:
    location = backend.create("Parent")
    first, second = backend.open(location), backend.open(location)
    assert first.info().node_id == second.info().node_id
    assert first.info().name == "Parent"
    renewed = first.renew_incarnation()
    assert second.info().incarnation == renewed
    assert second.info().seq == first.info().seq  # node-local: not in the change log


def test_every_write_moves_to_the_head_of_the_log_and_the_feed_pages_through_it_once(
        backend: Backend) -> None:
    repository = backend.open(backend.create("Parent"))
    start = repository.info().seq
    jobs = [repository.create_job(1, user=USER).id for _ in range(7)]
    repository.update_job(jobs[0], user=USER, description="edited")
    seen, since, pages = [], start, 0
    while True:
        page = repository.changes(since, limit=3)
        seen += [change.guid for change in page.changes]
        assert page.last_seq > since or not page.more
        since, pages = page.last_seq, pages + 1
        if not page.more:
            break
    assert since == repository.info().seq
    assert len(seen) == len(set(seen)), "an element appears twice in one read of the feed"
    assert pages >= 3
    assert repository.changes(since, limit=3).changes == []


def test_a_feed_read_by_wall_time_starts_at_the_first_write_after_it(backend: Backend) -> None:
    repository = backend.open(backend.create("Parent"))
    repository.create_job(1, user=USER)
    time.sleep(0.01)  # wall-time marks have millisecond resolution
    moment = datetime.now(timezone.utc)
    later = repository.create_job(1, user=USER)
    page = repository.changes(repository.info().seq, limit=100, since_time=moment)
    assert {change.int_id for change in page.changes if change.kind == "job"} == {later.id}


def test_applying_the_same_changes_twice_writes_nothing_the_second_time(
        backend: Backend) -> None:
    parent, (child_location,) = backend.cluster()
    parent.create_job(1, user=USER)
    changes = parent.changes(0, limit=1000).changes
    child = backend.open(child_location)
    node = parent.info().node_id
    child.apply(changes, parent_node=node)
    seq = child.info().seq
    again = child.apply(changes, parent_node=node)
    assert again.writes == 0 and child.info().seq == seq


def test_a_dry_run_reports_what_it_would_write_and_writes_nothing(backend: Backend) -> None:
    parent, (child_location,) = backend.cluster()
    parent.create_job(1, user=USER)
    child = backend.open(child_location)
    before = child.all_rows()
    report = child.apply(parent.changes(0, limit=1000).changes,
                         parent_node=parent.info().node_id, dry_run=True)
    assert report.inserted >= 1
    assert child.all_rows() == before


def test_a_sync_converges_parent_and_children_and_a_rerun_writes_nothing(
        backend: Backend) -> None:
    parent, locations = backend.cluster(children=2)
    backend.open(locations[0]).create_job(1, user=USER)
    parent.create_job(2, user=USER)
    assert synchronize(parent, targets(locations), open_repository).status_code == 0
    rows = parent.all_rows()
    for location in locations:
        assert backend.open(location).all_rows() == rows
    seq = parent.info().seq
    assert synchronize(parent, targets(locations), open_repository).status_code == 0
    assert parent.info().seq == seq


def test_an_edit_made_on_both_sides_is_one_conflict_whose_loser_is_kept(
        backend: Backend) -> None:
    parent, (child_location,) = backend.cluster()
    job = parent.create_job(1, user=USER)
    assert synchronize(parent, targets([child_location]), open_repository).status_code == 0
    child = backend.open(child_location)
    child.update_job(job.id, user=USER, description="child's")
    parent.update_job(job.id, user=USER, description="parent's")
    outcome = synchronize(parent, targets([child_location]), open_repository)
    assert outcome.status_code == 0
    assert [conflict.reason for conflict in parent.conflicts()] == ["concurrent_edit"]
    assert child.get_job(job.id).description == parent.get_job(job.id).description == "parent's"


def test_a_child_element_whose_name_the_parent_holds_arrives_renamed(backend: Backend) -> None:
    parent, (child_location,) = backend.cluster()
    backend.open(child_location).create_config(JobType(id=None, name="Survey", description="child"))
    parent.create_config(JobType(id=None, name="Survey", description="parent"))
    assert synchronize(parent, targets([child_location]), open_repository).status_code == 0
    names = sorted(job_type.name for job_type in parent.list_config(JobType))
    assert "Survey" in names and "Survey_1" in names


def test_a_staged_copy_is_invisible_until_committed_and_an_aborted_one_leaves_no_trace(
        backend: Backend) -> None:
    source = backend.open(backend.create("Parent"))
    source.create_job(1, user=USER)
    target = backend.open(backend.create("Child", job_id_start=1000))
    before = target.all_rows()
    rows = source.snapshot(0, 10_000).rows
    load = target.begin_load()
    target.load_rows(load, rows)
    assert target.all_rows() == before
    target.abort_load(load)
    assert target.all_rows() == before
    with pytest.raises(InvalidRequest):
        target.load_rows(load, rows)
    load = target.begin_load()
    target.load_rows(load, rows[:5])
    target.load_rows(load, rows[5:])
    info = target.commit_load(load, parent_node_id=source.info().node_id, id_block_start=1000)
    assert target.all_rows() == source.all_rows()
    assert info.parent_node_id == source.info().node_id and info.id_block_start == 1000
    assert target.create_job(1, user=USER).id == 1000


def test_a_staged_copy_with_one_guid_twice_is_refused_and_the_store_is_as_it_was(
        backend: Backend) -> None:
    source = backend.open(backend.create("Parent"))
    target = backend.open(backend.create("Child"))
    before = target.all_rows()
    rows = source.snapshot(0, 10_000).rows
    load = target.begin_load()
    target.load_rows(load, [*rows, rows[0]])
    with pytest.raises(Exception) as refused:
        target.commit_load(load, parent_node_id=source.info().node_id, id_block_start=1)
    assert type(refused.value).__module__.startswith("wmx")
    assert target.all_rows() == before


def test_an_element_whose_body_is_not_what_its_kind_needs_is_refused_and_nothing_written(
        backend: Backend) -> None:
    parent, (child_location,) = backend.cluster()
    child = backend.open(child_location)
    good = parent.changes(0, limit=1).changes[0]
    bad = attrs.evolve(good, guid=str(uuid.uuid4()), body="{not json", hlc=good.hlc + 1)
    seq = child.info().seq
    with pytest.raises(InvalidRequest):
        child.apply([good, bad], parent_node=parent.info().node_id)
    assert child.info().seq == seq


def test_nodes_are_saved_updated_and_cleared_without_touching_the_change_log(
        backend: Backend) -> None:
    repository = backend.open(backend.create("Parent"))
    seq = repository.info().seq
    node = NodeRecord(node_id="n1", name="Ohio", url="ohio.wmxdb", id_block_start=5000,
                      last_sync=datetime(2026, 12, 1, tzinfo=timezone.utc))
    repository.save_node(node)
    repository.save_node(attrs.evolve(node, pull_seq=7, push_seq=9, is_connected=False))
    (saved,) = repository.nodes()
    assert (saved.pull_seq, saved.push_seq, saved.is_connected) == (7, 9, False)
    assert saved.last_sync == node.last_sync
    repository.clear_replication_info()
    assert repository.nodes() == [] and repository.info().seq == seq


def test_child_jobs_are_found_by_their_parent_job_id(backend: Backend) -> None:
    repository = backend.open(backend.create("Parent"))
    parent_job = repository.create_job(1, user=USER)
    children = [repository.create_job(1, user=USER, parent_job_id=parent_job.id).id
                for _ in range(2)]
    repository.create_job(1, user=USER)
    assert repository.child_job_ids(parent_job.id) == children


def test_writes_in_one_transaction_commit_together_or_not_at_all(backend: Backend) -> None:
    repository = backend.open(backend.create("Parent"))
    seq = repository.info().seq
    with pytest.raises(RuntimeError), repository.transaction():
        repository.create_job(1, user=USER)
        repository.create_job(1, user=USER)
        raise RuntimeError("interrupted before the commit")
    assert repository.info().seq == seq and repository.job_ids() == []
    with repository.transaction():
        first = repository.create_job(1, user=USER)
        second = repository.create_job(1, user=USER)
    assert repository.job_ids() == [first.id, second.id]


def test_a_dry_run_inside_an_open_transaction_is_refused_not_committed(backend: Backend
                                                                       ) -> None:
    """A transaction opened inside another joins it, so a dry run's rollback there could not
    throw only its own writes away: committed with the rest, the dry run would write. It is
    refused, and nothing of the outer transaction is kept either."""
    parent, (child_location,) = backend.cluster()
    parent.create_job(1, user=USER)
    child = backend.open(child_location)
    before = child.all_rows()
    with pytest.raises(InvalidRequest, match="dry run"), child.transaction():
        child.apply(parent.changes(0, limit=1000).changes,
                    parent_node=parent.info().node_id, dry_run=True)
    assert child.all_rows() == before
