"""Convergence: whatever is edited wherever, in any interleaving with Replicate and Synchronize
runs over any subsets and orders of children, one final sync leaves every repository identical
to the parent (tombstones included), and every element holds the version that must survive.

The version that must survive an element is the last writer by the precedence order (hybrid
clock, ties to the parent, then node id) among the versions that were not discarded. A version
is discarded only when it existed nowhere but in a repository restored from an older backup
(Replicate consolidates a child's unsynchronized edits before it replaces the child). Renames
(Esri's ``_1`` rule), id renumbering and policy re-stamps are new versions written by the
parent, observed like any other.

Scripts also do what administrators do: take file backups of repositories and restore them
(a version that then exists nowhere is legitimately gone; everything any repository holds
must survive), name children another way, and list the parent as its own child (refused,
nothing written).

The default run explores 200 generated scripts; ``WMX_LONG=1`` explores thousands. A second
profile runs the same scripts with every repository behind a real server, so that replicate and
sync speak only HTTP and job edits go through Esri's REST endpoints (40 scripts by default, a
thousand with ``WMX_LONG=1``). A third runs them with the parent and every second child in
PostgreSQL schemas, the other children in files (50 scripts by default, a thousand with
``WMX_LONG=1``; backups there are schema copies).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests import postgres_helpers
from tests.conftest import ADMIN, Location, is_postgres
from tests.guarantees_helpers import (
    HOUR,
    Ledger,
    assert_checkpoints_behind_durable_data,
    discard_cluster,
    fresh_cluster,
    guarantee_settings,
    named_paths,
    overwrite_repository,
    scratch_folder,
    skewed_clock,
)
from wmx.engine.cluster import Opener
from wmx.engine.identity import SameRepository
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.model import codec
from wmx.model.changes import ConflictPolicy
from wmx.model.records import ActivityType, HoldType, JobType, User
from wmx.repository import open_repository
from wmx.repository.base import InvalidRequest, Repository
from wmx.repository.embedded import EmbeddedRepository, embedded_path
from wmx.server.run import ServerThread

CONFIG_TYPES = {"job type": JobType, "hold type": HoldType, "user": User}
SHARED_NAMES = ("Survey", "alice")
"""A small pool, so the same name is created on different repositories (Esri's ``_1`` rule)."""

picks = st.integers(min_value=0, max_value=10 ** 6)
places = st.integers(min_value=0, max_value=5)
words = st.text(max_size=6)
offsets = st.sampled_from([-5 * HOUR, -HOUR, 0.0, HOUR, 5 * HOUR])
clock_settings = st.tuples(st.sampled_from(["real", "frozen", "skewed"]),
                           st.lists(offsets, min_size=6, max_size=6))
"""Machines' wall clocks: all true; all frozen in the past (pure logical clocks, so stamps
tie often and the tie-break to the parent is exercised); or hours apart."""
orders = st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=5, unique=True)


def frozen_clock() -> float:
    """A wall clock stopped long ago: every stamp comes from the logical counter."""
    return 0.0


def _pick(items: list, index: int):
    return items[index % len(items)] if items else None


class ReplicationScripts(RuleBasedStateMachine):
    """Random edits on random repositories, interleaved with replicate and sync runs."""

    KEPT_USERS: frozenset[str] = frozenset()
    """Users no script deletes (over HTTP: the one every request acts as; deleting it locks the
    runs out of the repository, as it would lock Esri's tools out)."""
    STORE = "sqlite"
    """Where the cluster is (:func:`tests.conftest.make_cluster`)."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="wmx-converge-", dir=scratch_folder()))
        self.cluster = None
        self.ledger: Optional[Ledger] = None
        self.backups: dict[str, Location] = {}

    # --- set-up and helpers ---------------------------------------------------------------------

    @initialize(children=st.integers(min_value=1, max_value=5), clocks=clock_settings)
    def build_cluster(self, children: int, clocks: tuple[str, list[float]]) -> None:
        self.cluster = fresh_cluster(self.root / "cluster", children, shared_jobs=3,
                                     store=self.STORE)
        self.children = list(self.cluster.child_paths)
        self.ledger = Ledger(self.cluster)
        mode, offsets = clocks
        event(f"clocks: {mode}")
        self.walls: dict[str, Callable[[], float]] = {}
        for (_place, location), offset in zip(named_paths(self.cluster), offsets):
            if mode == "frozen":
                self.walls[self._machine(str(location))] = frozen_clock
            elif mode == "skewed":
                self.walls[self._machine(str(location))] = skewed_clock(offset)

    def _place(self, index: int) -> str:
        everyone = ["parent", *self.children]
        return everyone[index % len(everyone)]

    def _open(self, place: str) -> EmbeddedRepository:
        """A direct connection to the file of ``place`` (also beside a server)."""
        return self._opener(str(self._path(place)))

    def _opener(self, location: str) -> Repository:
        """Opens a repository with the wall clock of its machine (as a script or sync would)."""
        wall = self.walls.get(self._machine(location))
        if is_postgres(location):
            return open_repository(location, wall_clock=wall)
        return EmbeddedRepository(location, wall_clock=wall)

    @staticmethod
    def _machine(location: str) -> str:
        """The repository a location names, however it is spelled (its wall clock's key)."""
        if is_postgres(location):
            return postgres_helpers.schema_of(location)
        return str(embedded_path(location))

    def _order(self, indexes: list[int]) -> list[str]:
        order: list[str] = []
        for index in indexes:
            name = self.children[index % len(self.children)]
            if name not in order:
                order.append(name)
        return order

    def _edit(self, place: str, edit, *, config: bool = False) -> None:
        """Run ``edit`` on a connection to ``place`` (:meth:`_editor`'s, or a direct one for
        ``config`` edits: Esri's REST has no endpoints that write configuration)."""
        opened = self._open(place) if config else self._editor(place)
        # InvalidRequest: refused locally (e.g. a name in use), so no version was written.
        with opened as repository, contextlib.suppress(InvalidRequest):
            edit(repository)
        self.ledger.observe()

    def _editor(self, place: str) -> Repository:
        """The connection job edits on ``place`` are made through."""
        return self._open(place)

    def _path(self, place: str) -> Location:
        return self.cluster.parent_path if place == "parent" else self.cluster.child_paths[place]

    def _location(self, place: str) -> str:
        """Where a run finds ``place``."""
        return str(self._path(place))

    @staticmethod
    def _alias(location: str) -> str:
        """Another spelling of one location."""
        if is_postgres(location):
            return "postgres://" + location.split("://", 1)[1]
        return f"sqlite:///{location}"

    def _engine(self, names: list[str], *, aliased: bool = False
                ) -> tuple[Repository, list[ChildTarget], Opener]:
        """What a replicate or sync run of ``names`` is given: the parent, the children's
        targets and the opener of children."""
        spell = self._alias if aliased else str
        targets = [ChildTarget(name, spell(self._location(name))) for name in names]
        return self._open("parent"), targets, self._opener

    def release(self) -> None:
        """Free what an example holds besides its folder: its PostgreSQL schemas, if any."""
        if self.cluster is not None:
            discard_cluster(self.cluster)
        for backup in self.backups.values():
            if is_postgres(backup):
                postgres_helpers.drop_location(str(backup))

    @staticmethod
    def _job(repository: EmbeddedRepository, pick: int) -> Optional[int]:
        return _pick(repository.jobs(), pick)

    # --- edits ----------------------------------------------------------------------------------

    @rule(place=places, job_type=picks, description=words)
    def create_job(self, place, job_type, description):
        def edit(repository):
            job_type_id = _pick([t.id for t in repository.list_config(JobType)], job_type)
            if job_type_id is not None:
                repository.create_job(job_type_id, user=ADMIN, description=description)
        self._edit(self._place(place), edit)

    @rule(place=places, job_type=picks, description=words)
    def create_another_job(self, place, job_type, description):
        """(Creating jobs twice as often as other edits keeps most edits meaningful.)"""
        self.create_job(place, job_type, description)

    @rule(place=places, job=picks, description=words)
    def update_job(self, place, job, description):
        def edit(repository):
            job_id = self._job(repository, job)
            if job_id is not None:
                repository.update_job(job_id, user=ADMIN, description=description)
        self._edit(self._place(place), edit)

    @rule(place=places, job=picks)
    def delete_job(self, place, job):
        def edit(repository):
            job_id = self._job(repository, job)
            if job_id is not None:
                repository.delete_job(job_id, user=ADMIN)
        self._edit(self._place(place), edit)

    @rule(place=places, job=picks, hold_type=picks, comments=words)
    def create_hold(self, place, job, hold_type, comments):
        def edit(repository):
            job_id = self._job(repository, job)
            type_id = _pick([t.id for t in repository.list_config(HoldType)], hold_type)
            if job_id is not None and type_id is not None:
                repository.create_hold(job_id, type_id, user=ADMIN, comments=comments)
        self._edit(self._place(place), edit)

    @rule(place=places, job=picks, hold=picks, comments=words)
    def release_hold(self, place, job, hold, comments):
        def edit(repository):
            job_id = self._job(repository, job)
            if job_id is None:
                return
            held = [h.id for h in repository.holds(job_id) if h.release_date is None]
            hold_id = _pick(held, hold)
            if hold_id is not None:
                repository.release_hold(job_id, hold_id, user=ADMIN, comments=comments)
        self._edit(self._place(place), edit)

    @rule(place=places, job=picks, notes=words)
    def set_notes(self, place, job, notes):
        def edit(repository):
            job_id = self._job(repository, job)
            if job_id is not None:
                repository.set_notes(job_id, notes, user=ADMIN)
        self._edit(self._place(place), edit)

    @rule(place=places, job=picks, activity_type=picks, comments=words)
    def log_action(self, place, job, activity_type, comments):
        def edit(repository):
            job_id = self._job(repository, job)
            type_id = _pick([t.id for t in repository.list_config(ActivityType)], activity_type)
            if job_id is not None and type_id is not None:
                repository.log_action(job_id, type_id, user=ADMIN, comments=comments)
        self._edit(self._place(place), edit)

    @rule(place=places, job=picks, content=st.binary(max_size=64))
    def add_attachment(self, place, job, content):
        def edit(repository):
            job_id = self._job(repository, job)
            if job_id is not None:
                repository.add_attachment(job_id, "file.bin", content, user=ADMIN)
        self._edit(self._place(place), edit)

    @rule(place=places, kind=st.sampled_from(sorted(CONFIG_TYPES)),
          name=st.sampled_from(SHARED_NAMES))
    def create_config(self, place, kind, name):
        record_type = CONFIG_TYPES[kind]
        if record_type is User:
            record = User(user_name=name, full_name=f"{name} on {self._place(place)}")
        else:
            record = record_type(id=None, name=name, description=f"made on {self._place(place)}")
        self._edit(self._place(place), lambda repository: repository.create_config(record),
                   config=True)

    @rule(place=places, kind=st.sampled_from(sorted(CONFIG_TYPES)),
          name=st.sampled_from(SHARED_NAMES))
    def create_config_again(self, place, kind, name):
        """(Twice as often, so that same-name creations on two repositories are common.)"""
        self.create_config(place, kind, name)

    @rule(place=places, kind=st.sampled_from(sorted(CONFIG_TYPES)), pick=picks, text=words)
    def update_config(self, place, kind, pick, text):
        record_type = CONFIG_TYPES[kind]

        def edit(repository):
            record = _pick(repository.list_config(record_type), pick)
            if record is None:
                return
            key = record.user_name if record_type is User else record.id
            field = "full_name" if record_type is User else "description"
            repository.update_config(record_type, key, **{field: text})
        self._edit(self._place(place), edit, config=True)

    @rule(place=places, kind=st.sampled_from(sorted(CONFIG_TYPES)), pick=picks)
    def delete_config(self, place, kind, pick):
        record_type = CONFIG_TYPES[kind]

        def edit(repository):
            records = [r for r in repository.list_config(record_type)
                       if not (record_type is User and r.user_name in self.KEPT_USERS)]
            record = _pick(records, pick)
            if record is not None:
                key = record.user_name if record_type is User else record.id
                repository.delete_config(record_type, key)
        self._edit(self._place(place), edit, config=True)

    # --- replication runs -----------------------------------------------------------------------

    @rule(order=orders)
    def replicate_children(self, order):
        names = self._order(order)
        parent, targets, opener = self._engine(names)
        with parent:
            outcome = replicate(parent, targets, opener)
        assert outcome.status_code == 0, [c.error for c in outcome.children]
        for name in names:  # a replica's unsynchronized edits are consolidated first
            self.ledger.synced(name)
        self.ledger.observe()

    # --- what administrators do -----------------------------------------------------------------

    RESTORES = True
    """Whether scripts restore backups (not under running servers: a server keeps its file
    open, and an administrator stops it before putting a backup in place)."""

    @rule(place=places)
    def back_up(self, place):
        """A file copy of a closed repository, as a nightly backup job takes it (for a
        PostgreSQL schema: a copy of it in another schema, as a restored dump would be)."""
        if self.RESTORES:
            name = self._place(place)
            location = self._path(name)
            if name not in self.backups:
                self.backups[name] = (postgres_helpers.new_location("bk")
                                      if is_postgres(location) else self.root / f"{name}.backup")
            overwrite_repository(location, self.backups[name])

    @rule(place=places)
    def restore_backup(self, place):
        """The repository is put back from its latest backup (a disk failed, an upgrade went
        wrong): what existed only there since the backup is gone; nothing else may be."""
        name = self._place(place)
        if not (self.RESTORES and name in self.backups):
            return
        overwrite_repository(self.backups[name], self._path(name))
        self.ledger.restored()
        event(f"restored the {'parent' if name == 'parent' else 'child'} from a backup")

    @rule(order=orders)
    def sync_children_under_other_names(self, order):
        """The same children, spelled another way (``sqlite:///…``, ``localhost``)."""
        self._sync(self._order(order), aliased=True)

    @rule()
    def sync_the_parent_as_its_own_child(self):
        """A careless value table: the parent, under another spelling, as a child."""
        parent, _targets, opener = self._engine([])
        seqs = self.cluster.seqs()
        with parent, pytest.raises(SameRepository):
            synchronize(parent, [ChildTarget("Self", self._alias(self._location("parent")))],
                        opener)
        assert self.cluster.seqs() == seqs, "a refused run wrote something"

    @rule(order=orders, policy=st.sampled_from(ConflictPolicy))
    def sync_children(self, order, policy):
        names = self._order(order)
        self._sync(names, policy)

    @rule(order=orders)
    def sync_children_again(self, order):
        """(Syncing twice as often keeps conflicts and renames frequent.)"""
        self._sync(self._order(order))

    def _sync(self, names: list[str], policy: ConflictPolicy = ConflictPolicy.NEWEST, *,
              aliased: bool = False) -> None:
        parent, targets, opener = self._engine(names, aliased=aliased)
        with parent:
            outcome = synchronize(parent, targets, opener, policy=policy)
        assert outcome.status_code == 0, [c.error for c in outcome.children]
        if outcome.conflicts:
            event(f"conflicts ({policy.value})")
        if any(c.pulled.renamed for c in outcome.children):
            event("renamed with _1")
        for name in names:
            self.ledger.synced(name)
        self.ledger.observe()

    @precondition(lambda self: self.cluster is not None)
    @invariant()
    def checkpoints_never_run_ahead_of_data(self):
        assert_checkpoints_behind_durable_data(self.cluster)

    # --- the guarantee --------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if self.cluster is not None:
                self.check_final_sync_converges()
        finally:
            self.release()
            shutil.rmtree(self.root, ignore_errors=True)

    def check_final_sync_converges(self) -> None:
        self._sync(self.children)
        states = self.cluster.states()
        parent_rows = states.pop("parent")
        for name, rows in states.items():
            assert rows == parent_rows, f"{name} differs from the parent after one full sync"
        self.ledger.assert_survivors(parent_rows)
        self.check_configuration_names_are_unique(parent_rows)
        self.check_jobs_as_esri_sees_them()
        seqs = self.cluster.seqs()
        self._sync(self.children)
        assert self.cluster.seqs() == seqs, "a sync with nothing new wrote something"

    @staticmethod
    def check_configuration_names_are_unique(rows: list[tuple]) -> None:
        live = [(kind, name) for _g, kind, _i, _j, name, _b, _c, _h, _o, deleted in rows
                if name is not None and not deleted]
        assert len(live) == len(set(live)), "two live configuration elements share a name"

    def check_jobs_as_esri_sees_them(self) -> None:
        survivors = self.ledger.survivors()
        jobs = {guid: v for guid, v in survivors.items() if v.kind == "job"}
        live = {guid: codec.loads(v.body) for guid, v in jobs.items() if not v.deleted}
        for place in ["parent", *self.children]:
            with self._open(place) as repository:
                assert sorted(repository.jobs()) == sorted(body["id"] for body in live.values())
                for guid, body in live.items():
                    job = repository.get_job(body["id"])
                    assert job.guid == guid
                    assert job.description == body["description"]
                    assert job.description in self.ledger.written_values(guid, "description")


def test_every_script_of_edits_and_runs_converges_to_the_surviving_versions():
    run_state_machine_as_test(ReplicationScripts, settings=guarantee_settings())


class ReplicationScriptsOnPostgres(ReplicationScripts):
    """The same scripts with the parent and every second child in schemas of the session's
    PostgreSQL server (the other children in files): the same guarantees (SPEC §2.7)."""

    STORE = "postgresql"


def test_every_script_converges_with_a_postgresql_parent_and_mixed_children(pytestconfig):
    postgres_helpers.session_server(pytestconfig)
    run_state_machine_as_test(ReplicationScriptsOnPostgres,
                              settings=guarantee_settings(store="postgresql"))


class ReplicationScriptsOverHttp(ReplicationScripts):
    """The same scripts with every repository behind a real server (in this process, on
    127.0.0.1, port 0, serving that machine's repository with that machine's wall clock):
    replicate and sync reach the parent and the children over HTTP only, and job edits are
    posted to Esri's REST endpoints (``jobs/create``, ``jobs/{id}/update``, holds, notes,
    activity, attachments). Configuration edits, which Esri's REST cannot make, are made on
    the files directly, beside the servers. An example's servers start when it first needs
    them and stop at its end."""

    KEPT_USERS = frozenset({ADMIN})

    def __init__(self) -> None:
        super().__init__()
        self.servers: dict[str, ServerThread] = {}
        self.stores: list[EmbeddedRepository] = []

    def _url(self, place: str) -> str:
        if not self.servers:
            for name, path in named_paths(self.cluster):
                store = self._opener(str(path))
                self.stores.append(store)
                self.servers[name] = ServerThread(store).start()
        return self.servers[place].url

    @staticmethod
    def _open_service(location: str) -> Repository:
        return open_repository(location, user=ADMIN)

    def _editor(self, place: str) -> Repository:
        return self._open_service(self._url(place))

    RESTORES = False

    def _location(self, place: str) -> str:
        return self._url(place)

    @staticmethod
    def _alias(location: str) -> str:
        return location.replace("127.0.0.1", "localhost")

    def _engine(self, names: list[str], *, aliased: bool = False
                ) -> tuple[Repository, list[ChildTarget], Opener]:
        spell = self._alias if aliased else str
        targets = [ChildTarget(name, spell(self._url(name))) for name in names]
        return self._open_service(self._url("parent")), targets, self._open_service

    def release(self) -> None:
        for server in self.servers.values():
            server.stop()
        for store in self.stores:
            store.close()
        self.servers, self.stores = {}, []


@pytest.mark.http
@pytest.mark.slow
def test_every_script_converges_when_every_repository_is_served_over_http():
    run_state_machine_as_test(ReplicationScriptsOverHttp, settings=guarantee_settings(http=True))
