"""Esri's own code samples, with only the import line changed, against embedded repositories.

The sample sources keep Esri's long lines on purpose.
"""
# ruff: noqa: E501

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import ADMIN, make_cluster
from wmx.valuetable import parse_child_rows

SYNCHRONIZE_SAMPLE = '''
# Name: SynchronizeJobData_Example.py
# Description: Synchronizes job data between the parent and two child repositories
from wmx import arcpy

# Check out any necessary licenses
arcpy.CheckOutExtension("JTX")

# Local variables:
Input_Parent_Repository_URL = {parent!r}
Input_Parent_Repository_Name = "Parent"
Input_Multi_Name = "Ohio_Repository true {ohio} 2011-08-08 12:00;AZ_Repository true {az} 2011-08-08 12:00"

# Process: Synchronize Job Data
result = arcpy.SynchronizeJobData_wmx(Input_Parent_Repository_URL, Input_Parent_Repository_Name, Input_Multi_Name)
'''

REPLICATE_SAMPLE = '''
# Name: ReplicateJobData_Example.py
# Description: Replicates the parent repository to two child repositories
from wmx import arcpy

arcpy.CheckOutExtension("JTX")

Input_Parent_Repository_URL = {parent!r}
Input_Parent_Repository_Name = "Parent"
Input_Multi_Name = """Ohio_Repository true {ohio};
AZ_Repository true {az}"""

result = arcpy.ReplicateJobData_WMX(Input_Parent_Repository_URL, Input_Parent_Repository_Name, Input_Multi_Name)
'''


def _run_sample(source: str) -> dict:
    namespace: dict = {}
    exec(compile(textwrap.dedent(source), "<esri sample>", "exec"), namespace)
    return namespace


@pytest.fixture
def esri_cluster(tmp_path):
    cluster = make_cluster(tmp_path, children=2, replicated=False)
    paths = {"parent": cluster.parent_path.as_posix(),
             "ohio": cluster.child_paths["Child1"].as_posix(),
             "az": cluster.child_paths["Child2"].as_posix()}
    return cluster, paths


def test_the_replicate_sample_runs_as_written(esri_cluster):
    cluster, paths = esri_cluster
    with cluster.parent() as parent:
        parent.create_job(1, user=ADMIN)

    result = _run_sample(REPLICATE_SAMPLE.format(**paths))["result"]

    assert result.getOutput(0) == "0"
    assert result.status == 4
    rows = result.last_sync
    assert [row.name for row in rows] == ["Ohio_Repository", "AZ_Repository"]
    assert all(row.status == "OK" and row.last_sync_time is not None for row in rows)
    cluster.assert_converged()


def test_the_synchronize_sample_runs_as_written(esri_cluster):
    cluster, paths = esri_cluster
    _run_sample(REPLICATE_SAMPLE.format(**paths))
    with cluster.child("Child1") as ohio:
        job = ohio.create_job(1, user=ADMIN)

    result = _run_sample(SYNCHRONIZE_SAMPLE.format(**paths))["result"]

    assert result[0] == "0"
    assert str(result) == "0" and repr(result) == "<Result '0'>"
    last_sync = result.getOutput("Output_LastSync")
    rows, _ = parse_child_rows(last_sync, synchronize=True)
    assert [row.name for row in rows] == ["Ohio_Repository", "AZ_Repository"]
    assert result.getMessages(1) == "", "Esri's unquoted sample date is read silently (§2.2)"
    with cluster.child("Child2") as az:
        assert job.id in az.jobs()


def test_the_last_sync_table_feeds_the_next_run(esri_cluster):
    from wmx import arcpy

    cluster, paths = esri_cluster
    _run_sample(REPLICATE_SAMPLE.format(**paths))
    first = _run_sample(SYNCHRONIZE_SAMPLE.format(**paths))["result"]
    seqs = cluster.seqs()

    second = arcpy.wmx.SynchronizeJobData(paths["parent"], "Parent", first.getOutput(1))

    assert second.status_code == 0
    assert cluster.seqs() == seqs
    assert second.getMessages(1) == ""


def test_import_wmx_as_arcpy_works_too(esri_cluster):
    import wmx as arcpy

    _, paths = esri_cluster
    result = arcpy.CreateJobDataReplica_wmx(paths["parent"], "Parent",
                                            [["Ohio", True, paths["ohio"]]])
    assert result.getOutput(0) == "0"
