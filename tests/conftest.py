"""Shared helpers: clusters of real repositories (embedded files in a temporary folder, or
PostgreSQL schemas of the session's test server), opened by location as a script would."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Union

import attrs
import pytest

from wmx.engine.outcome import ChildTarget, RunOutcome
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.model.changes import ConflictPolicy
from wmx.remote import forget_servers
from wmx.repository import open_repository, open_store
from wmx.repository.jobs import ServedRepository
from wmx.repository.setup import initialise

ADMIN = "tester"
STORES = ("sqlite", "postgresql")

Location = Union[Path, str]
"""Where a cluster's repository is: a file path (embedded) or a ``postgresql://…?schema=``
location."""


def is_postgres(location: Location) -> bool:
    return isinstance(location, str) and location.lower().startswith("postgres")


_READING: list[Cluster] = []
"""Clusters holding PostgreSQL connections for inspections (closed by :func:`close_readers`)."""


def close_readers() -> None:
    """Close every connection :meth:`Cluster.reader` kept open (at the end of a test)."""
    while _READING:
        _READING.pop().close()


@attrs.define
class Cluster:
    """A parent and named children (files, PostgreSQL schemas or a mix), opened on demand like
    a script would. ``parent_path`` and ``child_paths`` are locations (paths for files)."""

    folder: Path
    parent_path: Location
    child_paths: dict[str, Location]
    _readers: dict[str, ServedRepository] = attrs.field(factory=dict, init=False, eq=False,
                                                        repr=False)

    def parent(self) -> ServedRepository:
        return open_store(self.parent_path)

    def child(self, name: str) -> ServedRepository:
        return open_store(self.child_paths[name])

    def locations(self) -> list[tuple[str, Location]]:
        """(name, location) of the parent, then of every child."""
        return [("parent", self.parent_path), *self.child_paths.items()]

    @contextlib.contextmanager
    def reader(self, location: Location) -> Iterator[ServedRepository]:
        """A connection for the test's own inspections (rows, log heads, nodes): a new one for
        a file, as before; for a PostgreSQL schema one kept open until :meth:`close` (opening
        one costs a pool and two logins, some 0.15 s, and a property test inspects after
        every step). Engine runs and edits still open their own."""
        if not is_postgres(location):
            with open_store(location) as repository:
                yield repository
            return
        key = str(location)
        if key not in self._readers:
            if not self._readers:
                _READING.append(self)
            self._readers[key] = open_store(key)
        yield self._readers[key]

    def close(self) -> None:
        """Close the connections :meth:`reader` kept open."""
        for repository in self._readers.values():
            repository.close()
        self._readers.clear()

    def repositories(self) -> list[ServedRepository]:
        return [self.parent(), *(self.child(name) for name in self.child_paths)]

    def targets(self, names: Optional[list[str]] = None) -> list[ChildTarget]:
        names = list(self.child_paths) if names is None else names
        return [ChildTarget(name, str(self.child_paths[name])) for name in names]

    def replicate(self, names: Optional[list[str]] = None) -> RunOutcome:
        with self.parent() as parent:
            return replicate(parent, self.targets(names), open_repository)

    def sync(self, names: Optional[list[str]] = None, *, dry_run: bool = False,
             policy: ConflictPolicy = ConflictPolicy.NEWEST) -> RunOutcome:
        with self.parent() as parent:
            return synchronize(parent, self.targets(names), open_repository, dry_run=dry_run,
                               policy=policy)

    def states(self) -> dict[str, list[tuple]]:
        """Every repository's rows (tombstones included), by repository name."""
        states = {}
        for name, location in self.locations():
            with self.reader(location) as repository:
                states[name] = repository.all_rows()
        return states

    def seqs(self) -> dict[str, int]:
        seqs = {}
        for name, location in self.locations():
            with self.reader(location) as repository:
                seqs[name] = repository.info().seq
        return seqs

    def assert_converged(self) -> None:
        states = self.states()
        parent = states.pop("parent")
        for name, rows in states.items():
            assert rows == parent, f"{name} differs from the parent"


def make_cluster(folder: Path, children: int = 2, *, replicated: bool = True,
                 config: str = "quick", store: str = "sqlite") -> Cluster:
    """A new cluster. ``store="postgresql"`` puts the parent and every second child (Child2,
    Child4…) in fresh schemas of the session's PostgreSQL server (the test asks for the
    ``postgres_server`` fixture), the other children in files: the mix a site has."""
    if store not in STORES:
        raise ValueError(f"store must be one of {', '.join(STORES)}")

    def place(stem: str, index: int) -> Location:
        if store == "postgresql" and index % 2 == 0:
            from tests.postgres_helpers import new_location

            return new_location(stem[:2].lower())
        return folder / f"{stem.lower()}.wmxdb"

    folder.mkdir(parents=True, exist_ok=True)
    parent_path = place("Parent", 0)
    initialise(parent_path, name="Parent", config=config, admin=ADMIN).close()
    child_paths = {}
    for index in range(children):
        name = f"Child{index + 1}"
        child_paths[name] = place(name, index + 1)
        initialise(child_paths[name], name=name, config="minimum", admin=ADMIN).close()
    cluster = Cluster(folder, parent_path, child_paths)
    if replicated:
        outcome = cluster.replicate()
        assert outcome.status_code == 0, [c.error for c in outcome.children]
    return cluster


@pytest.fixture(autouse=True, scope="session")
def _session_state_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The state folder of what module and session fixtures set up (never the user's)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("WMX_STATE_DIR", str(tmp_path_factory.mktemp("wmx-state")))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _state_folder(_session_state_folder: None, tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test (and every process it starts) keeps wmx's state folder in a temporary
    folder of its own, never in the user's data folder, and starts with a process that has
    met no server: over a long run ports are reused, and a mirror or verdict left by an Esri
    double on one port must not decide what a later test's server on that port is."""
    monkeypatch.setenv("WMX_STATE_DIR", str(tmp_path_factory.mktemp("wmx-state")))
    forget_servers()
    yield
    forget_servers()


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return make_cluster(tmp_path)
