"""The REST client against a live wmx server behaves exactly like the embedded store it
serves: same pages, same reports, same resulting rows — so the engine cannot tell them apart."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest
import requests

from tests.http_helpers import ADMIN, make_repository, running_server
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.model.changes import Change, ConflictPolicy
from wmx.repository import open_repository
from wmx.repository.base import ConflictRecord, NodeInfo, NodeRecord, Repository
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.rest import RestRepository

pytestmark = pytest.mark.http


def _populate(path: Path) -> None:
    """Jobs with every kind of sub-record, embedded content, and a deleted job (tombstones)."""
    with EmbeddedRepository(path) as repository:
        for number in range(12):
            job = repository.create_job(1 + number % 3, user=ADMIN, name=f"Job {number}")
            repository.create_hold(job.id, 1, user=ADMIN, comments="wait")
            repository.set_notes(job.id, f"notes {number}", user=ADMIN)
            repository.add_attachment(job.id, f"file{number}.bin", bytes([number]) * 300,
                                      user=ADMIN)
            repository.add_extended_property(job.id, "JTX_X", {"N": number}, user=ADMIN)
        repository.add_dependency(1, 2, user=ADMIN)
        repository.delete_job(3, user=ADMIN)


@attrs.define
class Served:
    path: Path
    url: str

    def direct(self) -> EmbeddedRepository:
        return EmbeddedRepository(self.path)

    def remote(self, **options: object) -> RestRepository:
        return RestRepository(self.url, user=ADMIN, **options)  # type: ignore[arg-type]


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Served]:
    path = make_repository(tmp_path)
    _populate(path)
    with running_server(path) as server:
        yield Served(path, server.url)


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[Path, Served]]:
    """Two byte-identical empty repositories: one used directly, one served."""
    direct = make_repository(tmp_path, "Target", "minimum")
    served = tmp_path / "served.wmxdb"
    shutil.copy(direct, served)
    with running_server(served) as server:
        yield direct, Served(served, server.url)


def open_as_admin(location: str) -> Repository:
    return open_repository(location, user=ADMIN)


def _rows(path: Path) -> list[tuple]:
    with EmbeddedRepository(path) as repository:
        return repository.all_rows()


def _without_time(conflicts: list[ConflictRecord]) -> list[ConflictRecord]:
    return [attrs.evolve(conflict, detected_at=None) for conflict in conflicts]


def test_info_is_the_stores_identity(parent: Served) -> None:
    with parent.direct() as direct, parent.remote() as remote:
        here, there = direct.info(), remote.info()
    assert isinstance(there, NodeInfo)
    assert (there.node_id, there.name, there.incarnation, there.seq, there.parent_node_id,
            there.id_block_start) == (here.node_id, here.name, here.incarnation, here.seq,
                                      here.parent_node_id, here.id_block_start)


def test_change_pages_equal_the_stores(parent: Served) -> None:
    with parent.direct() as direct, parent.remote() as remote:
        node = direct.info().node_id
        queries = [dict(since_seq=0, limit=1000), dict(since_seq=0, limit=7),
                   dict(since_seq=40, limit=25), dict(since_seq=0, limit=50, origin=node),
                   dict(since_seq=0, limit=50, exclude_origin=node),
                   dict(since_seq=10_000, limit=5, since_time=datetime.now(timezone.utc)
                        - timedelta(hours=1))]
        for query in queries:
            assert remote.changes(**query) == direct.changes(**query), query
        page = remote.changes(0, limit=1000)
    assert any(change.content for change in page.changes)
    assert any(change.deleted for change in page.changes)


def test_snapshot_pages_equal_the_stores(parent: Served) -> None:
    with parent.direct() as direct, parent.remote() as remote:
        cursor, pages = 0, 0
        while True:
            here, there = direct.snapshot(cursor, 40), remote.snapshot(cursor, 40)
            assert there == here
            cursor, pages = there.cursor, pages + 1
            if not there.more:
                break
    assert pages > 2


def test_apply_reports_and_results_equal_applying_directly(
        parent: Served, twins: tuple[Path, Served]) -> None:
    direct_path, served = twins
    with parent.direct() as source:
        parent_id = source.info().node_id
        changes = source.changes(0, limit=10_000).changes
    with EmbeddedRepository(direct_path) as direct, served.remote() as remote:
        dry_here = direct.apply(changes[:30], parent_node=parent_id, dry_run=True)
        dry_there = remote.apply(changes[:30], parent_node=parent_id, dry_run=True)
        assert dry_there == dry_here and dry_there.written
        assert _rows(direct_path) == _rows(served.path)

        assert remote.apply(changes, parent_node=parent_id) == \
            direct.apply(changes, parent_node=parent_id)
        again = remote.apply(changes, parent_node=parent_id)
        assert again.writes == 0 and again.unchanged == len(changes)
    assert _rows(direct_path) == _rows(served.path)


def test_conflicts_travel_and_are_kept_alike(parent: Served,
                                             twins: tuple[Path, Served]) -> None:
    direct_path, served = twins
    with parent.direct() as source:
        changes = source.changes(0, limit=10_000).changes
    job = next(change for change in changes if change.kind == "job" and not change.deleted)
    theirs = Change(**{**attrs.asdict(job), "hlc": job.hlc + 1, "origin": "child-node",
                       "body": job.body.replace("Job", "Child edit")})
    mine = Change(**{**attrs.asdict(job), "hlc": job.hlc + 2, "origin": "parent-node"})
    with EmbeddedRepository(direct_path) as direct, served.remote() as remote:
        for repository in (direct, remote):
            repository.apply([mine], parent_node="parent-node")
        reports = [repository.apply([theirs], parent_node="parent-node",
                                    source_node="child-node", detect_since=0,
                                    policy=ConflictPolicy.CHILD)
                   for repository in (direct, remote)]
        assert _without_time(reports[1].conflicts) == _without_time(reports[0].conflicts)
        assert reports[1].conflicts and reports[1].updated == reports[0].updated == 1
        assert _without_time(remote.conflicts()) == _without_time(direct.conflicts())


def test_snapshot_load_equals_loading_directly(parent: Served,
                                              twins: tuple[Path, Served]) -> None:
    direct_path, served = twins
    with parent.direct() as source:
        rows = source.snapshot(0, 100_000).rows
        parent_id = source.info().node_id
    before = _rows(served.path)
    with EmbeddedRepository(direct_path) as direct, served.remote(page_size=25) as remote:
        aborted = remote.begin_load()
        remote.load_rows(aborted, rows[:50])
        remote.abort_load(aborted)
        assert _rows(served.path) == before

        loads = [(repository, repository.begin_load()) for repository in (direct, remote)]
        for repository, load_id in loads:
            repository.load_rows(load_id, iter(rows))
        infos = [repository.commit_load(load_id, parent_node_id=parent_id,
                                        id_block_start=10_000_001, new_node_id="child-1")
                 for repository, load_id in loads]
    assert infos[1].node_id == infos[0].node_id == "child-1"
    assert infos[1].seq == infos[0].seq and infos[1].parent_node_id == parent_id
    assert _rows(direct_path) == _rows(served.path) == sorted(rows)


def test_nodes_save_clear_round_trip(parent: Served) -> None:
    synced = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    node = NodeRecord(node_id="c1", name="Ohio", url="http://ohio/WMServer",
                      last_sync=synced, id_block_start=10_000_001, incarnation="inc",
                      pull_seq=12, push_seq=40)
    with parent.remote() as remote, parent.direct() as direct:
        remote.save_node(node)
        assert remote.nodes() == direct.nodes() == [node]
        remote.clear_replication_info()
        assert remote.nodes() == direct.nodes() == []


def _encodings(parent: Served, **options: object) -> list[tuple[str, str, str]]:
    """(endpoint, request Content-Encoding, answer Content-Encoding) of a snapshot and an
    apply through a client made with ``options``."""
    seen: list[tuple[str, str, str]] = []

    def record(response: requests.Response, *args: object, **kwargs: object) -> None:
        seen.append((response.request.path_url.split("?")[0].rsplit("/", 1)[-1],
                     response.request.headers.get("Content-Encoding", ""),
                     response.headers.get("Content-Encoding", "")))

    with parent.remote(**options) as remote:
        remote.session.hooks["response"].append(record)
        remote.snapshot(0, 500)
        remote.apply([], parent_node="p")
    return seen


def test_gzip_is_used_both_ways(parent: Served) -> None:
    seen = _encodings(parent, compress=True)
    assert ("x-snapshot", "", "gzip") in seen
    assert ("x-apply", "gzip", "") in seen


def test_a_server_on_this_machine_is_spoken_to_uncompressed(parent: Served) -> None:
    """Over loopback the bytes cost nothing to move: gzip would only spend CPU both ways."""
    assert "127.0.0.1" in parent.url
    assert _encodings(parent) == [("x-snapshot", "", ""), ("x-apply", "", "")]
    assert RestRepository("http://localhost:1/WMServer", probe=False).compress is False
    assert RestRepository("http://[::1]:1/WMServer", probe=False).compress is False
    assert RestRepository("http://wmserver.example/WMServer", probe=False).compress is True


def test_esri_operations_return_the_stores_records(parent: Served) -> None:
    with parent.remote() as remote, parent.direct() as direct:
        job = remote.create_job(2, name="Remote", due_date=datetime(2030, 1, 1,
                                                                    tzinfo=timezone.utc))
        assert job == attrs.evolve(direct.get_job(job.id), guid="")
        updated = remote.update_job(job.id, percentage_complete=50, description="d")
        assert updated.percentage_complete == 50 and updated.description == "d"
        assert remote.assign_job(job.id, assigned_type=1, assigned_to="editor1"
                                 ).assigned_to == "editor1"
        hold = remote.create_hold(job.id, 2, comments="c")
        assert remote.release_hold(job.id, hold.id).release_date is not None
        remote.set_notes(job.id, "n")
        assert remote.get_notes(job.id) == direct.get_notes(job.id) == "n"
        assert remote.log_action(job.id, 7, comments="hello").message == "hello"
        attachment = remote.add_attachment(job.id, "a.txt", b"content")
        assert remote.attachment_content(job.id, attachment.id) == b"content"
        error_lookalike = b'{"error": {"code": 500, "message": "not really"}}'
        json_file = remote.add_attachment(job.id, "data.json", error_lookalike)
        assert remote.attachment_content(job.id, json_file.id) == error_lookalike
        dependency = remote.add_dependency(job.id, 1)
        assert [d.id for d in remote.dependencies(job.id)] == [dependency.id]
        record = remote.add_extended_property(job.id, "JTX_X", {"N": 1})
        assert remote.update_extended_property(job.id, record.id, {"N": 2}).values == {"N": 2}
        assert remote.close_job(job.id).stage == 5
        assert remote.reopen_job(job.id).stage == 2
        remote.delete_attachment(job.id, json_file.id)
        for kind in ("holds", "activity", "attachments", "dependencies",
                     "extended_properties"):
            here = [attrs.evolve(r, guid="") for r in getattr(direct, kind)(job.id)]
            assert getattr(remote, kind)(job.id) == here, kind
        assert remote.config_properties() == direct.config_properties()
        assert remote.may_replicate(ADMIN) and not remote.may_replicate("editor1")
        remote.delete_job(job.id)
        assert job.id not in direct.jobs()


def test_the_engine_replicates_and_synchronizes_over_http(tmp_path: Path) -> None:
    parent_path = make_repository(tmp_path)
    _populate(parent_path)
    child_paths = [make_repository(tmp_path, f"Child{n}", "minimum") for n in (1, 2)]
    with running_server(parent_path) as parent_server, \
            running_server(child_paths[0]) as first, running_server(child_paths[1]) as second:
        targets = [ChildTarget("Child1", first.url), ChildTarget("Child2", second.url)]
        with open_as_admin(parent_server.url) as parent:
            outcome = replicate(parent, targets, open_as_admin)
            assert [child.error for child in outcome.children] == [None, None]
            with open_as_admin(first.url) as child:
                child.create_job(1, name="Made on Child1")
            outcome = synchronize(parent, targets, open_as_admin)
            assert [child.error for child in outcome.children] == [None, None]
            idle = synchronize(parent, targets, open_as_admin)
        assert all(c.pulled.writes == c.pushed.writes == 0 for c in idle.children)
    states = [_rows(path) for path in (parent_path, *child_paths)]
    assert states[0] == states[1] == states[2]
    assert any(row[1] == "job" and "Made on Child1" in (row[5] or "") for row in states[0])


def test_a_guarded_apply_is_refused_over_http_when_an_element_changed_since(
        parent: Served) -> None:
    """The push guard (``refuse_if_changed_since``) travels both ways: the served store
    refuses the batch and writes nothing; below the guard it applies as usual."""
    with parent.direct() as direct, parent.remote() as remote:
        before = direct.info().seq
        direct.update_job(1, user=ADMIN, description="changed here")
        stale = [attrs.evolve(change, hlc=change.hlc + 1, origin="other-node")
                 for change in direct.changes(before, limit=10).changes]
        head = direct.info().seq
        refused = remote.apply(stale, parent_node="other-node", refuse_if_changed_since=before)
        assert refused.refused and refused.writes == 0
        assert direct.info().seq == head
        applied = remote.apply(stale, parent_node="other-node", refuse_if_changed_since=head)
        assert not applied.refused and applied.writes == len(stale)
