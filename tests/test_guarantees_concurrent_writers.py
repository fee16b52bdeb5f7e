"""Concurrent writers: jobs edited on a repository while a sync runs against it are not lost —
they travel in this sync or in the next one.

Users go on working while a sync runs: they create jobs, edit them, put them on hold, release
holds and write notes, on the parent and on the children, each through a connection of its own
(a repository opened on its own, or Esri's REST endpoints of a served repository) in a
thread of its own. Each writer owns the jobs it edits (no two writers edit one job), so the last
edit of a job is the version that must be everywhere in the end; concurrent edits of one element
on two repositories are the convergence tests' subject.

* lock-step: the sync's repositories are wrapped (:class:`FaultyRepository` with a
  :attr:`FaultPlan.between` hook) so that the writers edit, and the engine waits for them, just
  before a chosen engine call (every call in turn: ``info``, ``nodes``, ``changes``, ``apply``,
  ``save_node``... — e.g. after a child's feed was read and before the parent applied it, after
  a page was applied at a child and before its checkpoint moved), or before every call of one run;
* free-running: writer threads edit as fast as they can while a large sync (many small pages)
  runs in this process, or in a process of its own;
* over HTTP: the parent and a child are real servers and their writers post ``jobs/create``,
  ``jobs/{id}/update``, holds and notes to them while the sync runs (lock-step, and the arcpy
  tool free-running).

After the concurrent run: it finished with status 0, no checkpoint covers data it did not move;
one more sync with no writers leaves every repository identical, with every edit present in its
latest version everywhere and nothing twice; and a further sync writes nothing.

The lock-step tests, the HTTP lock-step test and the edit racing a push run once per store
(``store``: files, and a PostgreSQL parent with a PostgreSQL Child2), and a free-running
sync of a PostgreSQL parent, where writers really do commit while the sync's transactions run.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from random import Random
from typing import Callable, Optional

import attrs
import pytest

from tests.conftest import ADMIN, Cluster, make_cluster
from tests.guarantees_helpers import (
    FaultPlan,
    FaultyRepository,
    assert_checkpoints_behind_durable_data,
    bulk_jobs,
    copy_cluster,
    discard_cluster,
    fresh_cluster,
    named_paths,
    scratch_directory,
    start_worker,
    store_fixture,  # noqa: F401 (the store fixture)
)
from wmx import arcpy
from wmx.engine.outcome import ChildTarget, RunOutcome
from wmx.engine.synchronize import synchronize
from wmx.model import codec
from wmx.model.changes import ConflictPolicy
from wmx.repository import open_repository, open_store
from wmx.repository.base import Repository
from wmx.server.run import ServerThread

PAGE = 4
"""Lock-step runs: a small page, so a sync has many pages and checkpoints to edit between."""
EVERY_CALL_PAGE = 25
"""Runs with edits before every call, with pages larger than what the writers add between two
reads of one feed (three rounds of one edit, each up to two versions, per repository)."""
CHASE_LIMIT = 1000
"""Turns after which the writers that outpace a sync stop, so that a sync chasing them (the
bug) ends too, and the test can fail rather than hang."""
LARGE_PAGE = 50
EDITS_PER_ROUND = 6
"""One round of a writer: a new job, an edit, notes, a hold, a release, a deletion (the
writers' edits come in this rotation)."""
HOLD_TYPE = 1
JOB_TYPE = 1
WAIT = 60.0


# --- writers ---------------------------------------------------------------------------------

@attrs.define
class Expected:
    """What a job must look like everywhere once its edits have travelled."""

    description: str
    notes: str
    holds: dict[int, bool]
    """hold id → released."""
    history: int
    """Number of activity entries (creating a job and adding a hold each log one)."""


def _state(repository: Repository, job_id: int) -> Expected:
    return Expected(repository.get_job(job_id).description, repository.get_notes(job_id),
                    {h.id: h.release_date is not None for h in repository.holds(job_id)},
                    len(repository.activity(job_id)))


class Writer:
    """A user editing one repository through a connection of their own, in a thread of their
    own: on request (:meth:`ask` and :meth:`wait`, lock-step) or freely (``start(freely=True)``
    until :meth:`stop`). Records what each job it edited must look like in the end."""

    KINDS = ("create", "describe", "notes", "hold", "release", "delete")

    def __init__(self, name: str, repository: Repository, owned: list[int], seed: int) -> None:
        self.name = name
        self.repository = repository
        self.random = Random(seed)
        self.jobs: dict[int, Expected] = {job_id: _state(repository, job_id) for job_id in owned}
        self.created: list[int] = []
        self.deleted: list[int] = []
        self.edits: list[tuple[float, float]] = []
        """(start, end) of every edit, in ``time.monotonic()`` seconds."""
        self._requests: queue.Queue[Optional[int]] = queue.Queue()
        self._done: queue.Queue[Optional[BaseException]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None

    def __repr__(self) -> str:
        return f"<Writer {self.name}: {len(self.edits)} edits>"

    # --- the edits ---------------------------------------------------------------------------

    def edit(self) -> None:
        kind = self.KINDS[len(self.edits) % len(self.KINDS)]
        number = len(self.edits) + 1
        started = time.monotonic()
        if kind == "create" or not self.jobs:
            job = self.repository.create_job(JOB_TYPE, user=ADMIN,
                                             description=f"{self.name} job {number}")
            self.jobs[job.id] = Expected(job.description, "", {}, 1)
            self.created.append(job.id)
        elif kind == "delete" and len(self.jobs) > 2:
            job_id = self.random.choice([i for i in self.created if i in self.jobs])
            self.repository.delete_job(job_id, user=ADMIN)
            del self.jobs[job_id]
            self.deleted.append(job_id)
        elif kind in ("describe", "delete"):
            job_id, expected = self._pick()
            expected.description = f"{self.name} edit {number}"
            self.repository.update_job(job_id, user=ADMIN, description=expected.description)
        elif kind == "notes":
            job_id, expected = self._pick()
            expected.notes = f"{self.name} notes {number}"
            self.repository.set_notes(job_id, expected.notes, user=ADMIN)
        else:
            held = [(job_id, hold_id) for job_id, expected in self.jobs.items()
                    for hold_id, released in expected.holds.items() if not released]
            if kind == "release" and held:
                job_id, hold_id = self.random.choice(held)
                self.repository.release_hold(job_id, hold_id, user=ADMIN,
                                             comments=f"{self.name} {number}")
                self.jobs[job_id].holds[hold_id] = True
            else:
                job_id, expected = self._pick()
                hold = self.repository.create_hold(job_id, HOLD_TYPE, user=ADMIN,
                                                   comments=f"{self.name} {number}")
                expected.holds[hold.id] = False
                expected.history += 1
        self.edits.append((started, time.monotonic()))

    def _pick(self) -> tuple[int, Expected]:
        job_id = self.random.choice(sorted(self.jobs))
        return job_id, self.jobs[job_id]

    # --- the thread ----------------------------------------------------------------------------

    def start(self, *, freely: bool = False, pause: float = 0.0) -> Writer:
        target = (lambda: self._run_freely(pause)) if freely else self._serve
        self._thread = threading.Thread(target=target, daemon=True, name=f"writer-{self.name}")
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            count = self._requests.get()
            if count is None:
                return
            try:
                for _ in range(count):
                    self.edit()
            except BaseException as exc:  # handed to the thread that asked for the edits
                self._done.put(exc)
            else:
                self._done.put(None)

    def _run_freely(self, pause: float) -> None:
        try:
            while not self._stop.is_set():
                self.edit()
                if pause:
                    time.sleep(pause)
        except BaseException as exc:  # re-raised by stop()
            self.error = exc

    def ask(self, count: int) -> None:
        self._requests.put(count)

    def wait(self) -> None:
        error = self._done.get(timeout=WAIT)
        if error is not None:
            # Not a RepositoryError, so the engine cannot mistake it for a failed child.
            raise AssertionError(f"{self.name} could not edit: {error!r}") from error

    def stop(self) -> None:
        self._stop.set()
        self._requests.put(None)
        if self._thread is not None:
            self._thread.join(WAIT)
            assert not self._thread.is_alive(), f"{self.name} did not stop"
        self.repository.close()
        if self.error is not None:
            raise AssertionError(f"{self.name} could not edit: {self.error!r}") from self.error

    def edits_during(self, start: float, end: float) -> int:
        """Edits made entirely while something ran from ``start`` to ``end``."""
        return sum(start <= began and ended <= end for began, ended in self.edits)


def turn(writers: list[Writer], count: int = EDITS_PER_ROUND) -> None:
    """Every writer makes ``count`` edits, all at the same time; returns when all are done."""
    for writer in writers:
        writer.ask(count)
    for writer in writers:
        writer.wait()


@contextlib.contextmanager
def writing(writers: list[Writer], **options) -> Iterator[list[Writer]]:
    """The writers' threads run inside the block (``options``: see :meth:`Writer.start`); all
    are stopped at its end, and the first one that failed to edit fails the test."""
    for writer in writers:
        writer.start(**options)
    try:
        yield writers
    finally:
        failures = []
        for writer in writers:
            try:
                writer.stop()
            except AssertionError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


def embedded_writers(cluster: Cluster, names: list[str], seed: int) -> list[Writer]:
    """One writer per named repository (``parent``, ``Child1``...), each through an
    repository opened on its own; writer *i* owns the *i*-th job the cluster shares."""
    paths = dict(named_paths(cluster))
    with cluster.parent() as parent:
        shared = parent.jobs()
    return [Writer(name, open_store(paths[name]), shared[index:index + 1],
                   seed * 100 + index) for index, name in enumerate(names)]


# --- the guarantee -----------------------------------------------------------------------------

def all_job_ids(cluster: Cluster) -> set[int]:
    ids: set[int] = set()
    for _name, location in named_paths(cluster):
        with cluster.reader(location) as repository:
            ids.update(repository.jobs())
    return ids


def assert_succeeded(outcome: RunOutcome, where: str = "") -> None:
    """Writers never make a sync fail (no child reported failed, e.g. as "busy")."""
    assert outcome.status_code == 0, (where, [c.error for c in outcome.children])


def check_after_concurrent_run(cluster: Cluster, writers: list[Writer], jobs_before: set[int],
                               sync: Callable[[], RunOutcome], where: str = "") -> None:
    """No checkpoint of the concurrent run covers data it did not move; one quiet sync makes
    every edit travel everywhere, and the next one writes nothing."""
    assert_checkpoints_behind_durable_data(cluster)

    quiet = sync()

    assert quiet.status_code == 0, (where, [c.error for c in quiet.children])
    cluster.assert_converged()
    assert_every_edit_everywhere(cluster, writers, jobs_before, where)
    seqs = cluster.seqs()
    assert sync().status_code == 0
    assert cluster.seqs() == seqs, f"{where}: a sync with nothing new wrote something"


def assert_every_edit_everywhere(cluster: Cluster, writers: list[Writer], jobs_before: set[int],
                                 where: str = "") -> None:
    """Every repository holds exactly the jobs that existed plus those the writers created,
    less those they deleted, and every job a writer edited is in the state its last edits left
    it (description, notes, holds and their releases, history entries: none missing, none
    twice)."""
    created = [job_id for writer in writers for job_id in writer.created]
    assert len(created) == len(set(created)), f"{where}: a job id was handed out twice"
    deleted = {job_id for writer in writers for job_id in writer.deleted}
    expected_ids = sorted((jobs_before | set(created)) - deleted)
    for name, location in named_paths(cluster):
        with cluster.reader(location) as repository:
            assert repository.jobs() == expected_ids, f"{where}: {name} has other jobs"
            for writer in writers:
                for job_id, expected in writer.jobs.items():
                    assert _state(repository, job_id) == expected, (
                        f"{where}: job {job_id} as {writer.name} left it is not at {name}")


def edited_cluster(folder: Path, store: str = "sqlite") -> Cluster:
    """Two children and a parent with unsynchronized work of their own (several pages of it)."""
    cluster = fresh_cluster(folder, 2, shared_jobs=3, store=store)
    for name, location in named_paths(cluster):
        with open_store(location) as repository:
            bulk_jobs(repository, 6, description=f"bulk on {name}", notes_bytes=10)
    return cluster


def sync_embedded(cluster: Cluster, page_size: int, plan: Optional[FaultPlan] = None
                  ) -> RunOutcome:
    """One sync of every child, the repositories going through ``plan`` when there is one."""
    if plan is None:
        with cluster.parent() as parent:
            return synchronize(parent, cluster.targets(), open_repository, page_size=page_size)
    names = {str(path): name for name, path in cluster.child_paths.items()}

    def open_child(location: str) -> FaultyRepository:
        return FaultyRepository(open_store(location), plan, names[location])

    with FaultyRepository(cluster.parent(), plan, "parent") as parent:
        return synchronize(parent, cluster.targets(), open_child, page_size=page_size)


@pytest.fixture(scope="module")
def scratch():
    with scratch_directory("wmx-writers-") as folder:
        yield folder


@pytest.fixture(scope="module")
def edited(scratch) -> Cluster:
    return edited_cluster(scratch / "edited")


@pytest.fixture(scope="module")
def reference_calls(edited, scratch) -> list[str]:
    """The engine calls an undisturbed sync of the edited cluster makes, in order."""
    counting = FaultPlan()
    outcome = sync_embedded(copy_cluster(edited, scratch / "reference"), PAGE, counting)
    assert outcome.status_code == 0
    return counting.calls


# --- lock-step ---------------------------------------------------------------------------------

def edits_before_call(at: int, writers: list[Writer]) -> FaultPlan:
    """A plan that has every writer make one round of edits just before its ``at``-th call
    (or, for a call inside a transaction the engine holds, as soon as it ends)."""
    plan = FaultPlan()
    calls = itertools.count(1)

    def between(_label: str) -> None:
        if next(calls) == at:
            turn(writers)

    plan.between = between
    return plan


@pytest.mark.slow
def test_edits_landing_just_before_any_call_of_a_sync_travel_in_it_or_the_next(
        edited, reference_calls, scratch):
    assert {"parent.apply", "Child1.apply", "Child2.changes", "parent.save_node"} <= set(
        reference_calls)
    assert len(reference_calls) > 30, "the sync should have many pages and checkpoints"
    for at, label in enumerate(reference_calls, start=1):
        cluster = copy_cluster(edited, scratch / f"at-{at}")
        jobs_before = all_job_ids(cluster)
        writers = embedded_writers(cluster, ["parent", "Child1", "Child2"], seed=at)
        plan = edits_before_call(at, writers)
        with writing(writers):
            outcome = sync_embedded(cluster, PAGE, plan)
        where = f"edits just before call {at} ({label}; in this run {plan.calls[at - 1]})"
        assert all(len(w.edits) == EDITS_PER_ROUND for w in writers), where
        assert_succeeded(outcome, where)
        check_after_concurrent_run(cluster, writers, jobs_before,
                                   lambda cluster=cluster: sync_embedded(cluster, PAGE), where)
        shutil.rmtree(cluster.folder)


def test_edits_landing_between_every_two_calls_of_a_sync_travel_in_it_or_the_next(tmp_path,
                                                                                  store):
    cluster = edited_cluster(tmp_path / "cluster", store)
    jobs_before = all_job_ids(cluster)
    writers = embedded_writers(cluster, ["parent", "Child1", "Child2"], seed=1)
    with writing(writers):
        plan = FaultPlan(between=lambda _label: turn(writers, 1))
        outcome = sync_embedded(cluster, EVERY_CALL_PAGE, plan)

    assert len(plan.calls) > 20
    assert all(len(w.edits) == len(plan.calls) for w in writers)
    assert_succeeded(outcome)
    check_after_concurrent_run(cluster, writers, jobs_before,
                               lambda: sync_embedded(cluster, EVERY_CALL_PAGE))


def test_writers_faster_than_the_sync_cannot_keep_it_running(tmp_path, store):
    """Found by the concurrent-writer tests: each phase read its feed until it was empty, so
    writers adding more than a page between two reads kept a sync reading for as long as they
    wrote. A phase now stops at the log head it saw when it began."""
    cluster = edited_cluster(tmp_path / "cluster", store)
    jobs_before = all_job_ids(cluster)
    writers = embedded_writers(cluster, ["parent", "Child1", "Child2"], seed=2)

    def outpace(_label: str) -> None:
        if len(plan.calls) <= CHASE_LIMIT:
            turn(writers, 2)  # up to 4 versions per repository: a page of PAGE is behind

    with writing(writers):
        plan = FaultPlan(between=outpace)
        outcome = sync_embedded(cluster, PAGE, plan)

    # Bounded, this run makes about 270 calls; chasing the writers, about 2,800.
    assert len(plan.calls) < CHASE_LIMIT / 2, "the sync chased the writers"
    assert_succeeded(outcome)
    check_after_concurrent_run(cluster, writers, jobs_before,
                               lambda: sync_embedded(cluster, PAGE))


# --- free-running ------------------------------------------------------------------------------

MIN_OVERLAP = 5
"""Edits each writer must have made entirely while the sync ran (else the run proved nothing)."""


def large_cluster(folder: Path, store: str = "sqlite") -> Cluster:
    """A sync here moves thousands of versions in each direction, ``LARGE_PAGE`` at a time."""
    cluster = fresh_cluster(folder, 2, shared_jobs=3, store=store)
    for name, location, count in [("parent", cluster.parent_path, 1200),
                                  ("Child1", cluster.child_paths["Child1"], 1200),
                                  ("Child2", cluster.child_paths["Child2"], 300)]:
        with open_store(location) as repository:
            bulk_jobs(repository, count, description=f"bulk on {name}", notes_bytes=100)
    return cluster


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Cluster:
    return large_cluster(tmp_path_factory.mktemp("large"))


def sync_in_a_process(cluster: Cluster) -> tuple[float, float]:
    """``guarantees_worker.py`` syncs ``cluster`` in a process of its own, which must end with
    status 0; returns when it ran."""
    process = start_worker("sync", cluster, LARGE_PAGE)
    started = time.monotonic()
    out, err = process.communicate(timeout=300)
    ended = time.monotonic()
    assert process.returncode == 0 and out.split() == ["finished", "0"], (out, err)
    return started, ended


@pytest.mark.slow
@pytest.mark.parametrize("where", ["thread", "process"])
def test_writers_editing_freely_during_a_large_sync_lose_nothing(large, tmp_path, where):
    writing_freely_during_a_large_sync(copy_cluster(large, tmp_path / "cluster"), where)


@pytest.mark.slow
def test_writers_editing_freely_during_a_large_sync_of_a_postgresql_parent_lose_nothing(
        tmp_path, pytestconfig):
    """PostgreSQL writers commit while the sync's own transactions are open (no file lock
    makes them take turns)."""
    from tests.postgres_helpers import session_server

    session_server(pytestconfig)
    cluster = large_cluster(tmp_path / "cluster", "postgresql")
    try:
        writing_freely_during_a_large_sync(cluster, "thread")
    finally:
        discard_cluster(cluster)


def writing_freely_during_a_large_sync(cluster: Cluster, where: str) -> None:
    """Writers on every repository edit freely while one sync of ``cluster`` runs (in this
    process, or in a process of its own); then nothing may be lost."""
    jobs_before = all_job_ids(cluster)
    writers = embedded_writers(cluster, ["parent", "Child1", "Child2"], seed=7)
    with writing(writers, freely=True, pause=0.002):
        time.sleep(0.05)
        if where == "thread":
            started = time.monotonic()
            assert_succeeded(sync_embedded(cluster, LARGE_PAGE))
            ended = time.monotonic()
        else:
            started, ended = sync_in_a_process(cluster)
        time.sleep(0.05)

    overlap = {w.name: w.edits_during(started, ended) for w in writers}
    print(f"{ended - started:.2f} s sync; edits made during it: {overlap}")
    assert min(overlap.values()) >= MIN_OVERLAP, (overlap, ended - started)
    check_after_concurrent_run(cluster, writers, jobs_before,
                               lambda: sync_embedded(cluster, LARGE_PAGE), f"{where} {overlap}")


# --- over HTTP -----------------------------------------------------------------------------------

SERVED = ("parent", "Child1")
"""Repositories behind a real server in the HTTP tests (Child2 stays an embedded file)."""


@contextlib.contextmanager
def served(cluster: Cluster) -> Iterator[dict[str, str]]:
    """Every repository's location, the :data:`SERVED` ones as URLs of real servers
    (127.0.0.1, port 0) running in this process."""
    locations = {name: str(path) for name, path in named_paths(cluster)}
    with contextlib.ExitStack() as stack:
        for name in SERVED:
            locations[name] = stack.enter_context(ServerThread(locations[name])).url
        yield locations


def open_as_admin(location: str) -> Repository:
    return open_repository(location, user=ADMIN)


def http_writers(cluster: Cluster, locations: dict[str, str], seed: int) -> list[Writer]:
    """Like :func:`embedded_writers`, but a served repository's writer posts to Esri's REST
    endpoints (``jobs/create``, ``jobs/{id}/update``, ``holds/create``, ``notes/update``...)."""
    with cluster.parent() as parent:
        shared = parent.jobs()
    return [Writer(name, open_as_admin(locations[name]), shared[index:index + 1],
                   seed * 100 + index) for index, name in enumerate(locations)]


def sync_http(locations: dict[str, str], page_size: int, plan: Optional[FaultPlan] = None
              ) -> RunOutcome:
    targets = [ChildTarget(name, url) for name, url in locations.items() if name != "parent"]
    opener = open_as_admin
    if plan is not None:
        labels = {url: name for name, url in locations.items()}

        def opener(location: str) -> Repository:
            return FaultyRepository(open_as_admin(location), plan, labels[location])
    with contextlib.closing(opener(locations["parent"])) as parent:
        return synchronize(parent, targets, opener, page_size=page_size)


@pytest.mark.http
def test_edits_posted_to_servers_between_every_two_calls_of_a_sync_travel(tmp_path, store):
    cluster = edited_cluster(tmp_path / "cluster", store)
    jobs_before = all_job_ids(cluster)
    with served(cluster) as locations:
        writers = http_writers(cluster, locations, seed=3)
        with writing(writers):
            plan = FaultPlan(between=lambda _label: turn(writers, 1))
            outcome = sync_http(locations, EVERY_CALL_PAGE, plan)

        assert {"parent.changes", "Child1.apply", "Child2.apply"} <= set(plan.calls)
        assert all(len(w.edits) == len(plan.calls) for w in writers)
        assert_succeeded(outcome)
        check_after_concurrent_run(cluster, writers, jobs_before,
                                   lambda: sync_http(locations, EVERY_CALL_PAGE))


@pytest.mark.http
@pytest.mark.slow
def test_the_sync_tool_over_http_loses_nothing_posted_while_it_runs(large, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("WMX_USER", ADMIN)
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    cluster = copy_cluster(large, tmp_path / "cluster")
    jobs_before = all_job_ids(cluster)
    with served(cluster) as locations:
        table = ";".join(f"{name} true {url}" for name, url in locations.items()
                         if name != "parent")
        writers = http_writers(cluster, locations, seed=5)
        with writing(writers, freely=True, pause=0.002):
            time.sleep(0.05)
            started = time.monotonic()
            result = arcpy.SynchronizeJobData_wmx(locations["parent"], "Parent", table)
            ended = time.monotonic()
            time.sleep(0.05)

        assert result.getOutput(0) == "0", result.getMessages()
        overlap = {w.name: w.edits_during(started, ended) for w in writers}
        print(f"{ended - started:.2f} s sync; edits made during it: {overlap}")
        assert min(overlap.values()) >= MIN_OVERLAP, (overlap, ended - started)
        check_after_concurrent_run(cluster, writers, jobs_before,
                                   lambda: sync_http(locations, LARGE_PAGE), str(overlap))


# --- an edit racing the push of the same element ------------------------------------------------

def _sync_with_an_edit_before_the_push(cluster: Cluster, job_id: int,
                                       policy: ConflictPolicy) -> RunOutcome:
    """Sync Child1, its user editing ``job_id`` on Child1 after the pull, just before the
    first page of the push reaches it."""
    def edit_before_the_push(label: str) -> None:
        if label == "Child1.apply" and not edited:
            edited.append(label)
            with cluster.child("Child1") as child:
                child.update_job(job_id, user=ADMIN, description="child's edit during the sync")

    edited: list[str] = []
    plan = FaultPlan(between=edit_before_the_push)
    with FaultyRepository(cluster.parent(), plan, "parent") as parent:
        outcome = synchronize(
            parent, cluster.targets(["Child1"]),
            lambda location: FaultyRepository(open_store(location), plan, "Child1"),
            policy=policy)
    assert edited, "the push never reached the child"
    return outcome


@pytest.mark.parametrize("policy", [ConflictPolicy.NEWEST, ConflictPolicy.PARENT])
def test_a_child_edit_racing_the_push_of_the_same_job_is_a_logged_conflict(tmp_path, store,
                                                                           policy):
    """Found in review of the concurrent-writer tests: a child's edit made after its pull and
    before the push that delivered the parent's concurrent version of the same job was decided
    at the child, unseen: no conflict was logged (the parent's version, or the child's, was
    lost without a trace) and ``policy=parent`` did not make the parent's version win."""
    cluster = make_cluster(tmp_path, 1, store=store)
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    assert cluster.sync().status_code == 0
    with cluster.parent() as parent:
        parent.update_job(job.id, user=ADMIN, description="parent's edit")

    outcome = _sync_with_an_edit_before_the_push(cluster, job.id, policy)

    assert outcome.status_code == 0
    assert len(outcome.children[0].pulled.conflicts) == 1
    expected = {ConflictPolicy.NEWEST: "child's edit during the sync",
                ConflictPolicy.PARENT: "parent's edit"}[policy]
    losing = {"child's edit during the sync", "parent's edit"} - {expected}
    with cluster.parent() as parent:
        (conflict,) = parent.conflicts()
        assert codec.loads(conflict.loser_body)["description"] in losing
    assert cluster.sync(policy=policy).status_code == 0
    cluster.assert_converged()
    with cluster.child("Child1") as child:
        assert child.get_job(job.id).description == expected
