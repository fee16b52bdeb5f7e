"""The ``wmx`` command line, run as a real process the way an administrator would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ADMIN, make_cluster


def wmx(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wmx", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_demo_runs_and_converges(tmp_path):
    done = wmx("demo", tmp_path / "demo")
    assert done.returncode == 0, done.stderr
    assert "All three repositories identical, row for row: yes" in done.stdout
    assert "Status: 0" in done.stdout


def test_init_then_status(tmp_path):
    path = tmp_path / "new.wmxdb"
    created = wmx("init", path, "--name", "Fresh", "--config", "quick", "--job-id-start", "500")
    assert created.returncode == 0, created.stderr
    status = wmx("status", path)
    assert status.returncode == 0
    assert "Repository   Fresh" in status.stdout
    assert "Job ids from 500" in status.stdout
    again = wmx("init", path, "--name", "Fresh")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_replicate_sync_and_status_from_the_command_line(tmp_path):
    cluster = make_cluster(tmp_path, children=2, replicated=False)
    table = ";".join(f"{t.name} true {t.url}" for t in cluster.targets())
    assert wmx("replicate", cluster.parent_path, "Parent", table).returncode == 0
    with cluster.child("Child1") as child:
        child.create_job(1, user=ADMIN)

    dry = wmx("sync", cluster.parent_path, "Parent", table, "--dry-run")
    assert dry.returncode == 0 and "Dry run: nothing was written" in dry.stdout
    status = wmx("status", cluster.parent_path)
    assert "Child1" in status.stdout and "Child2" in status.stdout

    real = wmx("sync", cluster.parent_path, "Parent", table)
    assert real.returncode == 0
    with cluster.child("Child2") as child:
        assert len(child.jobs()) == 1


def test_a_failed_child_gives_exit_code_3_and_an_error_gives_1(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    table = f"Ghost true {tmp_path / 'ghost.wmxdb'};Child1 true {cluster.child_paths['Child1']}"
    partial = wmx("sync", cluster.parent_path, "Parent", table)
    assert partial.returncode == 3
    assert "WARNING 999981: Ghost" in partial.stdout
    wrong = wmx("sync", cluster.parent_path, "NotTheName", f"Child1 true {tmp_path}")
    assert wrong.returncode == 1
    assert "ERROR 000800" in wrong.stderr and "Failed to execute (SynchronizeJobData)." in \
        wrong.stderr


def test_run_executes_a_legacy_arcpy_script_untouched(tmp_path):
    cluster = make_cluster(tmp_path, children=1, replicated=False)
    script = tmp_path / "legacy.py"
    child = cluster.child_paths["Child1"].as_posix()
    script.write_text(textwrap.dedent(f"""
        import arcpy
        arcpy.CheckOutExtension("JTX")
        result = arcpy.ReplicateJobData_wmx({str(cluster.parent_path)!r}, "Parent",
                                            "Child1 true {child}")
        print("status", result.getOutput(0))
        try:
            arcpy.SynchronizeJobData_wmx("", "", "")
        except arcpy.ExecuteError:
            print(arcpy.GetMessages(2).splitlines()[1])
    """))
    done = wmx("run", script)
    assert done.returncode == 0, done.stderr
    assert "status 0" in done.stdout
    assert "ERROR 000735: Parent Repository URL: Value is required" in done.stdout
