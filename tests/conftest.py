"""Shared helpers: clusters of real embedded repositories in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import attrs
import pytest

from wmx.engine.outcome import ChildTarget, RunOutcome
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.model.changes import ConflictPolicy
from wmx.repository import open_repository
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.setup import initialise

ADMIN = "tester"


@attrs.define
class Cluster:
    """A parent and named children on disk, opened on demand like a script would."""

    folder: Path
    parent_path: Path
    child_paths: dict[str, Path]

    def parent(self) -> EmbeddedRepository:
        return EmbeddedRepository(self.parent_path)

    def child(self, name: str) -> EmbeddedRepository:
        return EmbeddedRepository(self.child_paths[name])

    def repositories(self) -> list[EmbeddedRepository]:
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
        for name, path in [("parent", self.parent_path), *self.child_paths.items()]:
            with EmbeddedRepository(path) as repository:
                states[name] = repository.all_rows()
        return states

    def seqs(self) -> dict[str, int]:
        seqs = {}
        for name, path in [("parent", self.parent_path), *self.child_paths.items()]:
            with EmbeddedRepository(path) as repository:
                seqs[name] = repository.info().seq
        return seqs

    def assert_converged(self) -> None:
        states = self.states()
        parent = states.pop("parent")
        for name, rows in states.items():
            assert rows == parent, f"{name} differs from the parent"


def make_cluster(folder: Path, children: int = 2, *, replicated: bool = True,
                 config: str = "quick") -> Cluster:
    parent_path = folder / "parent.wmxdb"
    initialise(parent_path, name="Parent", config=config, admin=ADMIN).close()
    child_paths = {}
    for index in range(children):
        name = f"Child{index + 1}"
        child_paths[name] = folder / f"{name.lower()}.wmxdb"
        initialise(child_paths[name], name=name, config="minimum", admin=ADMIN).close()
    cluster = Cluster(folder, parent_path, child_paths)
    if replicated:
        outcome = cluster.replicate()
        assert outcome.status_code == 0, [c.error for c in outcome.children]
    return cluster


@pytest.fixture(autouse=True, scope="session")
def _state_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test (and every process it starts) keeps wmx's state folder in a temporary
    folder, never in the user's own data folder."""
    patch = pytest.MonkeyPatch()
    patch.setenv("WMX_STATE_DIR", str(tmp_path_factory.mktemp("wmx-state")))
    yield
    patch.undo()


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return make_cluster(tmp_path)
