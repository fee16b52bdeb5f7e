"""The tools' contracts: validation before any write, per-child failures, outputs, and the
exchange and clear tools."""

from __future__ import annotations

import pytest

import wmx
from tests.conftest import ADMIN, make_cluster
from wmx import arcpy


def _sync_rows(cluster, names=None):
    return ";".join(f"{t.name} true {t.url} #" for t in cluster.targets(names))


@pytest.mark.parametrize("children, code, fragment", [
    ("Child1 true {c1} #;Child2 true", 589, "Expected 3 or 4 values"),
    ("Child1 true {c1} 2011-13-45 99:00", 589, "last_sync_time"),
    ("Child1 true {c1} #;child1 true {c2} #", 589, "Duplicate child repository name"),
    ("Child1 true {parent} #", 733, ""),
    ("Child1 true", 589, "URL"),
    ("'Child1 true {c1} #", 589, "quote"),
])
def test_a_bad_value_table_fails_validation_and_writes_nothing(cluster, children, code,
                                                                 fragment):
    with cluster.child("Child1") as child:
        child.create_job(1, user=ADMIN)
    seqs = cluster.seqs()
    table = children.format(c1=cluster.child_paths["Child1"], c2=cluster.child_paths["Child2"],
                            parent=cluster.parent_path)

    with pytest.raises(arcpy.ExecuteError) as caught:
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", table)

    text = str(caught.value)
    lines = text.splitlines()
    assert lines[0] == "Failed to execute. Parameters are not valid."
    assert lines[1].startswith(f"ERROR {code:06d}: Child Repository Names and URLs: ")
    assert fragment in text
    assert lines[-1] == "Failed to execute (SynchronizeJobData)."
    assert caught.value.code == code
    assert cluster.seqs() == seqs
    assert arcpy.GetMessages(2) == text


def test_missing_values_are_reported_together(cluster):
    with pytest.raises(arcpy.ExecuteError) as caught:
        arcpy.SynchronizeJobData_wmx(None, "#", "")
    assert str(caught.value).splitlines()[1:4] == [
        "ERROR 000735: Parent Repository URL: Value is required",
        "ERROR 000735: Parent Repository Name: Value is required",
        "ERROR 000735: Child Repository Names and URLs: Value is required",
    ]


def test_an_unknown_parent_fails_validation(cluster, tmp_path):
    missing = tmp_path / "nope.wmxdb"
    with pytest.raises(wmx.WmxValidationError) as caught:
        arcpy.ReplicateJobData_wmx(str(missing), "Parent", _sync_rows(cluster)[:0] or
                                   f"Child1 true {cluster.child_paths['Child1']}")
    assert f"ERROR 000732: Parent Repository URL: Dataset {missing} does not exist" in \
        str(caught.value)


def test_a_wrong_parent_name_fails_validation_and_writes_nothing(cluster):
    seqs = cluster.seqs()
    with pytest.raises(arcpy.ExecuteError) as caught:
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Ohio", _sync_rows(cluster))
    assert "ERROR 000800: Parent Repository Name: The value is not a member of Parent." in \
        str(caught.value)
    assert cluster.seqs() == seqs


def test_a_child_that_does_not_exist_gives_a_nonzero_status_and_says_why(cluster, tmp_path):
    with cluster.child("Child1") as child:
        job = child.create_job(1, user=ADMIN)
    table = f"Gone true {tmp_path / 'gone.wmxdb'} #;" + _sync_rows(cluster)

    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", table)

    assert result.getOutput(0) == "1"
    assert result.status == 5  # a partial run is not a success (SPEC 2.1)
    warnings = result.getMessages(1)
    assert "WARNING 999981: Gone (" in warnings and "gone.wmxdb does not exist" in warnings
    assert [(r.name, r.status) for r in result.last_sync] == [
        ("Gone", "FAILED"), ("Child1", "OK"), ("Child2", "OK")]
    assert result.last_sync[0].last_sync_time is None
    with cluster.child("Child2") as child:
        assert job.id in child.jobs()


def test_conflicts_are_reported_as_warnings(cluster):
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", _sync_rows(cluster))
    for name in ("Child1", "Child2"):
        with cluster.child(name) as child:
            child.update_job(job.id, user=ADMIN, description=name)
    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent",
                                          _sync_rows(cluster))
    assert "WARNING 999983: Conflict: job 1 changed on both sides" in result.getMessages(1)


def test_a_dry_run_writes_nothing(cluster):
    with cluster.child("Child1") as child:
        child.create_job(1, user=ADMIN)
    seqs = cluster.seqs()
    result = wmx.SynchronizeJobData(str(cluster.parent_path), "Parent", _sync_rows(cluster),
                                    dry_run=True)
    assert "Child1: 4 new" in result.getMessages() or "Child1: " in result.getMessages()
    assert "Dry run: nothing was written" in result.getMessages()
    assert cluster.seqs() == seqs


def test_severity_level_zero_returns_a_failed_result_instead_of_raising(cluster):
    arcpy.SetSeverityLevel(0)
    try:
        result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Nope",
                                              _sync_rows(cluster))
    finally:
        arcpy.SetSeverityLevel(2)
    assert result.status == 5 and result.maxSeverity == 2


def test_export_then_import_moves_jobs_to_a_disconnected_child(tmp_path):
    cluster = make_cluster(tmp_path, children=1, replicated=False)
    folder = tmp_path / "carry"
    folder.mkdir()
    with cluster.parent() as parent:
        job = parent.create_job(1, user=ADMIN)
    result = arcpy.ReplicateJobData_wmx(str(cluster.parent_path), "Parent",
                                        f"Field false {folder}")
    assert result.getOutput(0) == "0"
    exported = list(folder.glob("*.jxl"))
    assert len(exported) == 1

    status = arcpy.ImportJobData_wmx(str(exported[0]), "REPLACE",
                                     str(cluster.child_paths["Child1"]))
    assert status.getOutput(0) == "0"
    with cluster.child("Child1") as child:
        assert child.get_job(job.id).name == job.name
        new_job = child.create_job(1, user=ADMIN)
        assert new_job.id > 10_000_000

    back = arcpy.ExportJobData_wmx(str(folder), str(cluster.child_paths["Child1"]), "Child1")
    arcpy.ImportJobData_wmx(back.getOutput(1), "COMBINE", str(cluster.parent_path), "Parent")
    with cluster.parent() as parent:
        assert new_job.id in parent.jobs()


def test_import_rejects_an_unknown_merge_keyword(cluster, tmp_path):
    export = arcpy.ExportJobData_wmx(str(tmp_path), str(cluster.parent_path))
    with pytest.raises(arcpy.ExecuteError) as caught:
        arcpy.ImportJobData_wmx(export.getOutput(1), "MERGE", str(cluster.child_paths["Child1"]))
    assert "ERROR 000800: Merge: The value is not a member of COMBINE | REPLACE." in \
        str(caught.value)


def test_clear_replication_info_forgets_the_cluster_everywhere(cluster):
    result = arcpy.ClearJobReplicationInfo_wmx(str(cluster.parent_path))
    assert result.getOutput(0) == "0"
    with cluster.parent() as parent:
        assert parent.nodes() == []
    with cluster.child("Child1") as child:
        assert child.info().parent_node_id is None
    with pytest.raises(wmx.errors.WmxRuntimeError) as caught:  # no child reached: it failed
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", _sync_rows(cluster))
    assert caught.value.result.getOutput(0) == "2"


def test_licensing_and_toolbox_functions():
    assert arcpy.CheckExtension("JTX") == "Available"
    assert arcpy.CheckOutExtension("JTX") == "CheckedOut"
    assert arcpy.CheckInExtension("JTX") == "CheckedIn"
    assert arcpy.CheckExtension("Spatial") == "NotLicensed"
    toolbox = arcpy.ImportToolbox(r"C:\Program Files\WMX\Toolboxes\Workflow Manager Tools.tbx")
    assert "SynchronizeJobData" in toolbox.__all__
    assert toolbox.SynchronizeJobData is arcpy.SynchronizeJobData_WMX
