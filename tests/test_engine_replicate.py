"""Replicate: every child becomes the parent, atomically, with its own id block."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, make_cluster
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.model.records import ID_BLOCK_SIZE
from wmx.repository import open_repository
from wmx.repository.base import RepositoryUnavailable
from wmx.repository.embedded import EmbeddedRepository


def test_after_replicate_every_child_equals_the_parent_row_for_row(tmp_path):
    cluster = make_cluster(tmp_path, children=3, replicated=False)
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
        parent.create_hold(job.id, 1, user=ADMIN, comments="waiting")
        parent.set_notes(job.id, "notes", user=ADMIN)
        parent.add_attachment(job.id, "a.bin", b"\x00\x01binary", user=ADMIN)
        parent.delete_job(parent.create_job(2, user=ADMIN).id, user=ADMIN)

    outcome = cluster.replicate()

    assert outcome.status_code == 0
    assert all(child.loaded_rows > 0 for child in outcome.children)
    cluster.assert_converged()
    with cluster.child("Child2") as child:
        assert child.attachment_content(job.id, child.attachments(job.id)[0].id) == \
            b"\x00\x01binary"


def test_children_receive_disjoint_job_id_blocks(tmp_path):
    cluster = make_cluster(tmp_path, children=3)
    starts = set()
    for name in cluster.child_paths:
        with cluster.child(name) as child:
            starts.add(child.info().id_block_start)
            assert child.create_job(1, user=ADMIN).id == child.info().id_block_start
    assert len(starts) == 3
    assert all(start % ID_BLOCK_SIZE == 1 for start in starts)


def test_replicating_again_keeps_a_childs_block_and_first_consolidates_its_edits(cluster):
    with cluster.child("Child1") as child:
        block = child.info().id_block_start
        job = child.create_job(1, user=ADMIN).id
    cluster.replicate(["Child1"])
    with cluster.child("Child1") as child, cluster.parent() as parent:
        assert child.info().id_block_start == block
        assert child.jobs() == parent.jobs() == [job]
        assert child.all_rows() == parent.all_rows()


def test_replicate_records_children_as_cluster_nodes(cluster):
    with cluster.parent() as parent:
        nodes = {node.name: node for node in parent.nodes()}
    assert nodes["Parent"].is_parent
    assert {"Child1", "Child2"} <= set(nodes)
    assert all(nodes[name].last_sync is not None for name in ("Child1", "Child2"))


class _FailingChild:
    """Wraps a child so that loading fails after some pages (a crash mid-snapshot)."""

    def __init__(self, inner: EmbeddedRepository, fail_after: int) -> None:
        self.inner, self.fail_after = inner, fail_after

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def load_rows(self, load_id, rows):
        if self.fail_after == 0:
            raise RepositoryUnavailable("connection lost")
        self.fail_after -= 1
        self.inner.load_rows(load_id, rows)


def test_an_interrupted_replicate_leaves_the_child_exactly_as_it_was(tmp_path):
    cluster = make_cluster(tmp_path, children=1, replicated=False)
    with cluster.parent() as parent:
        for _ in range(30):
            parent.create_job(1, user=ADMIN)
    before = cluster.states()["Child1"]

    def opener(location):
        return _FailingChild(EmbeddedRepository(location), fail_after=2)

    with cluster.parent() as parent:
        outcome = replicate(parent, cluster.targets(), opener, page_size=10)

    assert outcome.status_code == 1
    assert "connection lost" in outcome.children[0].error
    assert cluster.states()["Child1"] == before
    assert cluster.replicate().status_code == 0
    cluster.assert_converged()


def test_a_missing_child_fails_alone(tmp_path):
    cluster = make_cluster(tmp_path, children=1, replicated=False)
    targets = [ChildTarget("Ghost", str(tmp_path / "nowhere.wmxdb")), *cluster.targets()]
    with cluster.parent() as parent:
        outcome = replicate(parent, targets, open_repository)
    assert [child.status for child in outcome.children] == ["FAILED", "OK"]
    assert "does not exist" in outcome.children[0].error
    assert outcome.status_code == 1


def test_a_byte_copy_of_the_parent_gets_its_own_identity(tmp_path):
    cluster = make_cluster(tmp_path, children=0, replicated=False)
    copy = tmp_path / "copy.wmxdb"
    copy.write_bytes(cluster.parent_path.read_bytes())
    with cluster.parent() as parent:
        outcome = replicate(parent, [ChildTarget("Copy", str(copy))], open_repository)
        parent_id = parent.info().node_id
    assert outcome.status_code == 0
    with EmbeddedRepository(copy) as child:
        assert child.info().node_id != parent_id
        assert child.info().parent_node_id == parent_id


@pytest.mark.parametrize("page_size", [1, 7, 5000])
def test_replicate_pages_do_not_change_the_result(tmp_path, page_size):
    cluster = make_cluster(tmp_path, children=1, replicated=False)
    with cluster.parent() as parent:
        for _ in range(5):
            parent.create_job(1, user=ADMIN)
        replicate(parent, cluster.targets(), open_repository, page_size=page_size)
    cluster.assert_converged()
