"""Rows from elsewhere are checked where they enter, once: impossible stamps and poison bodies.

Issue 8, items 5 and 7. A version stamped at the top of the stamp range moved the parent's
clock where it could issue no greater stamp, and every later sync to every child failed for
good. A ``user`` whose body was not JSON (or lacked ``userName``, or a job without an integer
id), sent by a peer with Manage Replication, was stored and spread, and from then on every
write and replication call of every served repository answered 500. Each is now refused at
the edge (store apply and snapshot load, the server's decode, the client's decode), naming the
element, and nothing is written.
"""

from __future__ import annotations

import time

import attrs
import pytest

from tests.conftest import ADMIN, Cluster, make_cluster
from wmx.model import codec
from wmx.model.changes import Change
from wmx.model.clock import AHEAD_LIMIT_MS, COUNTER_BITS, MAX_STAMP, stamp_from_millis
from wmx.repository import open_repository
from wmx.repository.base import InvalidRequest
from wmx.repository.wire import WireError, changes_from_wire, changes_to_wire, rows_from_wire
from wmx.server.run import ServerThread

HOUR_MS = 3_600_000


def _child_job_version(cluster) -> Change:
    """A real version of a job created at a child (what a sync would carry to the parent)."""
    with cluster.child("Child1") as child:
        child.create_job(1, user=ADMIN)
        mine = child.changes(0, limit=10 ** 6, origin=child.info().node_id).changes
    return next(change for change in mine if change.kind == "job")


def _now_stamp(offset_ms: int = 0) -> int:
    return stamp_from_millis(int(time.time() * 1000) + offset_ms)


def _new_job_reaches_child(cluster) -> None:
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    outcome = cluster.sync()
    assert outcome.status_code == 0, [child.error for child in outcome.children]
    with cluster.child("Child2") as child:
        assert child.get_job(job.id).guid == job.guid


@pytest.mark.parametrize("stamp", [MAX_STAMP - 1, MAX_STAMP, MAX_STAMP + 1],
                         ids=["MAX_STAMP-1", "MAX_STAMP", "MAX_STAMP+1"])
def test_a_version_stamped_at_the_top_of_the_range_is_refused_and_later_syncs_still_work(
        cluster, stamp):
    poisoned = attrs.evolve(_child_job_version(cluster), hlc=stamp)
    with cluster.parent() as parent:
        seq, clock = parent.info().seq, parent.clock.last
        with pytest.raises(InvalidRequest, match=poisoned.guid):
            parent.apply([poisoned], parent_node=parent.info().node_id)
        load = parent.begin_load()
        with pytest.raises(InvalidRequest, match=poisoned.guid):
            parent.load_rows(load, [poisoned.to_row()])
        parent.abort_load(load)
        assert (parent.info().seq, parent.clock.last) == (seq, clock)
    _new_job_reaches_child(cluster)  # a following local write, and a sync to every child


def test_a_version_stamped_more_than_the_limit_ahead_is_refused_naming_the_element(cluster):
    ahead = attrs.evolve(_child_job_version(cluster),
                         hlc=_now_stamp(AHEAD_LIMIT_MS + HOUR_MS))
    with cluster.parent() as parent:
        seq = parent.info().seq
        with pytest.raises(InvalidRequest, match=rf"job {ahead.guid}: stamped more than 24 hours"):
            parent.apply([ahead], parent_node=parent.info().node_id)
        assert parent.info().seq == seq


def test_a_version_from_a_machine_hours_ahead_is_adopted_and_the_next_local_edit_follows_it(
        cluster):
    """The limit leaves ordinary skew alone: the version is applied, the clock moves past it,
    so the parent's next edit outranks it (the clock-skew guarantee), and syncs go on."""
    ahead = attrs.evolve(_child_job_version(cluster), hlc=_now_stamp(5 * HOUR_MS))
    with cluster.parent() as parent:
        parent.apply([ahead], parent_node=parent.info().node_id)
        edit = parent.create_job(1, user=ADMIN)
        stamped = parent.read_record("job", int_id=edit.id)
        assert stamped is not None
        assert parent.changes(0, limit=10 ** 6).changes[-1].hlc > ahead.hlc
    _new_job_reaches_child(cluster)


def test_a_clock_pushed_to_the_limit_can_still_issue_a_greater_stamp(cluster):
    """The bound is relative to the node, so an admitted stamp never leaves a clock at the top
    of the range: whatever it admitted, its next stamp is valid and greater."""
    with cluster.parent() as parent:
        clock = parent.clock
        edge = max(_now_stamp(), clock.last) + stamp_from_millis(AHEAD_LIMIT_MS) - (
            1 << COUNTER_BITS)
        assert clock.admits(edge)
        clock.observe(edge)
        issued = clock.now()
        assert edge < issued < MAX_STAMP


# --- poison rows ------------------------------------------------------------------------------

def _user_version(cluster) -> Change:
    with cluster.child("Child1") as child:
        mine = child.changes(0, limit=10 ** 6).changes
    return next(change for change in mine if change.kind == "user" and not change.deleted)


def _job_body(change: Change, **fields) -> str:
    return codec.dumps({**codec.loads(change.body), **fields})


POISONS = {
    "user body not JSON": ("user", lambda c: {"body": "{not json"}, "body is not JSON"),
    "user body a JSON list": ("user", lambda c: {"body": "[1, 2]"}, "not a JSON object"),
    "user without userName": ("user", lambda c: {"body": '{"fullName": "x"}'},
                              "lacks userName"),
    "user name column disagrees": ("user", lambda c: {"name": "someone else"},
                                   "name column disagrees"),
    "job id not an integer": ("job", lambda c: {"body": _job_body(c, id="7")},
                              "body lacks id|id has the wrong type"),
    "job int_id disagrees": ("job", lambda c: {"int_id": c.int_id + 1000},
                             "integer id column"),
    "job date out of range": ("job", lambda c: {"body": _job_body(c, dueDate=10 ** 17)},
                              "dueDate is out of range"),
    "job with content bytes": ("job", lambda c: {"content": b"\x00" * 8},
                               "only an attachment carries content"),
    "unknown kind": ("job", lambda c: {"kind": "workflow_step"}, "kind is unknown"),
    "live row without a body": ("user", lambda c: {"body": None}, "needs a body"),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Cluster, dict[str, Change]]:
    """One cluster for the tests that only see rows refused (they change nothing), with a
    real job and user version from a child to damage."""
    cluster = make_cluster(tmp_path_factory.mktemp("shared"))
    return cluster, {"job": _child_job_version(cluster), "user": _user_version(cluster)}


@pytest.fixture(params=list(POISONS), ids=list(POISONS))
def poison(request, shared) -> tuple[Change, str]:
    kind, change_fields, reason = POISONS[request.param]
    good = shared[1][kind]
    bad = attrs.evolve(good, hlc=_now_stamp(), **change_fields(good))
    return bad, reason


def test_a_poison_row_is_refused_by_the_store_naming_the_element_and_nothing_is_written(
        shared, poison):
    bad, reason = poison
    with shared[0].parent() as parent:
        before = parent.all_rows()
        with pytest.raises(InvalidRequest, match=reason) as refused:
            parent.apply([bad], parent_node=parent.info().node_id)
        assert bad.guid in str(refused.value)
        with pytest.raises(InvalidRequest, match=reason):
            parent.apply([], parent_node=parent.info().node_id, overlay=[bad], dry_run=True)
        load = parent.begin_load()
        with pytest.raises(InvalidRequest, match=reason):
            parent.load_rows(load, [bad.to_row()])
        parent.abort_load(load)
        assert parent.all_rows() == before


def test_a_poison_row_decoded_from_a_peer_is_a_wire_error_naming_the_element(shared, poison):
    bad, reason = poison
    fine = shared[1]["user"]
    wire = codec.loads(codec.dumps(changes_to_wire([fine, bad])))  # as it travels
    with pytest.raises(WireError, match=r"^changes\[1\]") as refused:
        changes_from_wire(wire)
    if bad.body is not None:  # (a live row without one fails the wire's own type check)
        assert bad.guid in str(refused.value)
        with pytest.raises(WireError, match=reason):
            rows_from_wire(wire)


def test_a_poison_row_sent_to_a_server_is_refused_and_the_server_keeps_working(cluster):
    """The reported case: a peer with Manage Replication posts a user whose body is not JSON
    to ``x-apply``. Refused (400, nothing stored); writes and syncs of that server go on."""
    bad = attrs.evolve(_user_version(cluster), body="{not json", hlc=_now_stamp())
    with ServerThread(cluster.parent_path) as server:
        remote = open_repository(server.url, user=ADMIN)
        try:
            with pytest.raises(InvalidRequest, match=bad.guid):
                remote.apply([bad], parent_node=remote.info().node_id)
            job = remote.create_job(1, user=ADMIN)
        finally:
            remote.close()
    with cluster.parent() as parent:
        assert bad.guid not in {row[0] for row in parent.all_rows()
                                if row[5] == "{not json"}
        assert parent.get_job(job.id).id == job.id
    outcome = cluster.sync()
    assert outcome.status_code == 0, [child.error for child in outcome.children]


def test_every_row_of_a_realistic_repository_passes_the_check(cluster):
    """No false refusals: jobs with holds, notes, attachments, dependencies and extended
    properties, users, groups and every configuration element are accepted as they are."""
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN)
        other = child.create_job(1, user=ADMIN)
        hold = child.create_hold(job.id, 1, user=ADMIN)
        child.release_hold(job.id, hold.id, user=ADMIN)
        child.set_notes(job.id, "notes", user=ADMIN)
        child.log_action(job.id, 1, user=ADMIN)
        child.add_attachment(job.id, "a.txt", b"bytes", user=ADMIN)
        child.add_dependency(job.id, other.id, user=ADMIN)
        child.add_extended_property(job.id, "parcels", {"apn": "12"}, user=ADMIN)
        child.close_job(job.id, user=ADMIN)
        child.delete_job(other.id, user=ADMIN)
        rows = child.all_rows()
    with cluster.parent() as parent:
        report = parent.apply([Change.from_row(row) for row in rows],
                              parent_node=parent.info().node_id, dry_run=True)
    assert report.conflicts == [] or all(c.reason == "id_collision" for c in report.conflicts)
    assert len({row[1] for row in rows}) >= 10


POISON_BODY = '{"jobTypeId": 1}'
"""A job body without its id (JSON still: SQLite's own index of job bodies refuses worse)."""


def _poison_in_place(path, guid: str) -> None:
    """Damage one stored row behind the store's back (a store written before this check, a
    disk error) and move it to the head of the change log, so the next sync sends it."""
    import sqlite3

    db = sqlite3.connect(path)
    with db:
        db.execute(f"UPDATE elements SET body='{POISON_BODY}', hlc=hlc+1,"
                   " seq=(SELECT MAX(seq) + 1 FROM elements) WHERE guid=?", (guid,))
    db.close()


@pytest.mark.parametrize("served", [False, True], ids=["embedded child", "child over HTTP"])
def test_a_child_holding_a_poison_row_fails_alone_and_the_row_reaches_no_other_repository(
        cluster, served):
    """The row is refused where it would enter the parent (its store, or the client decoding
    the child's page); that child fails naming the element, the other child is synchronized,
    and neither the parent nor the other child ever holds it. (A job: a served repository
    whose own users are damaged cannot answer at all, which is what the check prevents.)"""
    poisoned = _child_job_version(cluster)
    _poison_in_place(cluster.child_paths["Child1"], poisoned.guid)
    with cluster.parent() as parent:
        healthy = parent.create_job(1, user=ADMIN)
    with ServerThread(cluster.child_paths["Child1"]) as server, cluster.parent() as parent:
        from wmx.engine.outcome import ChildTarget
        from wmx.engine.synchronize import synchronize

        location = server.url if served else str(cluster.child_paths["Child1"])
        targets = [ChildTarget("Child1", location),
                   ChildTarget("Child2", str(cluster.child_paths["Child2"]))]
        outcome = synchronize(parent, targets, lambda url: open_repository(url, user=ADMIN))
    failed, synced = outcome.children
    assert failed.error and poisoned.guid in failed.error
    assert not synced.error
    with cluster.child("Child2") as other:
        assert other.get_job(healthy.id).id == healthy.id
    for repository in (cluster.parent(), cluster.child("Child2")):
        with repository:
            assert POISON_BODY not in {row[5] for row in repository.all_rows()}
