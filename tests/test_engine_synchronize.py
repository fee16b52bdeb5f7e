"""Synchronize: edits anywhere reach everywhere in one run; nothing is lost or written twice."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from tests.conftest import ADMIN, make_cluster
from wmx.engine.outcome import ChildTarget
from wmx.engine.synchronize import synchronize
from wmx.model.changes import ConflictPolicy
from wmx.model.records import HoldType, JobType
from wmx.repository import open_repository
from wmx.repository.base import RepositoryUnavailable
from wmx.store.sql import SqlStore


def _edit_everywhere(cluster):
    """Create, update, delete, holds, notes, history and attachments on every repository."""
    created = {}
    for name, repository in [("parent", cluster.parent()),
                             *((n, cluster.child(n)) for n in cluster.child_paths)]:
        with repository:
            job = repository.create_job(1, user=ADMIN, description=f"made on {name}")
            hold = repository.create_hold(job.id, 1, user=ADMIN, comments=name)
            repository.release_hold(job.id, hold.id, user=ADMIN, comments="done")
            repository.create_hold(job.id, 1, user=ADMIN, comments="second")
            repository.set_notes(job.id, f"notes from {name}", user=ADMIN)
            repository.log_action(job.id, 7, user=ADMIN, comments=f"comment on {name}")
            repository.add_attachment(job.id, f"{name}.txt", name.encode() * 100, user=ADMIN)
            doomed = repository.create_job(2, user=ADMIN)
            repository.delete_job(doomed.id, user=ADMIN)
            created[name] = (job.id, doomed.id)
    return created


def test_edits_on_every_repository_reach_every_repository_in_one_sync(cluster):
    created = _edit_everywhere(cluster)

    outcome = cluster.sync()

    assert outcome.status_code == 0
    cluster.assert_converged()
    with cluster.child("Child2") as child:
        for name, (job_id, doomed_id) in created.items():
            job = child.get_job(job_id)
            assert job.description == f"made on {name}"
            assert doomed_id not in child.jobs()
            assert child.get_notes(job_id) == f"notes from {name}"
            holds = child.holds(job_id)
            assert len(holds) == 2 and holds[0].release_date is not None
            assert any(a.message == f"comment on {name}" for a in child.activity(job_id))
            attachment = child.attachments(job_id)[0]
            assert child.attachment_content(job_id, attachment.id) == name.encode() * 100


def test_a_second_sync_writes_nothing(cluster):
    _edit_everywhere(cluster)
    cluster.sync()
    seqs = cluster.seqs()
    with cluster.parent() as parent:
        nodes_before = [(n.node_id, n.pull_seq, n.push_seq) for n in parent.nodes()]

    outcome = cluster.sync()

    assert cluster.seqs() == seqs
    assert all(c.pulled.writes == 0 and c.pushed.writes == 0 for c in outcome.children)
    assert all(c.pushed.unchanged == 0 for c in outcome.children), "echoes were re-sent"
    with cluster.parent() as parent:
        assert [(n.node_id, n.pull_seq, n.push_seq) for n in parent.nodes()] == nodes_before


def test_configuration_edits_travel_too(cluster):
    with cluster.child("Child1") as child:
        child.create_config(JobType(id=None, name="Survey", category="Field"))
        child.update_config(HoldType, 1, description="changed on a child")
    cluster.sync()
    cluster.assert_converged()
    with cluster.child("Child2") as child:
        assert child.get_config(JobType, "Survey").category == "Field"
        assert child.get_config(HoldType, 1).description == "changed on a child"


def _concurrent_edit_outcome(tmp_path, order):
    cluster = make_cluster(tmp_path, children=3)
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    cluster.sync()
    for name in ("Child1", "Child2", "Child3"):
        with cluster.child(name) as child:
            child.update_job(job.id, user=ADMIN, description=f"edited on {name}")
    outcome = cluster.sync(list(order))
    cluster.assert_converged()
    with cluster.parent() as parent:
        winner = parent.get_job(job.id).description
        losers = sorted(c.loser_body for c in parent.conflicts())
    return winner, losers, outcome


def test_concurrent_edits_have_the_same_winner_in_any_child_order(tmp_path):
    results = set()
    for index, order in enumerate(itertools.permutations(["Child1", "Child2", "Child3"])):
        winner, losers, outcome = _concurrent_edit_outcome(tmp_path / str(index), order)
        assert outcome.status_code == 0
        assert len(losers) == 2, "each losing version is in the conflict log"
        assert all(winner not in body for body in losers)
        results.add(winner)
    assert len(results) == 1


def test_the_parent_policy_keeps_the_parents_version(cluster):
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    cluster.sync()
    with cluster.child("Child1") as child:
        child.update_job(job.id, user=ADMIN, description="child")
    with cluster.parent() as parent:
        parent.update_job(job.id, user=ADMIN, description="parent")
    outcome = cluster.sync(policy=ConflictPolicy.PARENT)
    assert len(outcome.conflicts) == 1
    cluster.assert_converged()
    with cluster.child("Child1") as child:
        assert child.get_job(job.id).description == "parent"


def test_the_child_policy_keeps_the_childs_version(cluster):
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    cluster.sync()
    with cluster.parent() as parent:
        parent.update_job(job.id, user=ADMIN, description="parent")
    with cluster.child("Child1") as child:
        child.update_job(job.id, user=ADMIN, description="child")
    cluster.sync(policy=ConflictPolicy.CHILD)
    cluster.assert_converged()
    with cluster.parent() as parent:
        assert parent.get_job(job.id).description == "child"


def test_a_child_that_does_not_exist_fails_alone_with_a_clear_message(cluster, tmp_path):
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN)
    targets = [ChildTarget("Missing", str(tmp_path / "missing.wmxdb")), *cluster.targets()]
    with cluster.parent() as parent:
        outcome = synchronize(parent, targets, open_repository)
    assert outcome.status_code == 1
    assert outcome.children[0].status == "FAILED"
    assert "missing.wmxdb does not exist" in outcome.children[0].error
    with cluster.child("Child2") as child:
        assert job.id in child.jobs()


def test_a_repository_that_was_never_replicated_is_refused(cluster, tmp_path):
    from wmx.repository.setup import initialise

    initialise(tmp_path / "stranger.wmxdb", name="Stranger", admin=ADMIN).close()
    with cluster.parent() as parent:
        outcome = synchronize(parent, [ChildTarget("Stranger", str(tmp_path / "stranger.wmxdb"))],
                              open_repository)
    assert outcome.status_code == 1
    assert "not a replica of Parent" in outcome.children[0].error


def test_disconnected_rows_are_skipped(cluster):
    targets = [ChildTarget("Child1", str(cluster.child_paths["Child1"]), connected=False)]
    with cluster.parent() as parent:
        outcome = synchronize(parent, targets, open_repository)
    assert outcome.children[0].status == "SKIPPED"
    assert outcome.status_code == 0


def test_a_dry_run_reports_what_the_real_run_does_and_writes_nothing(cluster):
    with cluster.parent() as parent:
        shared = parent.create_job(1, user=ADMIN)
    cluster.sync()
    _edit_everywhere(cluster)
    with cluster.child("Child1") as child:
        child.update_job(shared.id, user=ADMIN, description="conflicting")
    with cluster.child("Child2") as child:
        child.update_job(shared.id, user=ADMIN, description="also conflicting")
    seqs = cluster.seqs()

    dry = cluster.sync(dry_run=True)
    assert cluster.seqs() == seqs
    real = cluster.sync()

    def summary(outcome):
        return [(c.target.name, c.pulled.inserted, c.pulled.updated, c.pulled.deleted,
                 len(c.pulled.conflicts), c.pushed.inserted, c.pushed.updated,
                 c.pushed.deleted) for c in outcome.children]

    assert summary(dry) == summary(real)
    with cluster.parent() as parent:
        assert len(parent.conflicts()) == 1


def test_an_earlier_last_sync_time_resends_without_duplicating(cluster):
    _edit_everywhere(cluster)
    cluster.sync()
    seqs = cluster.seqs()
    long_ago = datetime.now(timezone.utc) - timedelta(days=3650)
    targets = [ChildTarget(t.name, t.url, True, long_ago) for t in cluster.targets()]
    with cluster.parent() as parent:
        outcome = synchronize(parent, targets, open_repository)
    assert outcome.status_code == 0
    assert all(c.pulled.unchanged > 0 for c in outcome.children), "nothing was re-sent"
    assert all(c.pulled.writes == 0 and c.pushed.writes == 0 for c in outcome.children)
    assert cluster.seqs() == seqs


def test_same_name_configuration_from_two_children_is_renamed_with_suffix(cluster):
    for name in ("Child1", "Child2"):
        with cluster.child(name) as child:
            child.create_config(JobType(id=None, name="Inspection"))
    cluster.sync()
    cluster.sync()
    cluster.assert_converged()
    with cluster.parent() as parent:
        names = sorted(t.name for t in parent.list_config(JobType))
    assert "Inspection" in names and "Inspection_1" in names


def test_large_attachments_travel_in_pages_bounded_by_size(cluster, monkeypatch):
    from wmx.repository import embedded
    from wmx.store import rows

    monkeypatch.setattr(rows, "PAGE_BYTES", 1500)
    pages = []
    original = embedded.EmbeddedRepository.changes

    def counting(self, *args, **kwargs):
        page = original(self, *args, **kwargs)
        pages.append(sum(len(c.content or b"") for c in page.changes))
        return page

    monkeypatch.setattr(embedded.EmbeddedRepository, "changes", counting)
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN)
        for index in range(4):
            child.add_attachment(job.id, f"{index}.bin", bytes([index]) * 1000, user=ADMIN)
    cluster.sync()
    cluster.assert_converged()
    assert max(pages) <= 2000, "a page went on after reaching PAGE_BYTES"


def _first_node_save_fails(monkeypatch) -> list[str]:
    """The parent's next save of a node record fails (its disk went away); the list names the
    node it was for once it has."""
    save_node = SqlStore.save_node
    failures: list[str] = []

    def failing_once(self, node):
        if not failures:
            failures.append(node.name)
            raise RepositoryUnavailable("the disk went away")
        return save_node(self, node)

    monkeypatch.setattr(SqlStore, "save_node", failing_once)
    return failures


def test_a_pull_page_and_its_checkpoint_commit_together(cluster, monkeypatch):
    """A parent that fails to record the pull checkpoint keeps none of the page it covers:
    the two are one transaction, so no run ever finds versions applied beyond the checkpoint
    that says how far it has read (and the next run reads them again, once)."""
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN, description="made on Child1")
    with cluster.parent() as parent:
        checkpoints = [n.pull_seq for n in parent.nodes() if n.name == "Child1"]
    failures = _first_node_save_fails(monkeypatch)
    outcome = cluster.sync(["Child1"])

    assert failures == ["Child1"] and outcome.children[0].status == "FAILED"
    with cluster.parent() as parent:
        assert job.id not in parent.jobs()
        assert [n.pull_seq for n in parent.nodes() if n.name == "Child1"] == checkpoints
    assert cluster.sync().status_code == 0
    cluster.assert_converged()
    with cluster.child("Child2") as child:
        assert child.get_job(job.id).description == "made on Child1"


def test_a_renumbered_job_whose_page_was_not_committed_reaches_no_other_child(cluster,
                                                                             monkeypatch):
    """A job that clashes with a parent's job id is renumbered when its page is pulled, and
    the run hands the renumbered version to every child first. If that page's transaction
    then fails, the parent holds none of it: no child may get it either (it would hold a job
    the parent never had, under an id the parent may give another)."""
    with cluster.parent() as parent:
        taken = parent.create_job(1, user=ADMIN, description="made at the parent").id
    with cluster.child("Child1") as child:
        clashing = child.create_job(1, user=ADMIN, id=taken, description="made on Child1")
    failures = _first_node_save_fails(monkeypatch)
    outcome = cluster.sync()

    assert failures == ["Child1"] and outcome.children[0].status == "FAILED"
    with cluster.child("Child2") as child:
        assert clashing.guid not in {child.get_job(j).guid for j in child.jobs()}
    monkeypatch.undo()
    assert cluster.sync().status_code == 0
    cluster.assert_converged()
    with cluster.child("Child2") as child:
        assert clashing.guid in {child.get_job(j).guid for j in child.jobs()}
