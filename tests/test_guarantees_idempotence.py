"""Idempotence: running again, re-sending and re-applying never writes twice.

* a second sync with nothing new writes nothing anywhere (every repository's log head stays);
* an ``last_sync_time`` older than the checkpoint re-sends changes, and they are no-ops;
* the same batch applied twice is a no-op the second time: no write, no log movement, and no
  second conflict record — also when the first application renamed the element (Esri's ``_1``
  rule) or re-stamped it for a conflict policy (the retry after a lost reply or an interrupted
  run must not look like a new conflict).

Every test runs once per store (``store``: files, and a PostgreSQL parent with a PostgreSQL and
embedded children).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import ADMIN, make_cluster
from tests.guarantees_helpers import fresh_cluster, store_fixture  # noqa: F401 (store)
from wmx.engine.outcome import ChildTarget
from wmx.engine.synchronize import synchronize
from wmx.model.changes import ConflictPolicy
from wmx.model.records import HoldType, JobType, User
from wmx.repository import open_repository


def _edit_everything(cluster) -> None:
    for name, path in [("parent", cluster.parent_path), *cluster.child_paths.items()]:
        with open_repository(str(path)) as repository:
            job = repository.create_job(1, user=ADMIN, description=f"from {name}")
            hold = repository.create_hold(job.id, 1, user=ADMIN)
            repository.release_hold(job.id, hold.id, user=ADMIN)
            repository.set_notes(job.id, "notes", user=ADMIN)
            repository.log_action(job.id, 7, user=ADMIN, comments="hello")
            repository.add_attachment(job.id, "a.txt", b"abc", user=ADMIN)
            repository.delete_job(repository.create_job(2, user=ADMIN).id, user=ADMIN)
            repository.create_config(JobType(id=None, name="Survey"))
            repository.create_config(User(user_name="alice"))
            repository.update_config(HoldType, 1, description=f"by {name}")
            shared = min(repository.jobs())
            repository.update_job(shared, user=ADMIN, description=f"{name} was here")


@pytest.fixture
def edited(tmp_path, store):
    cluster = fresh_cluster(tmp_path / "cluster", 3, shared_jobs=2, store=store)
    _edit_everything(cluster)
    return cluster


def _child_changes(cluster, name):
    """The child's own versions, as the pull phase reads them, and its node record."""
    with cluster.child(name) as child:
        info = child.info()
        changes = child.changes(0, limit=10 ** 6, origin=info.node_id).changes
    with cluster.parent() as parent:
        node = next(n for n in parent.nodes() if n.node_id == info.node_id)
    return changes, info.node_id, node


def test_a_second_sync_writes_nothing_anywhere(edited):
    first = edited.sync()
    assert first.status_code == 0 and first.conflicts
    seqs = edited.seqs()

    second = edited.sync()

    assert edited.seqs() == seqs
    assert all(c.pulled.writes == 0 and c.pushed.writes == 0 for c in second.children)
    assert second.conflicts == []


def test_a_second_sync_in_another_child_order_writes_nothing_either(edited):
    edited.sync(["Child1", "Child2", "Child3"])
    seqs = edited.seqs()
    edited.sync(["Child3", "Child1", "Child2"])
    edited.sync(["Child2"])
    assert edited.seqs() == seqs


@pytest.mark.parametrize("days", [0, 1, 3650])
def test_an_older_last_sync_time_resends_without_duplicating(edited, days):
    edited.sync()
    seqs = edited.seqs()
    with edited.parent() as parent:
        conflicts = parent.conflicts()
    since = datetime.now(timezone.utc) - timedelta(days=days, minutes=5)
    targets = [ChildTarget(t.name, t.url, True, since) for t in edited.targets()]

    with edited.parent() as parent:
        outcome = synchronize(parent, targets, open_repository)

    assert outcome.status_code == 0
    assert all(c.pulled.unchanged > 0 and c.pushed.unchanged > 0 for c in outcome.children), \
        "nothing was re-sent"
    assert all(c.pulled.writes == 0 and c.pushed.writes == 0 for c in outcome.children)
    assert outcome.conflicts == []
    assert edited.seqs() == seqs
    with edited.parent() as parent:
        assert parent.conflicts() == conflicts
    edited.assert_converged()


def test_the_same_batch_applied_twice_is_a_no_op_the_second_time(edited):
    changes, node_id, node = _child_changes(edited, "Child1")
    with edited.parent() as parent:
        parent_id = parent.info().node_id
        first = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                             detect_since=node.push_seq)
        seq = parent.info().seq

        second = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                              detect_since=node.push_seq)

        assert first.writes > 0
        assert (second.writes, second.renamed, second.conflicts) == (0, 0, [])
        assert second.seq_before == second.seq_after == seq == parent.info().seq
    with edited.child("Child2") as child:
        child_seq = child.info().seq
        first = child.apply(changes, parent_node=parent_id)
        second = child.apply(changes, parent_node=parent_id)
        assert first.writes > 0 and second.writes == 0
        assert child.info().seq == first.seq_after == second.seq_after
    assert first.seq_before == child_seq


# --- regressions: a re-sent version must not look like a new conflict ---------------------------

def _conflicting_edits(tmp_path, store):
    """A job edited on the parent and on Child1 since the last sync (the parent's edit is
    older), and the parent pulled Child2 in between, so Child1's push checkpoint is behind."""
    cluster = make_cluster(tmp_path, 2, store=store)
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    cluster.sync()
    with cluster.parent() as parent:
        parent.update_job(job.id, user=ADMIN, description="parent")
    with cluster.child("Child1") as child:
        child.update_job(job.id, user=ADMIN, description="child")
    return cluster


def test_a_conflict_is_logged_once_when_the_losing_batch_is_sent_again(tmp_path, store):
    """Found by the crash-safety test: the parent applied a page, then failed before saving
    the pull checkpoint; the re-pulled loser was logged (and reported) as a second conflict."""
    cluster = make_cluster(tmp_path, 2, store=store)
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    cluster.sync()
    with cluster.child("Child1") as child:
        child.update_job(job.id, user=ADMIN, description="older")
    with cluster.child("Child2") as child:
        child.update_job(job.id, user=ADMIN, description="newer")
    cluster.sync(["Child2"])
    changes, node_id, node = _child_changes(cluster, "Child1")
    with cluster.parent() as parent:
        parent_id = parent.info().node_id
        first = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                             detect_since=node.push_seq)
        second = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                              detect_since=node.push_seq)
        assert len(first.conflicts) == 1
        assert second.conflicts == [] and second.writes == 0
        assert len(parent.conflicts()) == 1


def test_a_renamed_element_sent_again_is_not_a_conflict(tmp_path, store):
    """Found by the crash-safety test: after the parent renamed Child1's ``Survey`` to
    ``Survey_1`` and failed before saving the pull checkpoint, the re-pulled original lost to
    its own renamed version and was logged as a concurrent edit."""
    cluster = make_cluster(tmp_path, 2, store=store)
    with cluster.parent() as parent:
        parent.create_config(JobType(id=None, name="Survey"))
    with cluster.child("Child1") as child:
        child.create_config(JobType(id=None, name="Survey"))
    changes, node_id, node = _child_changes(cluster, "Child1")
    with cluster.parent() as parent:
        parent_id = parent.info().node_id
        first = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                             detect_since=node.push_seq)
        seq = parent.info().seq
        second = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                              detect_since=node.push_seq)
        assert first.renamed == 1
        assert (second.writes, second.renamed, second.conflicts) == (0, 0, [])
        assert parent.info().seq == seq and parent.conflicts() == []


@pytest.mark.parametrize("policy", [ConflictPolicy.CHILD, ConflictPolicy.PARENT])
def test_a_version_a_policy_re_stamped_sent_again_changes_nothing(tmp_path, store, policy):
    """A policy that keeps the older version re-stamps it at the parent; the same batch sent
    again must neither re-stamp it again nor log a second conflict."""
    cluster = _conflicting_edits(tmp_path, store)
    if policy is ConflictPolicy.CHILD:  # make the child's version the older one
        with cluster.parent() as parent:
            parent.update_job(parent.jobs()[0], user=ADMIN, description="parent, later")
    changes, node_id, node = _child_changes(cluster, "Child1")
    with cluster.parent() as parent:
        parent_id = parent.info().node_id
        first = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                             detect_since=node.push_seq, policy=policy)
        seq = parent.info().seq
        second = parent.apply(changes, parent_node=parent_id, source_node=node_id,
                              detect_since=node.push_seq, policy=policy)
        assert len(first.conflicts) == 1
        assert (second.writes, second.conflicts) == (0, [])
        assert parent.info().seq == seq and len(parent.conflicts()) == 1
