"""Clock skew: machines whose wall clocks are hours apart neither lose nor resurrect changes.

Every repository stamps writes with a hybrid logical clock that moves past every stamp it
receives, so an edit made *after* seeing a version always outranks it, however far behind the
editing machine's clock is. What these tests assert, precisely:

* causality wins: a child 5 h behind that edits a job after receiving the parent's newer
  version keeps its edit everywhere (no conflict); the parent editing after receiving a version
  from a child 5 h ahead keeps its edit; a repository held open across a sync is no exception;
* a stale update does not resurrect a delete: an update made on a node 5 h behind before it
  saw a delete made elsewhere loses to the delete everywhere (and is kept in the conflict log);
* genuinely concurrent edits (neither side saw the other) are ordered by the precedence order:
  the higher stamp wins. So an update made on a node 5 h *ahead*, concurrently with a delete
  made elsewhere, outranks the delete and the job is live again everywhere (with the delete in
  the conflict log). That is the documented "newest wins" rule applied to skewed stamps; HLC
  guarantees causality, not wall-clock fairness between concurrent writers.

Every test runs once per store: files, and a PostgreSQL parent (with the child 5 h ahead in
PostgreSQL too, the others in files).
"""

from __future__ import annotations

import pytest

from tests import postgres_helpers
from tests.conftest import ADMIN, Cluster, is_postgres
from tests.guarantees_helpers import (  # noqa: F401 (store_fixture: the store fixture)
    HOUR,
    fresh_cluster,
    overwrite_repository,
    skewed_opener,
    store_fixture,
)
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.model import codec
from wmx.repository.base import InvalidRequest

BEHIND, AHEAD, ON_TIME = "Child1", "Child2", "Child3"


class SkewedCluster:
    """A cluster whose machines' clocks disagree: opened, edited and synced through one
    opener, as scripts on those machines would."""

    def __init__(self, cluster: Cluster, offsets: dict[str, float]) -> None:
        self.cluster = cluster
        paths = {"parent": cluster.parent_path, **cluster.child_paths}
        self.paths = {name: str(path) for name, path in paths.items()}
        self.opener = skewed_opener({self.paths[name]: offset
                                     for name, offset in offsets.items()})

    def open(self, name: str):
        return self.opener(self.paths[name])

    def sync(self, names=None):
        with self.open("parent") as parent:
            outcome = synchronize(parent, self.cluster.targets(names), self.opener)
        assert outcome.status_code == 0, [c.error for c in outcome.children]
        return outcome

    def description(self, name: str, job_id: int):
        with self.open(name) as repository:
            return repository.get_job(job_id).description if job_id in repository.jobs() \
                else None

    def descriptions(self, job_id: int) -> set:
        return {self.description(name, job_id) for name in self.paths}


@pytest.fixture(params=[0.0, -5 * HOUR, 5 * HOUR], ids=["parent-on-time", "parent-behind",
                                                         "parent-ahead"])
def skewed(tmp_path, request, store) -> SkewedCluster:
    cluster = fresh_cluster(tmp_path / "cluster", 3, shared_jobs=1, store=store)
    return SkewedCluster(cluster, {"parent": request.param, BEHIND: -5 * HOUR,
                                   AHEAD: 5 * HOUR, ON_TIME: 0.0})


def _job(skewed: SkewedCluster) -> int:
    with skewed.open("parent") as parent:
        return parent.jobs()[0]


def test_an_edit_behind_in_time_made_after_receiving_a_newer_version_wins(skewed):
    job = _job(skewed)
    with skewed.open(AHEAD) as ahead:
        ahead.update_job(job, user=ADMIN, description="from 5 h ahead")
    skewed.sync()
    with skewed.open(BEHIND) as behind:
        assert behind.get_job(job).description == "from 5 h ahead"
        behind.update_job(job, user=ADMIN, description="from 5 h behind, later")

    outcome = skewed.sync()

    assert outcome.conflicts == []
    assert skewed.descriptions(job) == {"from 5 h behind, later"}
    skewed.cluster.assert_converged()


def test_the_parent_editing_after_a_sync_outranks_what_it_received(skewed):
    job = _job(skewed)
    with skewed.open(AHEAD) as ahead:
        ahead.update_job(job, user=ADMIN, description="from 5 h ahead")
    skewed.sync()
    with skewed.open("parent") as parent:
        parent.update_job(job, user=ADMIN, description="the parent, later")
    skewed.sync()
    assert skewed.descriptions(job) == {"the parent, later"}


def test_a_repository_held_open_across_a_sync_orders_its_next_edit_after_it(skewed):
    """A script (or a server) that keeps a child open while a sync delivers newer versions
    through another connection must still stamp its next edit after them."""
    job = _job(skewed)
    with skewed.open(BEHIND) as behind:  # opened before the sync, kept open
        behind.info()
        with skewed.open(AHEAD) as ahead:
            ahead.update_job(job, user=ADMIN, description="from 5 h ahead")
        skewed.sync()
        assert behind.get_job(job).description == "from 5 h ahead"

        behind.update_job(job, user=ADMIN, description="from 5 h behind, later")

    outcome = skewed.sync()
    assert outcome.conflicts == []
    assert skewed.descriptions(job) == {"from 5 h behind, later"}


def test_a_stale_update_from_behind_does_not_resurrect_a_delete(skewed):
    job = _job(skewed)
    with skewed.open(BEHIND) as behind:
        behind.update_job(job, user=ADMIN, description="stale, made before the delete arrived")
    with skewed.open(ON_TIME) as on_time:
        on_time.delete_job(job, user=ADMIN)

    outcome = skewed.sync([ON_TIME, BEHIND, AHEAD])

    assert skewed.descriptions(job) == {None}
    assert [(c.kind, c.loser_deleted) for c in outcome.conflicts] == [("job", False)]
    skewed.cluster.assert_converged()
    with skewed.open(BEHIND) as behind, pytest.raises(InvalidRequest):
        behind.update_job(job, user=ADMIN, description="too late: the job is gone")


def test_a_stale_update_synced_later_does_not_resurrect_a_delete_either(skewed):
    job = _job(skewed)
    with skewed.open(BEHIND) as behind:
        behind.update_job(job, user=ADMIN, description="stale")
    with skewed.open(ON_TIME) as on_time:
        on_time.delete_job(job, user=ADMIN)
    skewed.sync([ON_TIME, AHEAD])
    skewed.sync([BEHIND])
    skewed.sync()
    assert skewed.descriptions(job) == {None}
    skewed.cluster.assert_converged()


def test_an_update_behind_made_after_a_delete_elsewhere_but_before_receiving_it_loses(skewed):
    """Made later in real time, but on a clock 5 h behind and without having seen the delete:
    concurrent, and lower in the precedence order, so the delete stands."""
    job = _job(skewed)
    with skewed.open(ON_TIME) as on_time:
        on_time.delete_job(job, user=ADMIN)
    with skewed.open(BEHIND) as behind:
        behind.update_job(job, user=ADMIN, description="later, but concurrent and behind")
    skewed.sync()
    assert skewed.descriptions(job) == {None}


def test_a_concurrent_update_from_ahead_outranks_a_delete_and_the_job_lives(skewed):
    """Genuinely concurrent, and newer by the precedence order (5 h ahead): the update wins,
    the delete goes to the conflict log, and the job keeps the hold and notes the delete had
    taken (the parent writes them back, so they reach the child that deleted them too)."""
    job = _job(skewed)
    with skewed.open(ON_TIME) as on_time:
        on_time.delete_job(job, user=ADMIN)
    with skewed.open(AHEAD) as ahead:
        ahead.update_job(job, user=ADMIN, description="concurrent, 5 h ahead")

    outcome = skewed.sync([ON_TIME, AHEAD, BEHIND])

    assert skewed.descriptions(job) == {"concurrent, 5 h ahead"}
    assert [(c.kind, c.loser_deleted) for c in outcome.conflicts] == [("job", True)]
    skewed.cluster.assert_converged()
    for name in ("parent", ON_TIME, AHEAD, BEHIND):
        with skewed.open(name) as repository:
            assert [h.hold_comments for h in repository.holds(job)] == ["shared"], name
            assert repository.get_notes(job) == "shared notes 0", name
    assert skewed.sync().conflicts == []  # and the cluster rests


def test_new_jobs_and_deletes_on_every_skewed_machine_all_arrive(skewed):
    created = {}
    for name in ("parent", BEHIND, AHEAD, ON_TIME):
        with skewed.open(name) as repository:
            job = repository.create_job(1, user=ADMIN, description=f"made on {name}")
            doomed = repository.create_job(1, user=ADMIN)
            repository.delete_job(doomed.id, user=ADMIN)
            created[job.id] = f"made on {name}"
    skewed.sync()
    for job_id, description in created.items():
        assert skewed.descriptions(job_id) == {description}
    skewed.cluster.assert_converged()


def test_replicating_from_a_parent_far_ahead_moves_a_child_clock_past_every_copied_stamp(
        skewed):
    job = _job(skewed)
    with skewed.open("parent") as parent:
        parent.update_job(job, user=ADMIN, description="on the parent")
        parent_clock = parent.info().clock
    with skewed.open("parent") as parent:
        replicate(parent, skewed.cluster.targets([BEHIND]), skewed.opener)
    with skewed.open(BEHIND) as behind:
        assert behind.info().clock >= parent_clock
        behind.update_job(job, user=ADMIN, description="behind, after the copy")
    skewed.sync()
    assert skewed.descriptions(job) == {"behind, after the copy"}


@pytest.fixture
def parent_behind(tmp_path, store) -> SkewedCluster:
    """A parent 5 h behind its child: after a sync its clock runs on the child's stamps, far
    ahead of its own wall clock."""
    cluster = fresh_cluster(tmp_path / "cluster", 1, shared_jobs=1, store=store)
    return SkewedCluster(cluster, {"parent": -5 * HOUR, "Child1": 5 * HOUR})


def test_a_parent_restored_from_a_backup_that_stamps_again_converges_and_keeps_both_edits(
        parent_behind, tmp_path):
    """Put back from a backup, the parent's clock is back where the backup left it; its wall
    clock is hours behind, so its next edit gets the very stamp of an edit it made after the
    backup, which the child still holds. Both versions under one stamp: one is kept everywhere
    and the other is in the parent's conflict log, not silently different on each side."""
    skewed, job = parent_behind, _job(parent_behind)
    with skewed.open("Child1") as child:
        child.update_job(job, user=ADMIN, description="from 5 h ahead")
    skewed.sync()
    parent_location = skewed.cluster.parent_path
    backup = postgres_helpers.new_location("bk") if is_postgres(parent_location) \
        else tmp_path / "parent.backup"
    overwrite_repository(parent_location, backup)
    with skewed.open("parent") as parent:
        parent.update_job(job, user=ADMIN, description="after the backup")
        lost_stamp = parent.info().clock
    skewed.sync()
    overwrite_repository(backup, parent_location)
    with skewed.open("parent") as parent:
        parent.update_job(job, user=ADMIN, description="after the restore")
        assert parent.info().clock == lost_stamp  # the premise: one stamp, two versions

    outcome = skewed.sync()

    skewed.cluster.assert_converged()
    (kept,) = skewed.descriptions(job)
    assert kept in {"after the backup", "after the restore"}
    lost = {"after the backup", "after the restore"} - {kept}
    logged = {codec.loads(c.loser_body).get("description") for c in outcome.conflicts
              if c.loser_body and c.kind == "job"}
    assert lost <= logged, outcome.conflicts
    assert skewed.sync().conflicts == []  # and the cluster rests


def test_a_delete_at_the_parent_that_loses_to_a_child_edit_gives_the_job_its_records_back(
        skewed):
    """The parent deleted the job while a child edited it: the child's edit wins; the hold
    and notes come back to every repository, the history keeps its entries, and an embedded
    attachment, whose bytes went with the delete, is the one record that stays deleted."""
    job = _job(skewed)
    with skewed.open(AHEAD) as ahead:
        ahead.add_attachment(job, "map.pdf", b"%PDF", user=ADMIN)
    skewed.sync()
    with skewed.open("parent") as parent:
        history = len(parent.activity(job))
        parent.delete_job(job, user=ADMIN)
    with skewed.open(AHEAD) as ahead:
        ahead.update_job(job, user=ADMIN, description="edited while the parent deleted it")

    outcome = skewed.sync([AHEAD, BEHIND, ON_TIME])
    skewed.sync()

    assert skewed.descriptions(job) == {"edited while the parent deleted it"}
    assert [(c.kind, c.loser_deleted) for c in outcome.conflicts] == [("job", True)]
    skewed.cluster.assert_converged()
    with skewed.open(BEHIND) as behind:
        assert [h.hold_comments for h in behind.holds(job)] == ["shared"]
        assert behind.get_notes(job) == "shared notes 0"
        assert len(behind.activity(job)) >= history
        assert behind.attachments(job) == []  # the limit: its bytes are gone
    assert skewed.sync().conflicts == []


def test_a_child_delete_that_loses_to_the_parent_edit_leaves_that_child_the_records(skewed):
    """The child deleted the job while the parent edited it: the parent's edit wins, the
    child's deletes of the job's records are refused with it (kept in the conflict log), and
    the child gets the job back whole, attachment bytes included."""
    job = _job(skewed)
    with skewed.open("parent") as parent:
        parent.add_attachment(job, "map.pdf", b"%PDF", user=ADMIN)
    skewed.sync()
    with skewed.open(BEHIND) as behind:
        behind.delete_job(job, user=ADMIN)
        deletes = [c for c in behind.changes(0, limit=10 ** 6).changes if c.deleted]
        behind_node = behind.info().node_id
    with skewed.open("parent") as parent:
        parent.update_job(job, user=ADMIN, description="edited while a child deleted it")
        (pushed,) = [n.push_seq for n in parent.nodes() if n.node_id == behind_node]

    outcome = skewed.sync()

    assert skewed.descriptions(job) == {"edited while a child deleted it"}
    assert all(c.loser_deleted for c in outcome.conflicts)
    assert {c.kind for c in outcome.conflicts} == {"job", "hold", "notes", "activity",
                                                   "attachment"}
    skewed.cluster.assert_converged()
    with skewed.open(BEHIND) as behind:
        assert [h.hold_comments for h in behind.holds(job)] == ["shared"]
        assert behind.get_notes(job) == "shared notes 0"
        (attachment,) = behind.attachments(job)
        assert behind.attachment_content(job, attachment.id) == b"%PDF"
    assert skewed.sync().conflicts == []
    with skewed.open("parent") as parent:  # the child's page sent again (a lost reply)
        head = parent.info().seq
        again = parent.apply(deletes, parent_node=parent.info().node_id,
                             source_node=behind_node, detect_since=pushed)
        assert (again.conflicts, parent.info().seq) == ([], head)
