"""Machinery shared by the replication-guarantee tests (``tests/test_guarantees_*.py``).

* hypothesis profiles: ``wmx-guarantees`` (the default, CI-sized run) and
  ``wmx-guarantees-long`` (selected with the environment variable ``WMX_LONG=1``), and the
  same pair for tests whose repositories are behind real servers (``-http``, fewer examples);
* clusters copied from a per-session template, so a property test can afford hundreds, in
  either store: the ``store`` fixture runs a test once with files and once with a PostgreSQL
  parent (and every second child; :func:`tests.conftest.make_cluster`);
* a ledger of every element version ever observed, which knows the version that must survive;
* the checkpoint invariant (no checkpoint is ever ahead of durable data);
* fault injection: repositories and openers that crash or fail at the N-th call (or let
  other connections edit before each call);
* a sync or replicate in a process of its own (to kill, or to race);
* openers for children whose wall clocks are skewed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import (
    ADMIN,
    STORES,
    Cluster,
    Location,
    close_readers,
    is_postgres,
    make_cluster,
)
from wmx.model.changes import precedence, twin_order
from wmx.repository import open_repository, open_store
from wmx.repository.base import NodeRecord, Repository, RepositoryUnavailable
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.jobs import ServedRepository

# --- hypothesis profiles ---------------------------------------------------------------------

LONG = os.environ.get("WMX_LONG", "").strip() not in ("", "0")

settings.register_profile(
    "wmx-guarantees", max_examples=200, deadline=None, stateful_step_count=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
settings.register_profile(
    "wmx-guarantees-long", max_examples=3000, deadline=None, stateful_step_count=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])

settings.register_profile("wmx-guarantees-http", settings.get_profile("wmx-guarantees"),
                          max_examples=40)
settings.register_profile("wmx-guarantees-postgresql", settings.get_profile("wmx-guarantees"),
                          max_examples=50)
settings.register_profile("wmx-guarantees-postgresql-long",
                          settings.get_profile("wmx-guarantees-long"), max_examples=1000)
"""Profiles of the tests whose parent is in PostgreSQL (every statement a round trip to the
server: 50 examples cost some 60-90 s here)."""
settings.register_profile("wmx-guarantees-http-long",
                          settings.get_profile("wmx-guarantees-long"), max_examples=1000)
"""Profiles of the tests whose repositories are behind real servers: every engine call and
every edit is an HTTP request, so an example costs far more (40 cost some 15-30 s here)."""


def guarantee_settings(*, http: bool = False, store: str = "sqlite",
                       **overrides: Any) -> settings:
    """The guarantee profile for this run (long with ``WMX_LONG=1``; ``http``: the profile of
    tests whose repositories are behind real servers; ``store="postgresql"``: of tests whose
    parent is in PostgreSQL), with overrides."""
    name = "wmx-guarantees-http" if http else "wmx-guarantees"
    if store == "postgresql":
        name = "wmx-guarantees-postgresql"
    profile = settings.get_profile(f"{name}-long" if LONG else name)
    return settings(profile, **overrides)


def scratch_folder() -> Optional[str]:
    """Where property tests put their many short-lived clusters: a RAM disk when there is one
    (durability is not what they test; the crash tests use ordinary folders)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def scratch_directory(prefix: str = "wmx-") -> Iterator[Path]:
    """A temporary folder in :func:`scratch_folder`, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_folder()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- clusters ----------------------------------------------------------------------------------

@pytest.fixture(params=STORES, name="store")
def store_fixture(request: pytest.FixtureRequest) -> Iterator[str]:
    """``store``: which store the test's cluster is in (import it into a test module to run
    each of its tests that ask for ``store`` once per store); ``postgresql`` needs the
    session's server (skipped without one, failed under ``WMX_REQUIRE_POSTGRES=1``)."""
    if request.param == "postgresql":
        from tests.postgres_helpers import session_server

        session_server(request.config)
    yield str(request.param)
    close_readers()


_TEMPLATES: dict[tuple[int, int, str], Cluster] = {}
_TEMPLATE_LOCK = threading.Lock()


def fresh_cluster(folder: Path, children: int, *, shared_jobs: int = 0,
                  store: str = "sqlite") -> Cluster:
    """A replicated parent + ``children`` cluster in ``folder`` (a copy of a template made
    once per session and store; every copy is an independent cluster). ``shared_jobs`` jobs
    (each with a hold and notes) were created on the parent before replicating, so every
    repository starts with them."""
    with _TEMPLATE_LOCK:
        template = _TEMPLATES.get((children, shared_jobs, store))
        if template is None:
            root = Path(tempfile.mkdtemp(prefix=f"wmx-template-{children}-",
                                         dir=scratch_folder()))
            atexit.register(shutil.rmtree, root, True)
            template = make_cluster(root, children, replicated=False, store=store)
            with template.parent() as parent:
                for number in range(shared_jobs):
                    job = parent.create_job(1, user=ADMIN, description=f"shared {number}")
                    parent.create_hold(job.id, 1, user=ADMIN, comments="shared")
                    parent.set_notes(job.id, f"shared notes {number}", user=ADMIN)
            assert template.replicate().status_code == 0
            _TEMPLATES[(children, shared_jobs, store)] = template
    return copy_cluster(template, folder)


def copy_repository(location: Location, folder: Path) -> Location:
    """A copy of a closed repository: a byte copy of a file into ``folder``, or a new schema
    holding what the source schema holds."""
    if is_postgres(location):
        from tests import postgres_helpers

        copy = postgres_helpers.new_location(postgres_helpers.schema_of(str(location))[:2])
        postgres_helpers.copy_repository(str(location), copy)
        return copy
    path = folder / Path(location).name
    shutil.copyfile(location, path)
    return path


def copy_cluster(cluster: Cluster, folder: Path) -> Cluster:
    """Copies of every repository of a closed cluster (:func:`copy_repository`)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Cluster(folder, copy_repository(cluster.parent_path, folder),
                   {name: copy_repository(location, folder)
                    for name, location in cluster.child_paths.items()})


def overwrite_repository(source: Location, target: Location) -> None:
    """Put a closed repository's contents in place of another's: a backup taken, or put back
    (a file's leftover ``-wal``/``-shm`` go, as an administrator copying files removes them)."""
    if is_postgres(source):
        from tests import postgres_helpers

        postgres_helpers.copy_repository(str(source), str(target))
        return
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)


def discard_cluster(cluster: Cluster) -> None:
    """Drop a cluster's PostgreSQL schemas now (a property test makes hundreds of clusters;
    its files go with its folder)."""
    from tests import postgres_helpers

    cluster.close()
    for _name, location in cluster.locations():
        if is_postgres(location):
            postgres_helpers.drop_location(str(location))


def named_paths(cluster: Cluster) -> list[tuple[str, Location]]:
    """(name, location) of every repository of the cluster, the parent first."""
    return cluster.locations()


def node_ids(cluster: Cluster) -> dict[str, str]:
    """Repository name (``parent``, ``Child1``...) → node id."""
    ids = {}
    for name, location in named_paths(cluster):
        with cluster.reader(location) as repository:
            ids[name] = repository.info().node_id
    return ids


def normalized(rows: Iterable[tuple]) -> list[tuple]:
    """Rows without their stamp: what must equal an uninterrupted run's rows (versions the
    parent writes during a run, renames, carry a stamp of that run's moment)."""
    return [row[:7] + row[8:] for row in rows]


# --- the ledger of versions ------------------------------------------------------------------

PENDING, CONSIDERED, DISCARDED = "pending", "considered", "discarded"


@attrs.define
class Version:
    guid: str
    kind: str
    hlc: int
    origin: str
    deleted: bool
    body: Optional[str]
    content: Optional[bytes]
    status: str
    home: str
    """Where the version was first seen (a child name, or ``parent``)."""


class Ledger:
    """Every element version observed anywhere in a cluster, and what became of it.

    A version written on a child is *pending* until a sync pulls that child or a replicate
    replaces it (both consolidate it: it is then *considered* by the parent and wins or loses
    there). A version is *discarded* only when it existed nowhere but in a repository that was
    then restored from an older backup. The version that must survive everywhere is, per
    element, the highest-precedence version that was not discarded.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ids = node_ids(cluster)
        self.names = {node: name for name, node in self.ids.items()}
        self.parent_node = self.ids["parent"]
        self.versions: dict[str, dict[tuple, Version]] = {}
        """By GUID, then by stamp and what the version says (a node put back from a backup
        may give one stamp to two versions: :func:`wmx.model.changes.twin_order`)."""
        self.observe()

    def observe(self) -> None:
        """Record versions that appeared since the last call (call after every operation)."""
        for name, location in named_paths(self.cluster):
            with self.cluster.reader(location) as repository:
                rows = repository.all_rows()
            for guid, kind, _i, _j, _n, body, content, hlc, origin, deleted in rows:
                known = self.versions.setdefault(guid, {})
                key = _version_key(hlc, origin, deleted, body, content)
                if key in known:
                    continue
                from_here = name != "parent" and self.names.get(origin) == name
                known[key] = Version(guid, kind, hlc, origin, bool(deleted), body, content,
                                     PENDING if from_here else CONSIDERED, name)

    def observe_discards(self) -> int:
        """:meth:`observe`, returning how many versions have been discarded so far."""
        self.observe()
        return sum(v.status == DISCARDED for vs in self.versions.values() for v in vs.values())

    def synced(self, child: str) -> None:
        """A sync pulled ``child``: its pending versions reached the parent."""
        self._settle(child, CONSIDERED)

    def restored(self) -> None:
        """A repository was put back from a backup: a version that is now in no repository
        of the cluster is gone (it existed only where the backup was restored); one that is
        somewhere is there to stay, even if an earlier restore had removed it from everywhere
        (a backup can bring it back), and must flow back and survive as usual."""
        present: dict[tuple, set[str]] = {}
        for name, location in named_paths(self.cluster):
            with self.cluster.reader(location) as repository:
                for guid, _k, _i, _j, _n, body, content, hlc, origin, deleted in \
                        repository.all_rows():
                    key = (guid, *_version_key(hlc, origin, deleted, body, content))
                    present.setdefault(key, set()).add(name)
        for guid, versions in self.versions.items():
            for key, version in versions.items():
                origin = version.origin
                places = present.get((guid, *key))
                if places is None:
                    version.status = DISCARDED
                elif version.status == DISCARDED:
                    only_at_home = places == {version.home} and \
                        self.names.get(origin) == version.home != "parent"
                    version.status = PENDING if only_at_home else CONSIDERED

    def _settle(self, child: str, status: str) -> None:
        for versions in self.versions.values():
            for version in versions.values():
                if version.status == PENDING and version.home == child:
                    version.status = status

    def survivor(self, guid: str) -> Optional[Version]:
        candidates = [v for v in self.versions.get(guid, {}).values() if v.status != DISCARDED]
        if not candidates:
            return None
        return max(candidates, key=lambda v: (precedence(v.hlc, v.origin, self.parent_node),
                                              twin_order(v.deleted, v.body, v.content)))

    def survivors(self) -> dict[str, Version]:
        found = {guid: self.survivor(guid) for guid in self.versions}
        return {guid: version for guid, version in found.items() if version is not None}

    def assert_survivors(self, rows: list[tuple]) -> None:
        """``rows`` (one repository's ``all_rows()``) hold exactly the surviving versions."""
        expected = self.survivors()
        actual = {row[0]: row for row in rows}
        missing = sorted(set(expected) - set(actual))
        assert not missing, f"surviving elements missing: {[expected[g] for g in missing]}"
        extra = sorted(set(actual) - set(expected))
        assert not extra, f"discarded or unknown elements present: {extra}"
        for guid, version in expected.items():
            row = actual[guid]
            assert _version_key(*row[7:9], row[9], row[5], row[6]) == \
                _version_key(version.hlc, version.origin, version.deleted, version.body,
                             version.content), (
                f"{version.kind} {guid}: kept {row[8]}@{row[7]} (deleted={row[9]}), "
                f"expected {version.origin}@{version.hlc} (deleted={version.deleted})")

    def written_values(self, guid: str, field: str) -> set[Any]:
        """Every value of a body field written to one element (discarded versions included)."""
        from wmx.model import codec

        return {codec.loads(v.body).get(field) for v in self.versions.get(guid, {}).values()
                if v.body}


# --- the checkpoint invariant -----------------------------------------------------------------

def _log_positions(repository: ServedRepository, since: int) -> set[str]:
    """GUIDs whose current version sits after ``since`` in the repository's change log."""
    return {c.guid for c in repository.changes(since, limit=10 ** 9).changes}


def assert_checkpoints_behind_durable_data(cluster: Cluster) -> None:
    """For every registered child whose checkpoints are current (same incarnation):

    * ``push_seq`` <= the parent's log head and ``pull_seq`` <= the child's log head;
    * every parent version at or before ``push_seq`` that the child did not write is at the
      child with equal or higher precedence;
    * every version the child wrote at or before ``pull_seq`` is at the parent with equal or
      higher precedence.

    Checkpoints of a child whose incarnation changed (replicated, then interrupted before the
    parent recorded it) are reset by the next sync, so they are not checked.
    """
    with cluster.reader(cluster.parent_path) as parent:
        pinfo = parent.info()
        nodes: list[NodeRecord] = [n for n in parent.nodes() if not n.is_parent]
        parent_rows = {row[0]: row for row in parent.all_rows()}
        parent_after = {n.node_id: _log_positions(parent, n.push_seq) for n in nodes}
    by_node = {}
    for name, path in cluster.child_paths.items():
        with cluster.reader(path) as child:
            cinfo = child.info()
            by_node[cinfo.node_id] = (name, cinfo, {row[0]: row for row in child.all_rows()},
                                      child, path)
    for node in nodes:
        if node.node_id not in by_node:
            continue
        name, cinfo, child_rows, _, path = by_node[node.node_id]
        if cinfo.incarnation != node.incarnation:
            continue
        assert node.push_seq <= pinfo.seq, f"{name}: push_seq {node.push_seq} > {pinfo.seq}"
        assert node.pull_seq <= cinfo.seq, f"{name}: pull_seq {node.pull_seq} > {cinfo.seq}"
        after = parent_after[node.node_id]
        for guid, row in parent_rows.items():
            if guid in after or row[8] == node.node_id:
                continue
            mine = child_rows.get(guid)
            assert mine is not None and _prec(mine, pinfo.node_id) >= _prec(row, pinfo.node_id), (
                f"{name}: push checkpoint {node.push_seq} covers {row[1]} {guid} "
                f"({row[8]}@{row[7]}) but the child has {mine and (mine[8], mine[7])}")
        with cluster.reader(path) as child:
            child_after = _log_positions(child, node.pull_seq)
        for guid, row in child_rows.items():
            if guid in child_after or row[8] != node.node_id:
                continue
            theirs = parent_rows.get(guid)
            assert theirs is not None and \
                _prec(theirs, pinfo.node_id) >= _prec(row, pinfo.node_id), (
                    f"{name}: pull checkpoint {node.pull_seq} covers {row[1]} {guid} "
                    f"({row[8]}@{row[7]}) but the parent has {theirs and (theirs[8], theirs[7])}")


def _prec(row: tuple, parent_node: str) -> tuple:
    return precedence(row[7], row[8], parent_node), twin_order(row[9], row[5], row[6])


def _version_key(hlc: int, origin: str, deleted: Any, body: Optional[str],
                 content: Optional[bytes]) -> tuple:
    """A version's identity: its stamp and what it says."""
    return (hlc, origin, *twin_order(deleted, body, content))


# --- fault injection ---------------------------------------------------------------------------

class Crash(BaseException):
    """The process died here (not an error any code may catch and go on from)."""


BOUNDARY_CALLS = frozenset({
    "info", "changes", "apply", "snapshot", "begin_load", "load_rows", "commit_load",
    "abort_load", "nodes", "save_node", "clear_replication_info", "conflicts",
})


@attrs.define
class FaultPlan:
    """Fail the ``at``-th boundary call (1-based) of one run; ``at=0`` only counts.

    ``when='before'``: the call never happens; ``'after'``: it happens (its effect is durable)
    and the caller never hears back. ``kind='crash'`` kills the whole run (every later call
    fails too); ``kind='error'`` is one failed call (a dropped connection) the engine may
    recover from.

    ``between`` (optional) is called with each call's label just before the call is made:
    the concurrent-writer tests use it to let other connections edit between engine calls.
    A call made inside a write transaction the engine holds (a pulled page and its
    checkpoint) is no moment another writer can land at: it would wait for the lock and land
    after the commit, so ``between`` is called for it then.
    """

    at: int = 0
    when: str = "before"
    kind: str = "crash"
    calls: list[str] = attrs.Factory(list)
    dead: bool = False
    fired: Optional[str] = None
    between: Optional[Callable[[str], None]] = None
    open_transactions: int = 0
    waiting: list[str] = attrs.Factory(list)
    """Labels of calls made inside a transaction, whose ``between`` waits for its end."""

    @contextlib.contextmanager
    def transaction(self, opened: contextlib.AbstractContextManager[Any]) -> Iterator[Any]:
        self.open_transactions += 1
        try:
            with opened as tx:
                yield tx
        finally:
            self.open_transactions -= 1
            if not self.open_transactions and self.between is not None:
                waiting, self.waiting = self.waiting, []
                for label in waiting:
                    self.between(label)

    def _fail(self) -> None:
        if self.kind == "crash":
            self.dead = True
            raise Crash(self.fired)
        raise RepositoryUnavailable(f"injected failure at call {self.at} ({self.fired})")

    def call(self, label: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.dead:
            raise Crash("already dead")
        self.calls.append(label)
        if self.between is not None:
            if self.open_transactions:
                self.waiting.append(label)
            else:
                self.between(label)
        hit = len(self.calls) == self.at
        if hit:
            self.fired = f"{self.when} {label}"
            if self.when == "before":
                self._fail()
        result = function(*args, **kwargs)
        if hit:
            self._fail()
        return result


class FaultyRepository:
    """A repository whose protocol calls go through a :class:`FaultPlan`."""

    def __init__(self, inner: Repository, plan: FaultPlan, label: str) -> None:
        self._inner = inner
        self._plan = plan
        self._label = label

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name == "transaction":
            return lambda *args, **kwargs: self._plan.transaction(value(*args, **kwargs))
        if name not in BOUNDARY_CALLS or not callable(value):
            return value
        label = f"{self._label}.{name}"
        return lambda *args, **kwargs: self._plan.call(label, value, *args, **kwargs)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> FaultyRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def faulty_opener(cluster: Cluster, plan: FaultPlan) -> Callable[[str], FaultyRepository]:
    names = {str(path): name for name, path in cluster.child_paths.items()}

    def open_child(location: str) -> FaultyRepository:
        if plan.dead:
            raise Crash("already dead")
        return FaultyRepository(open_store(location), plan, names.get(location, "?"))

    return open_child


# --- clock skew ------------------------------------------------------------------------------

HOUR = 3600.0


def skewed_clock(offset_seconds: float) -> Callable[[], float]:
    import time

    return lambda: time.time() + offset_seconds


def skewed_opener(offsets: dict[str, float]) -> Callable[[str], Repository]:
    """Opens repositories (files or PostgreSQL schemas); those at a location in ``offsets`` get
    a wall clock that is that many seconds ahead (negative: behind)."""
    def open_skewed(location: str) -> Repository:
        offset = offsets.get(str(location))
        if offset is None:
            return open_repository(location)
        return open_repository(location, wall_clock=skewed_clock(offset))

    return open_skewed


class SqlInterrupter:
    """Interrupts SQLite part-way through a statement: the ``at``-th progress tick (one every
    ``every`` virtual-machine instructions, over every attached repository) aborts the
    statement running then, and the process is dead from there on (every later statement is
    aborted too, and the plan's boundary calls crash). ``at=0`` only counts ticks."""

    def __init__(self, plan: FaultPlan, at: int = 0, every: int = 50) -> None:
        self.plan = plan
        self.at = at
        self.every = every
        self.ticks = 0
        self.opened: list[EmbeddedRepository] = []

    def attach(self, repository: EmbeddedRepository) -> EmbeddedRepository:
        self.opened.append(repository)
        repository._db.set_progress_handler(self._tick, self.every)
        return repository

    def _tick(self) -> int:
        if self.plan.dead:
            return 1
        self.ticks += 1
        if self.ticks == self.at:
            self.plan.dead = True
            self.plan.fired = f"SQL interrupted at tick {self.ticks} (after {self.plan.calls[-1:]})"
            return 1
        return 0

    def release(self) -> None:
        """What the operating system does for a dead process: close every connection (SQLite
        rolls back whatever transaction was open)."""
        for repository in self.opened:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed by the engine
                repository._db.set_progress_handler(None, 0)
            repository.close()


# --- a sync or replicate in another process ---------------------------------------------------

WORKER = Path(__file__).with_name("guarantees_worker.py")


def start_worker(mode: str, cluster: Cluster, page_size: int) -> subprocess.Popen:
    """Start ``guarantees_worker.py`` (one ``sync`` or ``replicate`` of ``cluster`` in a process
    of its own) and wait until it has opened the parent and begun."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    children = [f"{name}={path}" for name, path in cluster.child_paths.items()]
    process = subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(cluster.parent_path), str(page_size),
         *children], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    if line.strip() != "started":
        process.kill()
        raise AssertionError(f"worker did not start: {line!r} {process.stderr.read()}")
    return process


# --- bulk data ---------------------------------------------------------------------------------

def bulk_jobs(repository: ServedRepository, count: int, *, description: str,
              notes_bytes: int = 0) -> list[int]:
    """``count`` new jobs (and their notes) written by ``repository`` itself in one
    transaction — as many creations would, only much faster. Returns their ids."""
    import uuid

    from wmx.model import codec
    from wmx.model.changes import Change
    from wmx.model.records import Job, Notes
    from wmx.repository.jobs import notes_guid

    info = repository.info()
    start = max([info.id_block_start - 1, *(i for i in repository.job_ids()
                                           if i >= info.id_block_start)]) + 1
    changes, ids = [], []
    for job_id in range(start, start + count):
        guid = str(uuid.uuid4())
        job = Job(id=job_id, job_type_id=1, name=f"Bulk {job_id}", description=description)
        changes.append(Change(guid=guid, kind="job", hlc=repository.clock.now(),
                              origin=info.node_id, int_id=job_id,
                              body=codec.dumps(job.to_esri())))
        if notes_bytes:
            notes = Notes(job_id=job_id, notes="n" * notes_bytes)
            changes.append(Change(guid=notes_guid(guid), kind="notes",
                                  hlc=repository.clock.now(), origin=info.node_id,
                                  job_guid=guid, body=codec.dumps(notes.to_esri())))
        ids.append(job_id)
    report = repository.apply(changes, parent_node=info.parent_node_id or info.node_id)
    assert report.inserted == len(changes)
    return ids
