"""``wmx run SCRIPT.py``: an untouched ``import arcpy`` script runs with wmx standing in
(issue 11, point 1). Each test runs the real command in a fresh process and reads its exit code
and output, as a scheduled task would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WMX_PACKAGE = str(Path(__file__).resolve().parent.parent / "wmx")


def wmx_run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wmx", "run", str(script), *args],
                          capture_output=True, text=True, timeout=60, cwd=script.parent)


def write(folder: Path, source: str, name: str = "legacy.py") -> Path:
    script = folder / name
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    return script


def assert_no_wmx_frames(stderr: str) -> None:
    assert WMX_PACKAGE not in stderr
    assert "runpy" not in stderr and "cli" not in stderr


def test_a_missing_script_is_exit_code_2_with_a_clear_message(tmp_path):
    done = wmx_run(tmp_path / "nightly_sync.py")
    assert done.returncode == 2
    assert "nightly_sync.py" in done.stderr and "no such script" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_folder_given_as_the_script_is_exit_code_2(tmp_path):
    done = wmx_run(tmp_path)
    assert done.returncode == 2
    assert "is a folder, not a Python script" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_python_2_script_is_explained_with_what_to_change(tmp_path):
    script = write(tmp_path, """\
        # -*- coding: utf-8 -*-
        import arcpy
        try:
            arcpy.SynchronizeJobData_wmx("http://p/WMServer", "Parent", "")
        except arcpy.ExecuteError, e:
            print arcpy.GetMessages(2)
        print "done"
    """)
    done = wmx_run(script)
    assert done.returncode == 2
    assert "this script is written for Python 2 (ArcMap)" in done.stderr
    assert "line 5" in done.stderr
    assert "except E as e:" in done.stderr and 'print("...")' in done.stderr
    assert "lines 5, 6, 7" in done.stderr  # every Python 2 line, not only the first
    assert "Traceback" not in done.stderr


def test_other_syntax_errors_are_shown_as_python_shows_them_with_exit_code_2(tmp_path):
    done = wmx_run(write(tmp_path, "def broken(:\n    pass\n"))
    assert done.returncode == 2
    assert "legacy.py" in done.stderr and "line 1" in done.stderr
    assert "SyntaxError" in done.stderr and "Python 2" not in done.stderr


def test_the_scripts_own_traceback_is_shown_without_wmx_frames(tmp_path):
    script = write(tmp_path, """\
        import arcpy

        def nightly():
            return {"Ohio": 1}["Texas"]

        nightly()
    """)
    done = wmx_run(script)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert 'legacy.py", line 6, in <module>' in done.stderr
    assert 'legacy.py", line 4, in nightly' in done.stderr
    assert "KeyError: 'Texas'" in done.stderr
    assert_no_wmx_frames(done.stderr)


def test_an_uncaught_tool_error_shows_the_scripts_line_and_arcpys_error_text(tmp_path):
    script = write(tmp_path, """\
        import arcpy
        arcpy.SynchronizeJobData_wmx("", "Parent", "")
    """)
    done = wmx_run(script)
    assert done.returncode == 1
    assert 'legacy.py", line 2, in <module>' in done.stderr
    assert "ERROR 000735: Parent Repository URL: Value is required" in done.stderr
    assert "Failed to execute (SynchronizeJobData)." in done.stderr
    assert_no_wmx_frames(done.stderr)


def test_sys_argv_is_the_script_and_its_arguments(tmp_path):
    script = write(tmp_path, """\
        import sys
        import arcpy
        print(sys.argv[1:], arcpy.GetArgumentCount(), arcpy.GetParameterAsText(1))
        print(__name__, __file__.endswith("legacy.py"))
    """)
    done = wmx_run(script, "http://p/WMServer", "Ohio true 'C:/a b'", "--verbose")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['http://p/WMServer', \"Ohio true 'C:/a b'\", '--verbose'] 3 Ohio true 'C:/a b'",
        "__main__ True",
    ]


def test_the_scripts_exit_code_is_the_commands(tmp_path):
    assert wmx_run(write(tmp_path, "import sys\nsys.exit(3)\n")).returncode == 3
    assert wmx_run(write(tmp_path, "import sys\nsys.exit()\n")).returncode == 0
    said = wmx_run(write(tmp_path, "import sys\nsys.exit('no parent today')\n"))
    assert said.returncode == 1 and said.stderr.strip() == "no parent today"


def test_importing_an_arcpy_module_wmx_lacks_is_one_clear_error(tmp_path):
    done = wmx_run(write(tmp_path, """\
        import arcpy
        import arcpy.da
    """))
    assert done.returncode == 1
    assert 'legacy.py", line 2, in <module>' in done.stderr
    assert "arcpy.da is not provided by wmx" in done.stderr
    assert_no_wmx_frames(done.stderr)
    done = wmx_run(write(tmp_path, "import arcpy\nprint(arcpy.management.GetCount('x'))\n"))
    assert "arcpy.management is not provided by wmx" in done.stderr


def test_a_python_2_name_at_run_time_says_what_python_3_calls_it(tmp_path):
    done = wmx_run(write(tmp_path, "import arcpy\nname = unicode('Ohio')\n"))
    assert done.returncode == 1
    assert "NameError: name 'unicode' is not defined" in done.stderr
    assert "unicode is Python 2 (ArcMap); in Python 3 use str" in done.stderr


def test_quoted_text_that_looks_like_python_2_is_not_listed(tmp_path):
    script = write(tmp_path, """\
        import arcpy
        rows = "Ohio true http://ohio/WMServer 2011-08-08 12:00"  # print "not code"
        print "Synchronizing", rows
    """)
    done = wmx_run(script)
    assert done.returncode == 2
    assert "Python 2 forms found on lines 3." in done.stderr


def test_a_nightly_script_using_env_parameters_and_the_tools_runs_untouched(tmp_path):
    from tests.conftest import make_cluster

    cluster = make_cluster(tmp_path, children=1)
    script = write(tmp_path, """\
        import arcpy
        arcpy.env.overwriteOutput = True
        arcpy.env.workspace = arcpy.env.scratchFolder
        if arcpy.CheckExtension("JTX") == "Available":
            arcpy.CheckOutExtension("JTX")
        parent = arcpy.GetParameterAsText(0)
        children = arcpy.GetParameterAsText(1)
        try:
            result = arcpy.SynchronizeJobData_wmx(parent, "Parent", children)
            arcpy.SetParameterAsText(2, result.getOutput(0))
            print("status", arcpy.GetParameterAsText(2))
        except arcpy.ExecuteError:
            arcpy.AddIDMessage("ERROR", 999981, "nightly sync failed")
            print(arcpy.GetMessages(2))
        if not hasattr(arcpy, "mp"):
            print("no arcpy.mp here")
        arcpy.CheckInExtension("JTX")
    """)
    done = wmx_run(script, str(cluster.parent_path),
                   f"Child1 true '{cluster.child_paths['Child1']}' 2011-08-08 12:00")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["status 0", "no arcpy.mp here"]
    assert done.stderr == ""


def test_run_script_leaves_sys_as_it_found_it(tmp_path, capsys):
    from wmx.script import run_script

    before = (list(sys.argv), list(sys.path), sys.modules.get("__main__"),
              sys.modules.get("arcpy"))
    script = write(tmp_path, """\
        import sys, arcpy
        print(arcpy.GetParameterAsText(0), sys.argv[1:])
        arcpy.SetParameterAsText(0, "set by the script")
        raise SystemExit(4)
    """)
    assert run_script(str(script), ["first"]) == 4
    assert run_script(str(script), ["second"]) == 4  # starts afresh: not "set by the script"
    after = (list(sys.argv), list(sys.path), sys.modules.get("__main__"),
             sys.modules.get("arcpy"))
    assert after == before
    assert capsys.readouterr().out.splitlines() == ["first ['first']", "second ['second']"]


@pytest.mark.skipif(os.name == "nt", reason="SIGINT delivery to a child process is POSIX-only")
def test_ctrl_c_in_a_script_says_the_script_was_stopped_and_exits_130(tmp_path):
    script = write(tmp_path, """\
        import time
        import arcpy
        print("started", flush=True)
        time.sleep(60)
        """)
    process = subprocess.Popen([sys.executable, "-m", "wmx", "run", str(script)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=tmp_path)
    try:
        assert process.stdout.readline().strip() == "started"
        process.send_signal(signal.SIGINT)
        _output, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors
    assert errors.strip().startswith("wmx: interrupted; the script was stopped")
