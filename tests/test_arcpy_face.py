"""The arcpy face that automation scripts touch around the tools (issue 11, points 1, 3, 8):
``arcpy.env``, the script-tool parameter functions, ``AddIDMessage``, one clear error for
everything wmx does not provide, the acting user named in messages, and quiet logging."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wmx
from tests.http_helpers import make_repository, running_server
from wmx import arcpy
from wmx.not_provided import NotProvidedError


def run_python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A fresh interpreter: what a scheduled task or a notebook kernel starts with."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


# --- point 3: the acting user -------------------------------------------------------------------


def test_an_unknown_acting_user_is_told_about_wmx_user_and_the_user_option(tmp_path):
    parent = make_repository(tmp_path)
    with running_server(parent) as server:
        repository = wmx.open_repository(server.url, user="root")
        try:
            with pytest.raises(Exception) as caught:
                repository.create_job(1, user="root")
        finally:
            repository.close()
    text = str(caught.value)
    assert "'root' is not a Workflow Manager user" in text
    assert "WMX_USER" in text and "--user" in text


# --- point 8: logging -----------------------------------------------------------------------------


def test_the_wmx_logger_has_a_null_handler_so_library_warnings_never_reach_stderr(tmp_path):
    done = run_python("""
        import logging, wmx
        logging.getLogger("wmx.engine").warning("sync with Texas failed while pulling")
        print("done")
    """, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert done.stderr == ""
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("wmx").handlers)


def test_a_script_that_configures_logging_still_sees_wmx_warnings(tmp_path):
    done = run_python("""
        import logging, wmx
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("wmx.engine").warning("sync with Texas failed while pulling")
    """, cwd=tmp_path)
    assert "sync with Texas failed while pulling" in done.stderr


def test_an_unreachable_child_is_described_without_urllib3_objects(cluster):
    child1 = cluster.child_paths["Child1"]
    result = arcpy.SynchronizeJobData_wmx(
        str(cluster.parent_path), "Parent",
        f"Child1 true {child1} #;Texas true http://127.0.0.1:9/arcgis/rest/services/T/WMServer #")
    warnings = result.getMessages(1)
    assert "Texas" in warnings
    for transport_detail in ("HTTPConnection(", "HTTPConnectionPool(", "object at 0x",
                             "Max retries exceeded", "Retry(total"):
        assert transport_detail not in warnings


def _refused_connection_error() -> Exception:
    """A real requests error for a port nobody listens on (its text embeds urllib3 reprs)."""
    import requests

    try:
        requests.get("http://127.0.0.1:9/arcgis/rest/services/T/WMServer", timeout=5)
    except requests.RequestException as error:
        return error
    raise AssertionError("port 9 answered")


def test_a_transport_error_added_as_a_message_is_told_in_the_users_terms():
    error = _refused_connection_error()
    assert "HTTPConnection" in str(error)  # what urllib3 puts there
    arcpy.AddWarning(error)
    text = arcpy.GetMessage(arcpy.GetMessageCount() - 1)
    assert text.startswith("127.0.0.1:9:")
    assert "Connection refused" in text or "refused" in text.lower() or "Errno" in text
    for transport_detail in ("HTTPConnection", "object at 0x", "Max retries exceeded",
                             "Caused by", "/arcgis/rest"):
        assert transport_detail not in text


# --- point 1: arcpy.env ---------------------------------------------------------------------------


@pytest.fixture
def env():
    """``arcpy.env`` as a fresh process has it, restored after the test."""
    arcpy.ResetEnvironments()
    yield arcpy.env
    arcpy.ResetEnvironments()


def test_env_has_esris_common_settings_with_their_defaults(env):
    assert env.overwriteOutput is False
    assert env.workspace is None and env.scratchWorkspace is None
    assert env.outputCoordinateSystem is None
    assert env.addOutputsToMap is True
    names = env.keys()
    for name in ("extent", "XYTolerance", "parallelProcessingFactor", "qualifiedFieldNames"):
        assert name in names


def test_env_settings_are_set_and_read_as_a_script_does(env, tmp_path):
    env.overwriteOutput = True
    env.workspace = tmp_path
    arcpy.env.outputCoordinateSystem = "WGS 1984"
    assert arcpy.env.overwriteOutput is True
    assert arcpy.env.workspace == str(tmp_path)
    assert arcpy.env["outputCoordinateSystem"] == "WGS 1984"
    assert dict(arcpy.env.items())["workspace"] == str(tmp_path)


def test_env_names_fold_case_as_arcpys_do(env):
    env.overwriteoutput = 1
    assert env.overwriteOutput is True
    assert env.OVERWRITEOUTPUT is True


@pytest.mark.parametrize("text, expected", [("true", True), ("FALSE", False), (0, False)])
def test_overwrite_output_reads_flags_but_never_truthy_strings(env, text, expected):
    env.overwriteOutput = text
    assert env.overwriteOutput is expected
    assert wmx.arcpy_env.overwrite_output() is expected


def test_overwrite_output_refuses_a_value_it_cannot_read(env):
    with pytest.raises(ValueError, match="overwriteOutput"):
        env.overwriteOutput = "yes please"
    assert env.overwriteOutput is False


def test_scratch_folder_and_gdb_are_derived_from_the_scratch_workspace_and_read_only(
        env, tmp_path):
    env.scratchWorkspace = str(tmp_path / "work.gdb")
    assert Path(env.scratchFolder) == tmp_path
    assert Path(env.scratchGDB) == tmp_path / "scratch.gdb"
    env.scratchWorkspace = str(tmp_path / "folder")
    assert Path(env.scratchFolder) == tmp_path / "folder"
    with pytest.raises(AttributeError, match=r"read-only.*scratchWorkspace"):
        env.scratchFolder = str(tmp_path)
    env.scratchWorkspace = None
    assert Path(env.scratchFolder).name == "scratch"


def test_an_unknown_env_setting_is_an_attribute_error_that_suggests_the_name(env):
    with pytest.raises(AttributeError, match="overwriteOutput"):
        env.overwriteOutputs = True
    with pytest.raises(AttributeError, match="workspace"):
        _ = env.workspaces


def test_env_manager_restores_settings_and_reset_clears_them(env, tmp_path):
    env.workspace = str(tmp_path)
    with arcpy.EnvManager(overwriteOutput=True, workspace=str(tmp_path / "other")):
        assert env.overwriteOutput is True and env.workspace == str(tmp_path / "other")
    assert env.overwriteOutput is False and env.workspace == str(tmp_path)
    arcpy.ClearEnvironment("workspace")
    assert env.workspace is None
    assert "overwriteOutput" in arcpy.ListEnvironments("overwrite*")


# --- point 1: script-tool parameters --------------------------------------------------------------


def test_parameter_functions_read_sys_argv_as_arcgis_does_for_a_stand_alone_script(tmp_path):
    done = run_python("""
        from wmx import arcpy
        print(arcpy.GetArgumentCount())
        print(repr(arcpy.GetParameterAsText(0)), repr(arcpy.GetParameterAsText(1)),
              repr(arcpy.GetParameterAsText(2)), repr(arcpy.GetParameterAsText(7)))
        print(repr(arcpy.GetParameter(0)), repr(arcpy.GetParameter(1)))
        arcpy.SetParameterAsText(3, "0")
        arcpy.SetParameter(4, True)
        print(repr(arcpy.GetParameterAsText(3)), repr(arcpy.GetParameter(4)),
              repr(arcpy.GetParameterAsText(4)))
    """, "http://parent/WMServer", "#", "Ohio true 'C:/my data/ohio.wmxdb'", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "3",
        "'http://parent/WMServer' '' \"Ohio true 'C:/my data/ohio.wmxdb'\" ''",
        "'http://parent/WMServer' None",
        "'0' True 'true'",
    ]


def test_a_parameter_index_that_is_not_an_int_is_a_type_error():
    with pytest.raises(TypeError):
        arcpy.GetParameterAsText("0")
    with pytest.raises(IndexError, match="out of range"):
        arcpy.GetParameterAsText(-1)


# --- point 1: AddIDMessage ------------------------------------------------------------------------


def test_add_id_message_writes_esris_coded_message():
    arcpy.AddIDMessage("ERROR", 735, "Input Folder")
    arcpy.AddIDMessage("warning", 725, "Output File", "C:/exports/x.jxl")
    last = arcpy.GetMessageCount()
    assert arcpy.GetMessage(last - 2) == "ERROR 000735: Input Folder: Value is required"
    assert arcpy.GetMessage(last - 1) == \
        "WARNING 000725: Output File: Dataset C:/exports/x.jxl already exists."
    assert arcpy.GetSeverity(last - 1) == 1


def test_add_id_message_with_an_id_wmx_has_no_text_for_still_writes_the_code_and_arguments():
    arcpy.AddIDMessage("INFORMATIVE", 1234, "one", "two")
    assert arcpy.GetMessage(arcpy.GetMessageCount() - 1) == "Message 001234: one two"
    with pytest.raises(ValueError, match="ERROR, WARNING or INFORMATIVE"):
        arcpy.AddIDMessage("FATAL", 1)


# --- point 1: what wmx does not provide -----------------------------------------------------------


@pytest.mark.parametrize("name", ["da", "management", "mapping", "mp", "Describe", "Exists",
                                  "GetCount_management", "Buffer_analysis"])
def test_an_arcpy_name_wmx_does_not_provide_is_one_clear_error_at_attribute_access(name):
    with pytest.raises(AttributeError) as caught:
        getattr(arcpy, name)
    text = str(caught.value)
    assert f"arcpy.{name} is not provided by wmx" in text
    assert "SynchronizeJobData" in text and "ValueTable" in text  # what wmx does provide
    assert "ArcGIS" in text


def test_probing_for_arcpy_modules_still_works():
    """``hasattr(arcpy, "mp")`` is how scripts tell ArcMap from Pro: it must say False."""
    assert hasattr(arcpy, "mp") is False
    assert getattr(arcpy, "mapping", None) is None
    assert hasattr(wmx, "da") is False


def test_import_wmx_as_arcpy_gives_the_same_clear_error():
    with pytest.raises(AttributeError, match=r"arcpy\.Describe is not provided by wmx"):
        wmx.Describe("C:/data.gdb")


def test_importing_an_arcpy_submodule_from_the_shim_is_a_clear_import_error():
    with pytest.raises(ImportError, match=r"arcpy\.da is not provided by wmx"):
        import wmx.arcpy.da  # noqa: F401
    with pytest.raises(ImportError, match=r"arcpy\.sa is not provided by wmx"):
        from wmx.arcpy import sa  # noqa: F401


def test_the_shim_offers_the_arcpy_face_functions():
    for name in ("env", "EnvManager", "GetParameterAsText", "SetParameterAsText",
                 "GetParameter", "SetParameter", "GetArgumentCount", "AddIDMessage",
                 "ResetEnvironments", "ClearEnvironment", "ListEnvironments"):
        assert getattr(arcpy, name) is getattr(wmx, name)
        assert name in arcpy.__all__


def test_the_arcpy_compatibility_doc_examples_run(monkeypatch):
    import doctest

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the examples set sys.argv
    doc = Path(__file__).resolve().parent.parent / "docs" / "arcpy-compatibility.md"
    try:
        outcome = doctest.testfile(str(doc), module_relative=False,
                                   optionflags=doctest.ELLIPSIS)
    finally:
        arcpy.ResetEnvironments()
    assert outcome.attempted >= 15
    assert outcome.failed == 0


def test_a_server_that_drops_connections_leaves_no_urllib3_lines_in_a_scripts_log(tmp_path):
    done = run_python("""
        import logging, socket, threading
        logging.basicConfig(level=logging.WARNING)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(50)

        def drop_every_connection():
            while True:
                connection, _ = listener.accept()
                connection.recv(4096)
                connection.close()

        threading.Thread(target=drop_every_connection, daemon=True).start()
        import wmx
        url = "http://127.0.0.1:%d/arcgis/rest/services/T/WMServer" % listener.getsockname()[1]
        try:
            wmx.open_repository(url).info()
        except Exception as error:
            print("error:", error)
    """, cwd=tmp_path)
    assert "error: " in done.stdout
    for transport_detail in ("Retrying", "Retry(total", "HTTPConnection", "object at 0x",
                             "urllib3"):
        assert transport_detail not in done.stdout + done.stderr


def test_a_workflow_manager_tool_wmx_lacks_is_explained_in_the_toolbox_namespace_too():
    with pytest.raises(NotProvidedError, match=r"arcpy\.wmx\.CreateWorkflowDatabase is not "
                                               r"provided by wmx"):
        arcpy.wmx.CreateWorkflowDatabase  # noqa: B018
    assert not hasattr(arcpy.wmx, "CreateWorkflowDatabase")
    assert hasattr(arcpy.wmx, "SynchronizeJobData")
