"""Crash safety: Replicate and Synchronize interrupted at any step, then run again, end exactly as
an uninterrupted run ends — nothing lost, nothing duplicated, no child half-replaced, and no
checkpoint ever ahead of the data it covers.

Failures are injected at every call the engine makes to a repository (reading a page of
changes, applying it, writing a checkpoint with ``save_node``, every snapshot page and staged
load, ``commit_load``...), both *before* the call (it never happens) and *after* it (it happened,
durably, but the caller never heard back). A *crash* kills the whole run there; an *error* is
one failed call that the engine reports for that child and survives. SQL statements are also
interrupted part-way (inside ``apply``, ``load_rows``, ``commit_load``...). A real process
running a large sync or replicate is killed with ``Popen.kill()`` at several moments.

The call-level faults run once per store (``store``: files, and a PostgreSQL parent with a
PostgreSQL Child2); with PostgreSQL a sample of the calls is interrupted (5 of each
run's, first and last included: every call costs a cluster copy and two runs). Interrupting a
statement part-way and the failed-commit cases use SQLite's progress handler and are SQLite's
alone; they are skipped for PostgreSQL (whose server rolls back a dropped session's
transaction by itself).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from random import Random

import pytest

from tests.conftest import ADMIN, STORES, Cluster, close_readers, make_cluster
from tests.guarantees_helpers import (
    Crash,
    FaultPlan,
    FaultyRepository,
    SqlInterrupter,
    assert_checkpoints_behind_durable_data,
    bulk_jobs,
    copy_cluster,
    discard_cluster,
    fresh_cluster,
    normalized,
    scratch_directory,
    start_worker,
)
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.model import codec
from wmx.model.records import NAMED_KINDS, HoldType, JobType, User
from wmx.repository import open_store
from wmx.repository.base import RepositoryError
from wmx.repository.embedded import EmbeddedRepository

PAGE = 4
"""A small page size, so every run has many pages and many checkpoints to be interrupted at."""
REPLICATE_PAGE = 40
"""Several snapshot pages and staged loads per child."""
POSTGRES_SAMPLE = 5
"""Calls interrupted per run with PostgreSQL."""


def _calls_to_interrupt(calls: list[str], store: str) -> list[int]:
    """1-based positions of the calls to interrupt: all of them with files, an even sample
    (the first and the last included) with PostgreSQL."""
    count = len(calls)
    if store == "sqlite" or count <= POSTGRES_SAMPLE:
        return list(range(1, count + 1))
    return sorted({1 + round(i * (count - 1) / (POSTGRES_SAMPLE - 1))
                   for i in range(POSTGRES_SAMPLE)})


def _sqlite_only(store: str) -> None:
    if store != "sqlite":
        pytest.skip("interrupts SQLite statements part-way (SQLite's progress handler); a "
                    "PostgreSQL server rolls back a dropped session's transaction itself")


def _edited_cluster(folder: Path, store: str = "sqlite") -> Cluster:
    """Three children and a parent that all changed since the last sync: new jobs with holds,
    notes, history and attachments, deletes, concurrent edits of one job on three repositories,
    a delete racing an update, and the same configuration name created on two children."""
    cluster = fresh_cluster(folder, 3, shared_jobs=3, store=store)
    with cluster.parent() as parent:
        shared = parent.jobs()
        parent.create_job(2, user=ADMIN, description="new on the parent")
        parent.update_job(shared[0], user=ADMIN, description="parent's edit")
        parent.delete_job(shared[2], user=ADMIN)
        parent.create_config(JobType(id=None, name="Survey", description="parent's"))
    with cluster.child("Child1") as child:
        for number in range(3):
            job = child.create_job(1, user=ADMIN, description=f"child1 job {number}")
            child.create_hold(job.id, 1, user=ADMIN, comments="held")
            child.set_notes(job.id, f"notes {number}", user=ADMIN)
            child.add_attachment(job.id, "scan.bin", bytes(range(256)) * 4, user=ADMIN)
        child.delete_job(job.id, user=ADMIN)
        child.update_job(shared[0], user=ADMIN, description="child1's edit")
        child.create_config(JobType(id=None, name="Inspection"))
    with cluster.child("Child2") as child:
        child.update_job(shared[0], user=ADMIN, description="child2's edit")
        child.update_job(shared[2], user=ADMIN, description="child2 edits a doomed job")
        child.create_config(JobType(id=None, name="Inspection"))
        child.create_config(User(user_name="alice", full_name="Alice on Child2"))
    with cluster.child("Child3") as child:
        child.log_action(shared[1], 7, user=ADMIN, comments="looked at it")
        hold = child.holds(shared[1])[0]
        child.release_hold(shared[1], hold.id, user=ADMIN, comments="released")
        child.create_config(User(user_name="alice", full_name="Alice on Child3"))
        child.update_config(HoldType, 1, description="child3's")
    return cluster


def _conflict_log(cluster: Cluster) -> list[tuple]:
    """The losing versions in the parent's conflict log (each at most once)."""
    with cluster.parent() as parent:
        return sorted((c.guid, c.loser_origin, c.loser_hlc, c.loser_deleted, c.reason)
                      for c in parent.conflicts())


def _order_free(rows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Rows as far as they do not depend on the order children were processed in.

    A run where one child failed and was caught up by the next run processes that child
    later, and Esri's rename rule lets the first arrival keep a clashing name: which element
    is called ``Inspection`` and which ``Inspection_1`` depends on that order. So named
    configuration elements are compared without their name (and without the renaming
    version's stamp), and the names are compared as a set per kind.
    """
    elements, names = [], []
    for row in normalized(rows):
        guid, kind, int_id, job_guid, name, body, content, _origin, deleted = row
        if kind in NAMED_KINDS:
            fields = codec.loads(body) if body else {}
            for key in ("name", "userName", "key"):
                fields.pop(key, None)
            row = (guid, kind, int_id, job_guid, None, codec.dumps(fields), content, None,
                   deleted)
            if not deleted:
                names.append((kind, name))
        elements.append(row)
    return sorted(elements), sorted(names)


def _run(engine, cluster: Cluster, plan: FaultPlan | None = None,
         sql: SqlInterrupter | None = None, **options):
    """One run of ``engine`` over every child, through injected faults when ``plan`` is
    given (and SQL interruptions when ``sql`` is)."""
    opened: list = []

    def open_plain(location: str):
        repository = open_store(location) if sql is None else \
            sql.attach(EmbeddedRepository(location))
        opened.append(repository)
        return repository

    parent = open_plain(str(cluster.parent_path))
    opener = open_plain
    if plan is not None:
        names = {str(path): name for name, path in cluster.child_paths.items()}
        parent = FaultyRepository(parent, plan, "parent")

        def opener(location: str):
            if plan.dead:
                raise Crash("already dead")
            return FaultyRepository(open_plain(location), plan, names[location])
    try:
        return engine(parent, cluster.targets(), opener, **options)
    finally:  # what the operating system does for a process that died: close everything
        if sql is not None:
            sql.release()
        for repository in opened:
            repository.close()


def _sync(cluster: Cluster, plan: FaultPlan | None = None, sql: SqlInterrupter | None = None):
    return _run(synchronize, cluster, plan, sql, page_size=PAGE)


def _replicate(cluster: Cluster, plan: FaultPlan | None = None,
               sql: SqlInterrupter | None = None):
    return _run(replicate, cluster, plan, sql, page_size=REPLICATE_PAGE)


def _discard(cluster: Cluster) -> None:
    """An examined copy goes: its files, its PostgreSQL schemas and connections."""
    discard_cluster(cluster)
    shutil.rmtree(cluster.folder)


def _interrupted(run, cluster: Cluster, plan: FaultPlan) -> None:
    with contextlib.suppress(Crash, RepositoryError):
        run(cluster, plan)
    assert plan.fired, f"call {plan.at} was never made"


@pytest.fixture(scope="module")
def scratch():
    """Many short-lived cluster copies: on a RAM disk where there is one (a process crash
    tests SQLite's transactions, not the disk's durability)."""
    with scratch_directory("wmx-crash-") as folder:
        yield folder


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest):
    """The store of this module's clusters (module-scoped: the edited clusters are made once
    per store)."""
    if request.param == "postgresql":
        from tests.postgres_helpers import session_server

        session_server(request.config)
    yield request.param
    close_readers()


@pytest.fixture(scope="module")
def edited(scratch, store) -> Cluster:
    return _edited_cluster(scratch / f"edited-{store}", store)


@pytest.fixture(scope="module")
def synced_reference(edited, scratch, store):
    """What an uninterrupted sync makes of the edited cluster, and how many calls it makes."""
    cluster = copy_cluster(edited, scratch / f"sync-reference-{store}")
    counting = FaultPlan()
    outcome = _sync(cluster, counting)
    assert outcome.status_code == 0
    cluster.assert_converged()
    return cluster.states()["parent"], _conflict_log(cluster), counting.calls


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kind", ["crash", "error"])
def test_a_sync_interrupted_at_any_call_ends_like_an_uninterrupted_one_when_run_again(
        edited, synced_reference, scratch, store, kind, when):
    rows_with_stamps, conflicts, calls = synced_reference
    rows = normalized(rows_with_stamps)
    assert len(calls) > 60, "the scenario should exercise many pages and checkpoints"
    for at in _calls_to_interrupt(calls, store):
        cluster = copy_cluster(edited, scratch / f"sync-{store}-{kind}-{when}-{at}")
        plan = FaultPlan(at=at, when=when, kind=kind)
        _interrupted(_sync, cluster, plan)
        assert_checkpoints_behind_durable_data(cluster)

        outcome = _sync(cluster)

        assert outcome.status_code == 0, (plan.fired, [c.error for c in outcome.children])
        cluster.assert_converged()
        final = cluster.states()["parent"]
        if kind == "crash":
            assert normalized(final) == rows, plan.fired
        else:
            assert _order_free(final) == _order_free(rows_with_stamps), plan.fired
        log = _conflict_log(cluster)
        assert len(log) == len(set(log)), f"conflicts logged twice after {plan.fired}"
        assert log == conflicts, f"the conflict log differs after {plan.fired}"
        _discard(cluster)


# --- replicate ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def never_replicated(scratch, store) -> Cluster:
    """A parent with jobs and children that were never replicated (they hold data of their
    own, which replicate replaces)."""
    cluster = make_cluster(scratch / f"never-replicated-{store}", 3, replicated=False,
                           store=store)
    with cluster.parent() as parent:
        for number in range(6):
            job = parent.create_job(1, user=ADMIN, description=f"parent job {number}")
            parent.add_attachment(job.id, "a.bin", bytes(500), user=ADMIN)
        parent.delete_job(job.id, user=ADMIN)
    with cluster.child("Child2") as child:
        local = child.create_config(JobType(id=None, name="Local"))
        child.create_job(local.id, user=ADMIN, description="local to Child2")
    return cluster


def _replicate_calls(template: Cluster, scratch: Path, label: str) -> tuple[list[str], dict]:
    cluster = copy_cluster(template, scratch / f"replicate-reference-{label}")
    counting = FaultPlan()
    assert _replicate(cluster, counting).status_code == 0
    cluster.assert_converged()
    blocks = {}
    for name in cluster.child_paths:
        with cluster.child(name) as child:
            blocks[name] = child.info().id_block_start
    return counting.calls, blocks


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kind", ["crash", "error"])
@pytest.mark.parametrize("first_time", [True, False], ids=["first", "again"])
def test_a_replicate_interrupted_at_any_call_leaves_each_child_whole_and_run_again_completes(
        edited, never_replicated, scratch, store, first_time, kind, when):
    template = never_replicated if first_time else edited
    calls, blocks = _replicate_calls(template, scratch, f"{store}-{first_time}-{kind}-{when}")
    assert {"Child1.load_rows", "Child3.commit_load", "parent.snapshot"} <= set(calls)
    before = {name: rows for name, rows in template.states().items() if name != "parent"}
    for at in _calls_to_interrupt(calls, store):
        cluster = copy_cluster(template,
                               scratch / f"replicate-{store}-{first_time}-{kind}-{when}-{at}")
        plan = FaultPlan(at=at, when=when, kind=kind)
        _interrupted(_replicate, cluster, plan)
        states = cluster.states()
        parent_rows = states.pop("parent")
        if first_time:  # (again: the children's unsynchronized edits are consolidated)
            assert parent_rows == template.states()["parent"], "replicate wrote to the parent"
        for name, rows in states.items():
            assert rows in (before[name], parent_rows), \
                f"{name} was left half-replaced after {plan.fired}"
        assert_checkpoints_behind_durable_data(cluster)

        outcome = _replicate(cluster)

        assert outcome.status_code == 0, (plan.fired, [c.error for c in outcome.children])
        cluster.assert_converged()
        now = {}
        for name in cluster.child_paths:
            with cluster.child(name) as child:
                now[name] = child.info().id_block_start
        if kind == "crash" or not first_time:
            assert now == blocks, plan.fired
        else:  # a child that failed got no block; the others took the next free ones
            assert len(set(now.values())) == len(now) and 1 not in now.values(), plan.fired
        assert _sync(cluster).status_code == 0, plan.fired
        assert_checkpoints_behind_durable_data(cluster)
        _discard(cluster)


def test_a_job_id_block_is_never_handed_out_twice_when_a_reply_is_lost(tmp_path, store):
    """Found by the replicate fault test: saving Child1's node record succeeded but the reply
    was lost (a dropped connection to a remote parent); Child1 was reported failed and Child2
    was given Child1's job-id block, so both children allocated the same job ids."""
    cluster = make_cluster(tmp_path, 2, replicated=False, store=store)
    counting = FaultPlan()
    _replicate(copy_cluster(cluster, tmp_path / "reference"), counting)
    committed = counting.calls.index("Child1.commit_load")
    at = counting.calls.index("parent.save_node", committed) + 1

    outcome = _replicate(cluster, FaultPlan(at=at, when="after", kind="error"))

    assert [c.status for c in outcome.children] == ["FAILED", "OK"]
    assert _replicate(cluster).status_code == 0
    blocks = set()
    for name in cluster.child_paths:
        with cluster.child(name) as child:
            blocks.add(child.info().id_block_start)
    assert len(blocks) == 2


# --- statements interrupted part-way ----------------------------------------------------------

def _ticks(run, template: Cluster, folder: Path) -> int:
    cluster = copy_cluster(template, folder)
    counting = SqlInterrupter(FaultPlan())
    assert run(cluster, FaultPlan(), counting).status_code == 0
    return counting.ticks


def _sample(total: int, count: int = 60) -> list[int]:
    step = max(1, total // count)
    return list(range(1, total + 1, step))


@pytest.mark.slow
def test_a_sync_interrupted_inside_any_statement_ends_like_an_uninterrupted_one(
        edited, synced_reference, scratch, store):
    _sqlite_only(store)
    rows = normalized(synced_reference[0])
    total = _ticks(_sync, edited, scratch / "sql-sync-count")
    for at in _sample(total):
        cluster = copy_cluster(edited, scratch / f"sql-sync-{at}")
        plan = FaultPlan()
        with contextlib.suppress(Crash, RepositoryError):
            _sync(cluster, plan, SqlInterrupter(plan, at))
        assert plan.fired, f"tick {at} of {total} never came"
        assert_checkpoints_behind_durable_data(cluster)

        assert _sync(cluster).status_code == 0, plan.fired
        cluster.assert_converged()
        assert normalized(cluster.states()["parent"]) == rows, plan.fired
        assert _conflict_log(cluster) == synced_reference[1], plan.fired
        _discard(cluster)


@pytest.mark.slow
def test_a_replicate_interrupted_inside_any_statement_leaves_each_child_whole(
        edited, scratch, store):
    _sqlite_only(store)
    before = edited.states()
    total = _ticks(_replicate, edited, scratch / "sql-replicate-count")
    for at in _sample(total):
        cluster = copy_cluster(edited, scratch / f"sql-replicate-{at}")
        plan = FaultPlan()
        with contextlib.suppress(Crash, RepositoryError):
            _replicate(cluster, plan, SqlInterrupter(plan, at))
        assert plan.fired, f"tick {at} of {total} never came"
        states = cluster.states()
        parent_rows = states.pop("parent")  # it consolidates the children's edits first
        for name, rows in states.items():
            assert rows in (before[name], parent_rows), \
                f"{name} was left half-replaced: {plan.fired}"
        assert_checkpoints_behind_durable_data(cluster)

        assert _replicate(cluster).status_code == 0, plan.fired
        cluster.assert_converged()
        _discard(cluster)


def _abort_statements(repository: EmbeddedRepository, which) -> None:
    """Make SQLite abort every statement for which ``which(sql)`` is true."""
    current = {"sql": ""}
    repository._db.set_trace_callback(lambda sql: current.__setitem__("sql", sql))
    repository._db.set_progress_handler(lambda: int(bool(which(current["sql"]))), 1)


def _cleared(repository: EmbeddedRepository) -> None:
    repository._db.set_trace_callback(None)
    repository._db.set_progress_handler(None, 0)


def test_a_failed_commit_leaves_the_repository_unchanged_and_usable(tmp_path):
    """Found by the statement-interruption test: when COMMIT itself failed (an I/O error, a
    full disk), the error escaped as a raw sqlite3 error and the connection stayed inside the
    transaction, holding the write lock: every later write of that process (a long-running
    server) failed as "busy", and no other process could write either."""
    cluster = make_cluster(tmp_path, 1)
    with cluster.parent() as parent, cluster.parent() as other:
        seq = parent.info().seq
        _abort_statements(parent, lambda sql: sql == "COMMIT")
        with pytest.raises(RepositoryError):
            parent.create_job(1, user=ADMIN)
        _cleared(parent)
        assert parent.info().seq == seq
        parent.create_job(1, user=ADMIN)
        other.create_job(1, user=ADMIN)
        assert len(other.jobs()) == 2


def test_an_interrupted_begin_does_not_leave_the_write_lock_held(tmp_path):
    """Found by the statement-interruption test (tick 56 of a sync, CI 2026-11): a BEGIN
    IMMEDIATE aborted after it had taken the write lock raised "busy" but left the connection
    inside the transaction, so every later writer of the repository failed "database is
    locked" — the re-run of the sync included."""
    cluster = make_cluster(tmp_path, 1)
    with cluster.parent() as parent, cluster.parent() as other:
        for step in range(1, 8):  # abort BEGIN IMMEDIATE at each of its first VM steps
            ticks = {"sql": "", "n": 0}

            def tick(ticks=ticks, step=step) -> int:
                if ticks["sql"] != "BEGIN IMMEDIATE":
                    return 0
                ticks["n"] += 1
                return int(ticks["n"] == step)

            parent._db.set_trace_callback(lambda sql, ticks=ticks: ticks.__setitem__("sql", sql))
            parent._db.set_progress_handler(tick, 1)
            with contextlib.suppress(RepositoryError):
                parent.create_job(1, user=ADMIN)
            _cleared(parent)
            assert not parent._db.in_transaction, f"step {step}"
            other.create_job(1, user=ADMIN)
            parent.create_job(1, user=ADMIN)


def test_a_statement_sqlite_rolls_back_by_itself_fails_as_a_repository_error(tmp_path):
    """Found by the statement-interruption test: an aborted INSERT inside a transaction makes
    SQLite roll the whole transaction back; the ROLLBACK the store then sent failed ("no
    transaction is active") and that raw sqlite3 error, not a RepositoryError, ended the whole
    sync instead of failing one child."""
    cluster = make_cluster(tmp_path, 1)
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN)
        changes = child.changes(0, limit=10 ** 6, origin=child.info().node_id).changes
    with cluster.parent() as parent:
        seq = parent.info().seq
        _abort_statements(parent, lambda sql: sql.startswith("INSERT INTO elements"))
        with pytest.raises(RepositoryError):
            parent.apply(changes, parent_node=parent.info().node_id)
        _cleared(parent)
        assert parent.info().seq == seq
        parent.apply(changes, parent_node=parent.info().node_id)
        assert parent.get_job(job.id).guid == job.guid


# --- a real process, killed -------------------------------------------------------------------

KILL_MOMENTS = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Fractions of an uninterrupted run's duration at which the process is killed (each with a
random jitter of up to ±10 % of the run)."""


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Cluster:
    """A cluster on an ordinary disk where a sync moves thousands of versions each way."""
    cluster = make_cluster(tmp_path_factory.mktemp("large"), 2)
    with cluster.parent() as parent:
        bulk_jobs(parent, 2500, description="parent", notes_bytes=200)
    with cluster.child("Child1") as child:
        bulk_jobs(child, 2500, description="child1", notes_bytes=200)
    with cluster.child("Child2") as child:
        bulk_jobs(child, 500, description="child2")
    return cluster


def _run_worker(mode: str, cluster: Cluster, page_size: int) -> float:
    """Run the worker to the end; return how long the run took after it started."""
    process = start_worker(mode, cluster, page_size)
    started = time.perf_counter()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, (out, err)
    return time.perf_counter() - started


def _kill_worker(mode: str, cluster: Cluster, page_size: int, delay: float) -> bool:
    """Start the worker, kill it ``delay`` seconds into its run; True if it was still
    running."""
    process = start_worker(mode, cluster, page_size)
    try:
        time.sleep(delay)
        running = process.poll() is None
        process.kill()
        process.wait(timeout=60)
    finally:
        process.stdout.close()
        process.stderr.close()
    return running


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "replicate"])
def test_a_process_killed_during_a_large_run_is_repaired_by_running_again(large, tmp_path,
                                                                          mode):
    page_size = 250
    engine = _sync if mode == "sync" else _replicate
    reference = copy_cluster(large, tmp_path / "reference")
    duration = _run_worker(mode, reference, page_size)
    reference.assert_converged()
    expected = normalized(reference.states()["parent"])
    before = large.states()
    random = Random()
    seed = random.randrange(10 ** 6)
    random.seed(seed)
    killed_while_running = 0
    for number, moment in enumerate(KILL_MOMENTS):
        cluster = copy_cluster(large, tmp_path / f"killed-{number}")
        delay = max(0.0, duration * (moment + random.uniform(-0.1, 0.1)))
        killed_while_running += _kill_worker(mode, cluster, page_size, delay)
        where = f"killed {delay:.3f} s into a {duration:.3f} s {mode} (seed {seed})"
        if mode == "replicate":
            states = cluster.states()
            parent_rows = states.pop("parent")  # it consolidates the children's edits first
            for name, rows in states.items():
                assert rows in (before[name], parent_rows), \
                    f"{name} was left half-replaced: {where}"
        assert_checkpoints_behind_durable_data(cluster)

        assert engine(cluster).status_code == 0, where

        cluster.assert_converged()
        assert normalized(cluster.states()["parent"]) == expected, where
        _discard(cluster)
    assert killed_while_running >= 3, "the runs ended before they could be killed"
