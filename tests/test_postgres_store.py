"""What only a PostgreSQL repository has to prove (SPEC §2.7): concurrent writers from several
connections never let a feed reader skip a late commit, database failures arrive as the
RepositoryError a user can act on, and a password written in the location never shows.

Skipped without a server; fails under ``WMX_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest

from tests import postgres_helpers
from tests.cli_helpers import wmx_here
from tests.postgres_helpers import PostgresServer, _free_port, drop_schema
from wmx.repository import (
    InvalidRequest,
    RepositoryNotFound,
    RepositoryUnavailable,
    open_repository,
)
from wmx.repository.base import RepositoryBusy
from wmx.repository.setup import initialise
from wmx.store.postgres_location import PostgresLocation
from wmx.store.rows import SCHEMA_VERSION

USER = "tester"
postgres_server = postgres_helpers.postgres_server
postgres_location = postgres_helpers.postgres_location


@pytest.fixture
def repository_location(postgres_location: str) -> str:
    initialise(postgres_location, name="Parent", config="quick", admin=USER).close()
    return postgres_location


def test_writers_on_many_connections_never_let_a_feed_reader_skip_a_late_commit(
        repository_location: str) -> None:
    writers = [open_repository(repository_location) for _ in range(4)]
    reader = open_repository(repository_location)
    start = reader.info().seq
    seen: list[str] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def write(repository: object) -> None:
        try:
            for _ in range(12):
                repository.create_job(1, user=USER)  # type: ignore[attr-defined]
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    def read() -> None:
        since = start
        while True:
            finished = done.is_set()
            page = reader.changes(since, limit=5)
            seen.extend(change.guid for change in page.changes)
            since = page.last_seq
            if finished and not page.more:
                return

    threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    follower = threading.Thread(target=read)
    follower.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    follower.join(60)
    assert failures == []
    written = [change.guid for change in reader.changes(start, limit=10_000).changes]
    assert len(written) == 4 * 12 * 2  # each job and its CreateJob history entry
    assert sorted(seen) == sorted(written), "the follower skipped or repeated a change"
    ids = reader.job_ids()
    assert len(ids) == len(set(ids)) == 48
    for repository in (*writers, reader):
        repository.close()


def _waiting_for_the_log_lock(uri: str) -> bool:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as connection:
        row = connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                 " AND NOT granted").fetchone()
    return bool(row and row[0])


def test_a_writer_queued_behind_the_log_lock_numbers_its_write_above_the_holders_commit(
        repository_location: str, postgres_server: PostgresServer) -> None:
    """The lock, the log head and the commit are pipelined: the queued writer's head must
    still be read after the holder's commit, never in the snapshot it queued with."""
    holder, queued = open_repository(repository_location), open_repository(repository_location)
    start = holder.info().seq
    created: list[Any] = []
    with holder.transaction():
        first = holder.create_job(1, user=USER)
        thread = threading.Thread(target=lambda: created.append(
            queued.create_job(1, user=USER)))
        thread.start()
        for _ in range(500):
            if _waiting_for_the_log_lock(postgres_server.uri):
                break
            threading.Event().wait(0.01)
        else:
            pytest.fail("the second writer never queued for the log lock")
    thread.join(30)
    page = holder.changes(start, limit=100)
    jobs = [change.int_id for change in page.changes if change.kind == "job"]
    assert jobs == [first.id, created[0].id] and created[0].id == first.id + 1
    assert len(page.changes) == 4 and page.last_seq == start + 4
    for repository in (holder, queued):
        repository.close()


def test_a_missing_schema_or_database_is_not_found_and_a_closed_port_is_unavailable(
        postgres_server: PostgresServer) -> None:
    with pytest.raises(RepositoryNotFound, match="holds no wmx repository"):
        open_repository(postgres_server.location("no_such_schema"))
    host = postgres_server.uri.rsplit("/", 1)[0]
    with pytest.raises(RepositoryNotFound, match="does not exist"):
        open_repository(f"{host}/no_such_database")
    with pytest.raises(RepositoryUnavailable, match="Cannot reach"):
        open_repository(f"postgresql://wmx@127.0.0.1:{_free_port()}/wmx_test")


def test_a_schema_name_that_is_not_a_plain_name_is_refused_before_connecting(
        postgres_server: PostgresServer) -> None:
    with pytest.raises(InvalidRequest, match="schema="):
        open_repository(postgres_server.location('x"; DROP SCHEMA public; --'))


def test_a_write_that_waits_past_the_timeout_for_the_log_lock_is_busy(
        repository_location: str, postgres_server: PostgresServer) -> None:
    import psycopg

    repository = open_repository(repository_location, timeout=0.5)
    schema = repository_location.rsplit("schema=", 1)[1]
    with psycopg.connect(postgres_server.uri) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x776D78, schema))
        seq = repository.info().seq
        with pytest.raises(RepositoryBusy, match="busy"):
            repository.create_job(1, user=USER)
        holder.rollback()
    assert repository.info().seq == seq
    repository.create_job(1, user=USER)  # the lock is free again: the write goes through
    repository.close()


def test_a_sync_through_every_surface_never_shows_a_password_written_in_the_location(
        postgres_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if postgres_server.password is None:
        pytest.skip("the server's password is not known to the tests")
    secret = postgres_server.password
    schemas = [f"pw_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with_password = postgres_server.uri_with_password()
    parent, child = (f"{with_password}?schema={schema}" for schema in schemas)
    file_child = tmp_path / "ohio.wmxdb"
    monkeypatch.delenv("PGPASSFILE", raising=False)  # the URI's password is the only one
    caplog.set_level(logging.DEBUG)
    try:
        runs = [
            wmx_here("init", parent, "--name", "Redlands", "--config", "quick"),
            wmx_here("init", child, "--name", "Arizona", "--job-id-start", "5000"),
            wmx_here("init", file_child, "--name", "Ohio", "--job-id-start", "9000"),
            wmx_here("replicate", parent, "Redlands",
                     f"Ohio true {file_child};Arizona true {child}"),
            wmx_here("jobs", "create", child, "--type", "1"),
            wmx_here("sync", parent, "Redlands", f"Ohio true {file_child};Arizona true {child}"),
            wmx_here("status", parent),
            wmx_here("sync", f"{with_password}?schema=missing", "Redlands",
                     f"Ohio true {file_child}"),
        ]
        outputs = [run.stdout + run.stderr for run in runs]
        assert [run.returncode for run in runs[:-1]] == [0] * 7, outputs
        assert runs[-1].returncode != 0
        for text in (*outputs, caplog.text):
            assert secret not in text
        assert "Arizona" in outputs[5]
        with open_repository(parent) as repository:
            assert secret not in repr(repository) and secret not in repository.location
    finally:
        monkeypatch.undo()  # the pgpass file again, for the clean-up connection
        for schema in schemas:
            drop_schema(postgres_server, schema)


@pytest.fixture
def no_pgpass() -> Iterator[None]:
    saved = os.environ.pop("PGPASSFILE", None)
    yield
    if saved is not None:
        os.environ["PGPASSFILE"] = saved


def test_a_wrong_password_is_refused_without_echoing_it(
        postgres_server: PostgresServer, no_pgpass: None) -> None:
    scheme, user, host = postgres_server.parts()
    wrong = "Wr0ng-" + uuid.uuid4().hex
    with pytest.raises(RepositoryUnavailable) as refused:
        open_repository(f"{scheme}://{user}:{wrong}@{host}?schema=wmx")
    assert wrong not in str(refused.value) and "password" in str(refused.value)


def test_a_replicate_from_a_parent_edited_while_it_is_copied_succeeds_and_a_sync_converges(
        repository_location: str, tmp_path: Path) -> None:
    from wmx.engine.outcome import ChildTarget
    from wmx.engine.replicate import replicate
    from wmx.engine.synchronize import synchronize
    from wmx.model.records import JobStatus
    from wmx.store.postgres import PostgresRepository

    class EditedWhileCopied(PostgresRepository):
        """A parent a REST client edits between two pages of the replicate's snapshot."""

        def snapshot(self, cursor: int, limit: int) -> Any:
            page = super().snapshot(cursor, limit)
            if cursor == 0:  # an element of the page just read changes
                self.update_config(JobStatus, 1, caption="edited during the copy")
            return page

    with open_repository(repository_location) as setup:
        for _ in range(3):
            setup.create_job(1, user=USER)
    child_path = tmp_path / "ohio.wmxdb"
    initialise(child_path, name="Ohio", job_id_start=5000, admin=USER).close()
    child = [ChildTarget("Ohio", str(child_path))]
    with EditedWhileCopied(repository_location) as parent:
        outcome = replicate(parent, child, open_repository, page_size=10)
        assert outcome.status_code == 0, outcome.children[0].error
        assert synchronize(parent, child, open_repository).status_code == 0
        with open_repository(str(child_path)) as ohio:
            assert ohio.all_rows() == parent.all_rows()
            assert ohio.get_config(JobStatus, 1).caption == "edited during the copy"


def test_a_child_refused_as_the_parent_under_another_spelling_is_named_without_its_password(
        repository_location: str, postgres_server: PostgresServer) -> None:
    if postgres_server.password is None:
        pytest.skip("the server's password is not known to the tests")
    schema = repository_location.rsplit("schema=", 1)[1]
    _scheme, user, host = postgres_server.parts()
    spelled = (f"postgres://{user}:{postgres_server.password}@"
               f"{host.replace('127.0.0.1', 'localhost')}?schema={schema}")
    refused = wmx_here("sync", repository_location, "Parent", f"Self true {spelled}")
    assert refused.returncode != 0 and "000733" in refused.stdout + refused.stderr
    assert postgres_server.password not in refused.stdout + refused.stderr


_KILLED_MID_COPY = """
import os, sys
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.repository import open_repository
from wmx.store.postgres import PostgresRepository

class DiesMidCopy(PostgresRepository):
    pages = 0
    def load_rows(self, load_id, rows):
        super().load_rows(load_id, rows)
        DiesMidCopy.pages += 1
        if DiesMidCopy.pages == 2:
            os._exit(3)  # the power cut: no abort, no clean-up, connections dropped

parent, child = sys.argv[1:3]
opener = lambda location: DiesMidCopy(location) if location == child else open_repository(location)
replicate(open_repository(parent), [ChildTarget("Arizona", child)], opener, page_size=5)
"""


def test_a_replicate_killed_mid_copy_leaves_the_child_as_it_was_and_the_next_one_succeeds(
        repository_location: str, tmp_path: Path, postgres_server: PostgresServer) -> None:
    import subprocess
    import sys

    from wmx.engine.outcome import ChildTarget
    from wmx.engine.replicate import replicate

    parent_path = tmp_path / "redlands.wmxdb"
    initialise(parent_path, name="Redlands", config="quick", admin=USER).close()
    with open_repository(str(parent_path)) as parent:
        parent.create_job(1, user=USER)
    with open_repository(repository_location) as child:
        child.create_job(1, user=USER, description="the child's own")
        before = child.all_rows()
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_COPY, str(parent_path),
                             repository_location], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 3, killed.stderr
    with open_repository(repository_location) as child:
        assert child.all_rows() == before
    with open_repository(str(parent_path)) as parent:
        outcome = replicate(parent, [ChildTarget("Arizona", repository_location)],
                            open_repository)
        assert outcome.status_code == 0, outcome.children[0].error
        with open_repository(repository_location) as child:
            assert child.all_rows() == parent.all_rows()


def test_a_schema_of_the_previous_layout_opens_upgraded_and_finds_its_child_jobs(
        repository_location: str) -> None:
    """Layout 1 computed ``parent_job_id`` in a generated column; layout 2 writes it."""
    import psycopg

    with contextlib.closing(open_repository(repository_location)) as repository:
        top = repository.create_job(1, user=USER)  # type: ignore[attr-defined]
        child = repository.create_job(  # type: ignore[attr-defined]
            1, user=USER, parent_job_id=top.id).id
    where = PostgresLocation.parse(repository_location)
    with psycopg.connect(where.conninfo, autocommit=True) as db:
        db.execute(f'SET search_path TO "{where.schema}"')
        for statement in (
                "ALTER TABLE elements DROP COLUMN parent_job_id",
                "ALTER TABLE elements ADD COLUMN parent_job_id BIGINT GENERATED ALWAYS AS ("
                "CASE WHEN kind = 'job' AND deleted = 0 AND"
                " jsonb_typeof(body::jsonb -> 'parentJobId') = 'number'"
                " THEN (body::jsonb ->> 'parentJobId')::numeric::bigint END) STORED",
                "CREATE INDEX elements_parent_job ON elements (parent_job_id)"
                " WHERE parent_job_id IS NOT NULL",
                "UPDATE meta SET value = '1' WHERE key = 'schema_version'"):
            db.execute(statement)
    with contextlib.closing(open_repository(repository_location)) as upgraded:
        assert upgraded.child_job_ids(top.id) == [child]  # type: ignore[attr-defined]
        later = upgraded.create_job(  # type: ignore[attr-defined]
            1, user=USER, parent_job_id=top.id).id
        assert upgraded.child_job_ids(top.id) == [child, later]  # type: ignore[attr-defined]
    with psycopg.connect(where.conninfo, autocommit=True) as db:
        db.execute(f'SET search_path TO "{where.schema}"')
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                          ).fetchone() == (SCHEMA_VERSION,)


# --- creating a job takes the log lock only for its commit ------------------------------------
# A job id is handed out for good in a short locked statement of its own, and the job's versions
# are numbered in the commit: another process's writes go on meanwhile. What a writer read, or
# assumed, before it held the lock must still hold when it commits.


@attrs.define
class PausedCreate:
    """A ``create_job`` in a thread of its own, held just before its commit."""

    job_id: int
    errors: list[BaseException]


@contextlib.contextmanager
def create_paused_before_its_commit(repository: Any, **fields: Any) -> Iterator[PausedCreate]:
    """Runs ``repository.create_job`` in another thread and yields once it is about to
    commit (its id handed out, its versions not written); it commits when the block ends."""
    from wmx.store import postgres

    reached, go = threading.Event(), threading.Event()
    handed: list[int] = []
    errors: list[BaseException] = []
    original_commit = postgres._Transaction.commit
    original_next_int_id = repository.next_int_id

    def commit(tx: Any, clock: int) -> None:
        if threading.current_thread() is creator:
            reached.set()
            go.wait(60)
        original_commit(tx, clock)

    def next_int_id(tx: Any, kind: str) -> int:
        handed.append(original_next_int_id(tx, kind))
        return handed[-1]

    def create() -> None:
        try:
            repository.create_job(1, user=USER, **fields)
        except BaseException as exc:  # the test reads it
            errors.append(exc)
        finally:
            reached.set()

    creator = threading.Thread(target=create)
    with mock.patch.object(postgres._Transaction, "commit", commit), \
            mock.patch.object(repository, "next_int_id", next_int_id):
        creator.start()
        assert reached.wait(60) and not errors, errors
        try:
            yield PausedCreate(handed[-1], errors)
        finally:
            go.set()
            creator.join(60)


def test_a_job_id_handed_to_a_create_not_yet_committed_is_taken_for_the_job_a_sync_brings(
        postgres_server: PostgresServer) -> None:
    """A parent restored from a backup hands out again the id of a job created after the
    backup; its child still holds that job, and a sync (another process) brings it back while
    the new job is being created. Two live jobs with one id would be the result if the sync
    took the id for free because the create had not committed."""
    from tests.guarantees_helpers import overwrite_repository
    from wmx.engine.outcome import ChildTarget
    from wmx.engine.replicate import replicate
    from wmx.engine.synchronize import synchronize

    parent_location = postgres_helpers.new_location("restored")
    child_location = postgres_helpers.new_location("child")
    backup = postgres_helpers.new_location("backup")
    initialise(parent_location, name="Parent", config="quick", admin=USER).close()
    initialise(child_location, name="Child", config="quick", admin=USER,
               job_id_start=1000).close()
    child = [ChildTarget("Child", child_location)]
    with open_repository(parent_location) as parent:
        assert replicate(parent, child, open_repository).status_code == 0
    overwrite_repository(parent_location, backup)
    with open_repository(parent_location) as parent:
        lost = parent.create_job(1, user=USER, description="made after the backup")
        assert synchronize(parent, child, open_repository).status_code == 0
    overwrite_repository(backup, parent_location)
    with open_repository(parent_location) as parent, \
            open_repository(parent_location) as other_process:
        with create_paused_before_its_commit(parent, description="made after the restore") \
                as paused:
            assert paused.job_id == lost.id  # the restored parent never saw the lost job
            outcome = synchronize(other_process, child, open_repository)
        assert outcome.status_code == 0 and paused.errors == [], (outcome, paused.errors)
        jobs = [parent.get_job(job_id) for job_id in parent.job_ids()]
        assert sorted(job.description for job in jobs) == [
            "made after the backup", "made after the restore"]
        assert len({job.id for job in jobs}) == 2, "two live jobs share one id"


def test_an_explicit_job_id_handed_to_a_create_not_yet_committed_is_refused(
        repository_location: str) -> None:
    with open_repository(repository_location) as creating, \
            open_repository(repository_location) as other_process:
        with create_paused_before_its_commit(creating) as paused:
            with pytest.raises(InvalidRequest, match="already exists"):
                other_process.create_job(1, user=USER, id=paused.job_id)
            assert other_process.create_job(1, user=USER).id == paused.job_id + 1
        assert paused.errors == []
        assert sorted(other_process.job_ids()) == [paused.job_id, paused.job_id + 1]


def test_a_create_outranked_by_another_processes_clock_never_lowers_the_clock_it_records(
        repository_location: str) -> None:
    """``meta.clock`` tells a process that opens later how far every writer got. A create
    handed its id before another process stamped further, and committed after it, must not
    record its lower clock: the next edit of that process's job would be stamped below the
    version it replaces, and every child would keep the older one."""
    from wmx.model.clock import HybridLogicalClock

    with open_repository(repository_location) as ahead, \
            open_repository(repository_location) as behind:
        ahead.clock = HybridLogicalClock(ahead.clock.last, wall=lambda: time.time() + 3600)
        edited = ahead.create_job(1, user=USER)
        with create_paused_before_its_commit(behind) as paused:
            ahead.update_job(edited.id, user=USER, description="from the fast clock")
        assert paused.errors == []
        outranked = _stamp(ahead, edited.guid)
    with open_repository(repository_location) as later:
        later.update_job(edited.id, user=USER, description="later")
        assert _stamp(later, edited.guid) > outranked


def _stamp(repository: Any, guid: str) -> int:
    return next(change.hlc for change in repository.changes(0, limit=10_000).changes
                if change.guid == guid)


def test_a_create_committing_after_a_replicate_replaced_the_repository_writes_nothing(
        repository_location: str) -> None:
    """The create read its node id and id block when it was handed its id; a replicate into
    the repository (another process) replaces both, and the contents, before it commits."""
    from wmx.engine.outcome import ChildTarget
    from wmx.engine.replicate import replicate

    parent_location = postgres_helpers.new_location("other_parent")
    initialise(parent_location, name="OtherParent", config="quick", admin=USER).close()
    with open_repository(repository_location) as creating, \
            open_repository(parent_location) as parent:
        with create_paused_before_its_commit(creating) as paused:
            outcome = replicate(parent, [ChildTarget("Here", repository_location)],
                                open_repository)
            assert outcome.status_code == 0, outcome
            replaced = creating.all_rows()
        assert [type(error) for error in paused.errors] == [RepositoryBusy]
        assert "replaced" in str(paused.errors[0])
        assert creating.all_rows() == replaced == parent.all_rows()
        creating.create_job(1, user=USER)  # the next one goes through


def test_a_create_committing_after_a_sync_renewed_the_incarnation_goes_through(
        repository_location: str) -> None:
    """A sync renews a child's incarnation at its end: a create made meanwhile is still a
    create of this repository's, with its node id and id block."""
    with open_repository(repository_location) as creating, \
            open_repository(repository_location) as other_process:
        with create_paused_before_its_commit(creating) as paused:
            other_process.renew_incarnation()
        assert paused.errors == []
        assert paused.job_id in creating.job_ids()


def test_a_schema_made_before_job_ids_were_reserved_opens_and_creates_jobs(
        repository_location: str) -> None:
    """A repository created by an earlier wmx has no reservation function: opening it adds
    one, and the next job id is above the jobs it holds."""
    import psycopg

    with open_repository(repository_location) as repository:
        made = repository.create_job(1, user=USER)
    where = PostgresLocation.parse(repository_location)
    with psycopg.connect(where.conninfo, autocommit=True) as db:
        db.execute(f'SET search_path TO "{where.schema}"')
        db.execute("DROP FUNCTION wmx_reserve_job_id(integer, text, text, bigint, text)")
        db.execute("DELETE FROM meta WHERE key = 'job_ids_handed_out'")
    with open_repository(repository_location) as repository:
        assert repository.create_job(1, user=USER).id == made.id + 1
