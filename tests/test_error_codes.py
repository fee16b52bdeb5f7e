"""Each wmx code (999980-999989) that has a real cause, produced by a real tool run against
real files and real servers on 127.0.0.1, naming the node that failed; and the example of
docs/errors.md, run as pasted."""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN
from tests.http_helpers import EDITOR, make_repository, running_server
from tests.test_disk_full import _big_parent, small_disk
from wmx import arcpy, errors
from wmx.repository.embedded import EmbeddedRepository
from wmx.result import SUCCEEDED

DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def _rows(cluster, *extra: str) -> str:
    return ";".join([*extra, *(f"{t.name} true {t.url}" for t in cluster.targets())])


def _line(result_or_error, name: str) -> str:
    """The message line about ``name`` (from a Result or an ExecuteError's Result)."""
    result = getattr(result_or_error, "result", None) or result_or_error
    return next(line for line in result.getMessages().splitlines() if f"{name} (" in line)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _plain_web_server(folder: Path) -> Iterator[str]:
    """A real web server that is no WMServer: it answers ``/WMServer`` with a text page."""
    (folder / "WMServer").write_text("<html>It works!</html>")
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {
        "log_message": lambda *args: None})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/WMServer"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _write_locked(path: Path) -> Iterator[None]:
    """Another process's view of a repository: a connection holding its write lock."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def test_a_parent_that_cannot_be_reached_fails_validation_with_999980(cluster):
    url = f"http://127.0.0.1:{_free_port()}/arcgis/rest/services/P/WMServer"

    with pytest.raises(errors.WmxValidationError) as caught:
        arcpy.SynchronizeJobData_wmx(url, "Parent", _rows(cluster))

    assert caught.value.code == errors.PARENT_UNREACHABLE


def test_a_child_server_that_is_down_gets_999981_and_is_told_the_next_run_catches_it_up(
        cluster, monkeypatch):
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    url = f"http://127.0.0.1:{_free_port()}/arcgis/rest/services/Down/WMServer"

    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent",
                                          _rows(cluster, f"Down true {url}"))

    line = _line(result, "Down")
    assert line.startswith(f"WARNING {errors.CHILD_UNREACHABLE}: Down ({url}) failed")
    assert "the next run catches it up" in line


def test_a_child_server_refusing_the_token_gets_999982_without_showing_it(
        cluster, tmp_path, monkeypatch):
    served = make_repository(tmp_path, "Secure", "minimum")
    monkeypatch.setenv("WMX_USER", ADMIN)
    monkeypatch.setenv("WMX_TOKEN", "not-the-s3cret-token")
    with running_server(served, token="the-real-s3cret") as server:
        url = server.url
        result = arcpy.ReplicateJobData_wmx(str(cluster.parent_path), "Parent",
                                            _rows(cluster, f"Secure true {url}"))

    line = _line(result, "Secure")
    assert line.startswith(f"WARNING {errors.NOT_AUTHORIZED}: Secure ({url}) failed")
    assert "WMX_TOKEN" in line and "next run" not in line
    assert "s3cret" not in result.getMessages()


def test_a_parent_that_refuses_the_acting_user_fails_the_run_with_999982_naming_the_parent(
        tmp_path, monkeypatch):
    parent = make_repository(tmp_path, "Redlands", "quick")
    child = make_repository(tmp_path, "Ohio", "minimum")
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    monkeypatch.setenv("WMX_USER", EDITOR)  # a user without Manage Replication
    with running_server(parent) as server, \
            pytest.raises(errors.WmxAuthorizationError) as caught:
        url = server.url
        arcpy.ReplicateJobData_wmx(url, "Redlands", f"Ohio true {child}")

    assert caught.value.code == errors.NOT_AUTHORIZED
    assert f"The parent Redlands ({url}) failed" in str(caught.value)
    assert "Ohio" not in str(caught.value)


def test_clear_by_a_user_without_manage_replication_fails_with_999982_not_999999(
        tmp_path, monkeypatch):
    served = make_repository(tmp_path, "Redlands", "quick")
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    monkeypatch.setenv("WMX_USER", EDITOR)
    with running_server(served) as server, \
            pytest.raises(errors.WmxAuthorizationError) as caught:
        arcpy.ClearJobReplicationInfo_wmx(server.url)

    assert caught.value.code == errors.NOT_AUTHORIZED
    assert "Manage Replication" in str(caught.value)


def test_a_conflict_is_a_999983_warning_and_the_run_still_succeeds(cluster):
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    assert arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent",
                                        _rows(cluster)).getOutput(0) == "0"
    with cluster.child("Child1") as child:
        child.update_job(job.id, user=ADMIN, description="from the child")
    with cluster.parent() as parent:
        parent.update_job(job.id, user=ADMIN, description="from the parent")

    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", _rows(cluster))

    assert f"WARNING {errors.REPLICATION_CONFLICT}: Conflict: " in result.getMessages(1)
    assert result.status == SUCCEEDED and result.getOutput(0) == "0"


def test_a_child_that_is_not_a_replica_gets_999984_and_is_told_to_run_replicate(cluster,
                                                                                tmp_path):
    stranger = make_repository(tmp_path, "Stranger", "minimum")

    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent",
                                          _rows(cluster, f"Stranger true {stranger}"))

    line = _line(result, "Stranger")
    assert line.startswith(f"WARNING {errors.NOT_A_REPLICA}: Stranger ({stranger}) failed")
    assert "run ReplicateJobData" in line and "catches it up" not in line


def test_a_truncated_exchange_file_is_refused_with_999985(cluster, tmp_path):
    exported = arcpy.ExportJobData_wmx(str(tmp_path), str(cluster.parent_path))
    path = Path(exported.getOutput(1))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    seqs = cluster.seqs()

    with pytest.raises(errors.WmxRuntimeError) as caught:
        arcpy.ImportJobData_wmx(str(path), "COMBINE", str(cluster.child_paths["Child1"]))

    assert caught.value.code == errors.INCOMPATIBLE_REPOSITORY
    assert cluster.seqs() == seqs


def test_a_child_server_that_is_no_wmserver_gets_999987(cluster, tmp_path, monkeypatch):
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    with _plain_web_server(tmp_path) as url:
        result = arcpy.ReplicateJobData_wmx(str(cluster.parent_path), "Parent",
                                            _rows(cluster, f"Web true {url}"))

    line = _line(result, "Web")
    assert line.startswith(f"WARNING {errors.INVALID_RESPONSE}: Web ({url}) failed")
    assert "next run" not in line


@contextlib.contextmanager
def _silent_server() -> Iterator[str]:
    """A real listening socket that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/arcgis/rest/services/S/WMServer"


def test_a_child_that_never_answers_gets_999988_within_the_timeout(cluster, monkeypatch):
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    monkeypatch.setenv("WMX_TIMEOUT", "1")
    with _silent_server() as url:
        started = time.monotonic()
        result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent",
                                              _rows(cluster, f"Silent true {url}"))
        elapsed = time.monotonic() - started

    line = _line(result, "Silent")
    assert line.startswith(f"WARNING {errors.TIMED_OUT}: Silent ({url}) failed")
    assert "the next run catches it up" in line
    assert elapsed < 10


def test_a_child_whose_disk_is_full_is_told_to_free_space_not_that_the_next_run_helps(
        tmp_path):
    parent = _big_parent(tmp_path)
    with small_disk(tmp_path / "small") as disk:
        child = make_repository(disk, "Child", config="minimum")
        with pytest.raises(errors.WmxConnectionError) as caught:
            arcpy.ReplicateJobData_wmx(str(parent), "Parent", f"Child true {child}")

    line = _line(caught.value, "Child")
    assert line.startswith(f"ERROR {errors.CHILD_UNREACHABLE}: Child ({child}) failed")
    assert "Free space" in line and "catches it up" not in line


def test_a_parent_whose_disk_fills_up_mid_sync_fails_the_run_with_999980_naming_the_parent(
        tmp_path):
    with small_disk(tmp_path / "small") as disk:
        parent = make_repository(disk, "Parent")
        child = make_repository(tmp_path, "Child1", "minimum")
        arcpy.ReplicateJobData_wmx(str(parent), "Parent", f"Child1 true {child}")
        with EmbeddedRepository(child) as repository:
            job = repository.create_job(1, user=ADMIN)
            repository.add_attachment(job.id, "scan.tif", os.urandom(1024 * 1024), user=ADMIN)
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 256 * 1024))

        with pytest.raises(errors.WmxConnectionError) as caught:
            arcpy.SynchronizeJobData_wmx(str(parent), "Parent", f"Child1 true {child}")
        filler.unlink()

    err = caught.value
    assert err.code == errors.PARENT_UNREACHABLE
    assert f"ERROR {errors.PARENT_UNREACHABLE}: The parent Parent ({parent}) failed" in str(err)
    assert "Free space" in str(err) and "Child1 (" not in str(err)
    assert "the parent failed" in _line(err, "Child1")


def test_a_parent_that_is_no_wmserver_fails_validation_with_999987(cluster, tmp_path,
                                                                   monkeypatch):
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    with _plain_web_server(tmp_path) as url, \
            pytest.raises(errors.WmxValidationError) as caught:
        arcpy.SynchronizeJobData_wmx(url, "Parent", _rows(cluster))

    assert caught.value.code == errors.INVALID_RESPONSE


def test_a_parent_that_never_answers_fails_validation_with_999988(cluster, monkeypatch):
    monkeypatch.delenv("WMX_TOKEN", raising=False)
    monkeypatch.setenv("WMX_TIMEOUT", "1")
    with _silent_server() as url, pytest.raises(errors.WmxValidationError) as caught:
        arcpy.SynchronizeJobData_wmx(url, "Parent", _rows(cluster))

    assert caught.value.code == errors.TIMED_OUT


@pytest.mark.slow
def test_a_parent_locked_by_another_process_fails_the_run_with_999989_not_blamed_on_a_child(
        cluster):
    with cluster.child("Child1") as child:
        child.create_job(1, user=ADMIN)  # something to consolidate: the parent must write

    with _write_locked(cluster.parent_path), pytest.raises(errors.WmxRuntimeError) as caught:
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", _rows(cluster))

    err = caught.value
    assert err.code == errors.REPOSITORY_LOCKED
    assert re.search(rf"ERROR {errors.REPOSITORY_LOCKED}: The parent Parent \(.*\) failed: "
                     r".* is busy", str(err))
    assert "Child1 (" not in str(err)
    assert "Child1" in _line(err, "Child1") and "the parent failed" in _line(err, "Child1")
    assert err.result.getOutput(0) != "0"


def test_the_docs_example_runs_as_pasted(tmp_path, monkeypatch):
    text = DOCS.read_text(encoding="utf-8")
    example = text.split("## Example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(DOCS), "exec"), {"__name__": "__main__"})

    assert out.getvalue().startswith(f"cannot reach Ohio: {errors.CHILD_UNREACHABLE}")


@pytest.mark.slow
def test_a_child_locked_by_another_process_gets_999989_and_the_others_are_synchronized(cluster):
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)  # something to push: the child must write

    with _write_locked(cluster.child_paths["Child1"]):
        result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", _rows(cluster))

    line = _line(result, "Child1")
    assert line.startswith(f"WARNING {errors.REPOSITORY_LOCKED}: Child1 (")
    assert "the next run catches it up" in line
    with cluster.child("Child2") as child:
        assert job.id in child.jobs()
