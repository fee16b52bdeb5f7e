"""Convergence with a PostgreSQL parent (SPEC §2.7: the same guarantees as embedded
repositories): random edits on a PostgreSQL parent, a PostgreSQL child and an embedded child,
with syncs in random orders in between; once every child has synced twice more, all three
hold the same rows, and every job any of them acknowledged is there once.

A compact property of its own (the guarantee suites' clusters are SQLite files: see the report
of issue 10 for parametrizing them). ``WMX_POSTGRES_EXAMPLES`` sets the number of examples
(6 by default: some 2 s each here). Skipped without PostgreSQL; fails under
``WMX_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import postgres_helpers
from tests.postgres_helpers import PostgresServer, drop_schema
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.engine.synchronize import synchronize
from wmx.repository import InvalidRequest, open_repository
from wmx.repository.setup import initialise

USER = "tester"
EXAMPLES = int(os.environ.get("WMX_POSTGRES_EXAMPLES", "6"))
PLACES = ("parent", "Arizona", "Ohio")
postgres_server = postgres_helpers.postgres_server

edits = st.lists(st.tuples(
    st.sampled_from(["create", "update", "delete", "hold", "sync"]),
    st.sampled_from(PLACES), st.integers(0, 50), st.text(max_size=12)), min_size=1, max_size=12)


@contextlib.contextmanager
def cluster(server: PostgresServer, folder: Path) -> Iterator[dict[str, str]]:
    """A PostgreSQL parent replicated to a PostgreSQL and an embedded child."""
    schemas = [f"cv_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    locations = {"parent": server.location(schemas[0]), "Arizona": server.location(schemas[1]),
                 "Ohio": str(folder / f"ohio-{uuid.uuid4().hex[:8]}.wmxdb")}
    try:
        for place, start in zip(PLACES, (1, 5000, 9000)):
            initialise(locations[place], name=place.capitalize(), config="quick",
                       job_id_start=start, admin=USER).close()
        with open_repository(locations["parent"]) as parent:
            assert replicate(parent, targets(locations), open_repository).status_code == 0
        yield locations
    finally:
        for schema in schemas:
            drop_schema(server, schema)
        Path(locations["Ohio"]).unlink(missing_ok=True)


def targets(locations: dict[str, str], names: tuple[str, ...] = PLACES[1:]
            ) -> list[ChildTarget]:
    return [ChildTarget(name, locations[name]) for name in names]


def edit(repository: Any, action: str, pick: int, text: str) -> None:
    jobs = repository.job_ids()
    job = jobs[pick % len(jobs)] if jobs else None
    with contextlib.suppress(InvalidRequest):
        if action == "create":
            repository.create_job(1 + pick % 3, user=USER, description=text)
        elif job is not None and action == "update":
            repository.update_job(job, user=USER, description=text)
        elif job is not None and action == "delete":
            repository.delete_job(job, user=USER)
        elif job is not None and action == "hold":
            repository.create_hold(job, 1, user=USER, comments=text)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=edits)
def test_a_postgresql_parent_and_its_children_converge_whatever_the_edits_and_syncs(
        postgres_server: PostgresServer, tmp_path: Path,
        script: list[tuple[str, str, int, str]]) -> None:
    with cluster(postgres_server, tmp_path) as locations:
        with open_repository(locations["parent"]) as parent:
            for action, place, pick, text in script:
                if action == "sync":
                    order = PLACES[1:] if pick % 2 else PLACES[:0:-1]
                    assert synchronize(parent, targets(locations, order),
                                       open_repository).status_code == 0
                elif place == "parent":
                    edit(parent, action, pick, text)
                else:
                    with open_repository(locations[place]) as child:
                        edit(child, action, pick, text)
            for _ in range(2):
                assert synchronize(parent, targets(locations), open_repository).status_code == 0
            rows = parent.all_rows()
            ids = parent.job_ids()
        assert len(ids) == len(set(ids))
        for place in PLACES[1:]:
            with open_repository(locations[place]) as child:
                assert child.all_rows() == rows, f"{place} differs from the parent"
