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
