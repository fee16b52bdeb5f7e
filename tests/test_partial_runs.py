"""Runs in which some children failed are never reported as a success (SPEC §2.1): the status
output is non-zero, the closing line says ``Failed`` or ``Completed with errors``, a run that
reached no child raises, a partial run returns its Result, and each failure says whether the
next run will catch it up or what to do instead."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import ADMIN
from tests.test_foreign_files import make_read_only  # noqa: F401 (a fixture)
from wmx import arcpy, errors
from wmx.result import FAILED


def _closing_line(messages: str) -> str:
    return messages.splitlines()[-1]


def _rows(cluster, *extra: str) -> str:
    return ";".join([*extra, *(f"{t.name} true {t.url}" for t in cluster.targets())])


def test_a_replicate_whose_only_child_failed_raises_and_never_says_succeeded(cluster, tmp_path):
    missing = tmp_path / "chlid1.wmxdb"  # a misspelled path

    with pytest.raises(errors.WmxConnectionError) as caught:
        arcpy.ReplicateJobData_wmx(str(cluster.parent_path), "Parent", f"Child1 true {missing}")

    err = caught.value
    assert err.code == errors.CHILD_UNREACHABLE
    assert err.result.status == FAILED
    assert err.result.getOutput(0) == "1"
    assert [row.status for row in err.result.last_sync] == ["FAILED"]
    assert _closing_line(err.result.getMessages()).startswith("Failed at ")
    assert "caught up" not in str(err)
    assert f"Child1 ({missing}) failed" in str(err) and "Check the URL or path" in str(err)


def test_a_partial_replicate_returns_its_result_completed_with_errors(cluster, tmp_path):
    missing = tmp_path / "gone.wmxdb"

    result = arcpy.ReplicateJobData_wmx(str(cluster.parent_path), "Parent",
                                        _rows(cluster, f"Gone true {missing}"))

    assert result.getOutput(0) == "1"
    assert result.status == FAILED
    closing = _closing_line(result.getMessages())
    assert closing.startswith("Completed with errors at ") and "Succeeded" not in closing
    assert [(r.name, r.status) for r in result.last_sync] == [
        ("Gone", "FAILED"), ("Child1", "OK"), ("Child2", "OK")]
    warnings = result.getMessages(1)
    assert f"WARNING {errors.CHILD_UNREACHABLE}: Gone ({missing}) failed" in warnings
    assert f"WARNING {errors.SYNC_INCOMPLETE}: 1 of 3 children failed" in warnings


def test_a_partial_synchronize_returns_its_result_completed_with_errors(cluster, tmp_path):
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN)

    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent",
                                          _rows(cluster, f"Gone true {tmp_path / 'gone.wmxdb'}"))

    assert result.getOutput(0) == "1" and result.status == FAILED
    assert _closing_line(result.getMessages()).startswith("Completed with errors at ")
    assert f"WARNING {errors.SYNC_INCOMPLETE}: 1 of 3 children failed" in result.getMessages(1)
    with cluster.child("Child2") as child:
        assert job.id in child.jobs()


def test_a_synchronize_that_reached_no_child_raises_with_the_childs_code(cluster, tmp_path):
    with pytest.raises(errors.WmxConnectionError) as caught:
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent",
                                     f"Gone true {tmp_path / 'gone.wmxdb'}")

    assert caught.value.code == errors.CHILD_UNREACHABLE
    assert caught.value.result.getOutput(0) == "1"
    assert _closing_line(caught.value.result.getMessages()).startswith("Failed at ")


def test_a_foreign_file_as_child_says_it_is_no_wmx_repository_not_that_the_next_run_helps(
        cluster, tmp_path):
    foreign = tmp_path / "random.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    table = _rows(cluster, f"Foreign true {foreign}")

    result = arcpy.ReplicateJobData_wmx(str(cluster.parent_path), "Parent", table)

    line = next(w for w in result.getMessages(1).splitlines() if "Foreign" in w)
    assert "not a wmx repository" in line
    assert "caught up" not in line and "next run" not in line
    assert "Check the URL or path" in line



def test_clear_with_a_child_that_is_gone_completes_with_errors_and_says_what_to_check(cluster):
    cluster.child_paths["Child2"].unlink()

    result = arcpy.ClearJobReplicationInfo_wmx(str(cluster.parent_path))

    assert result.getOutput(0) == "1" and result.status == FAILED
    assert _closing_line(result.getMessages()).startswith("Completed with errors at ")
    line = next(w for w in result.getMessages(1).splitlines() if "Child2" in w)
    assert line.startswith(f"WARNING {errors.CHILD_UNREACHABLE}: Child2 (")
    assert "was not cleared" in line and "Check the URL or path" in line


def test_a_read_only_child_is_told_to_make_it_writable_not_that_the_next_run_helps(
        cluster, make_read_only):  # noqa: F811 (the imported fixture)
    make_read_only(cluster.child_paths["Child1"])

    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", _rows(cluster))

    assert result.getOutput(0) == "1"
    line = next(w for w in result.getMessages(1).splitlines() if "Child1" in w)
    assert line.startswith(f"WARNING {errors.CHILD_UNREACHABLE}: Child1 (")
    assert "writable" in line and "catches it up" not in line
