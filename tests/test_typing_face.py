"""A legacy script type-checks as it did against arcpy: editors and mypy must not take a
tool call for the end of the script (the suffixed tool names are made at import time, and
the shim's ``__getattr__`` raises for what it lacks)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parent.parent


def test_a_script_calling_the_suffixed_tools_type_checks_with_nothing_unreachable(
        tmp_path, monkeypatch):
    script = tmp_path / "nightly_sync.py"
    script.write_text(textwrap.dedent('''
        import wmx
        from wmx import arcpy

        result = wmx.SynchronizeJobData_wmx("parent.wmxdb", "Parent", "Child true c.wmxdb")
        reveal_type(result)
        copied = arcpy.ReplicateJobData_WMX("parent.wmxdb", "Parent", "Child true c.wmxdb")
        print(result.getOutput(0), copied.getOutput(0))
    '''), encoding="utf-8")
    monkeypatch.chdir(ROOT)
    out, err, status = mypy_api.run([
        "--warn-unreachable", "--cache-dir", str(tmp_path / "cache"), str(script)])
    assert status == 0, out + err
    assert 'Revealed type is "wmx.result.Result"' in out
