"""docs/notebook.ipynb executed from top to bottom, as CI and the documentation site run it.

The notebook is part of the documentation: a cell that raises, or a view that no longer says
what the prose above it claims, fails here. Skipped only where nbclient is not installed
(``pip install ".[docs]"`` installs it; .ci/run does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "notebook.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The notebook after one run; its temporary folder lives under pytest's."""
    folder = str(tmp_path_factory.mktemp("notebook"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env={**os.environ, "TMPDIR": folder, "TEMP": folder, "TMP": folder})
    return notebook


def _outputs(notebook: Any, mime: str) -> list[str]:
    """Every output of the given type, in cell order (streams under ``text/plain``)."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"error: {output.get('ename')}")
            elif output.get("output_type") == "stream" and mime == "text/plain":
                found.append(output.get("text", ""))
            elif mime in output.get("data", {}):
                found.append(output["data"][mime])
    return found


def test_the_notebook_runs_without_an_error(executed):
    errors = [cell for cell in executed.cells
              if any(o.get("output_type") == "error" for o in cell.get("outputs", []))]
    assert not errors
    assert all(cell.get("outputs") is not None for cell in executed.cells
               if cell.cell_type == "code")


def test_the_notebook_shows_each_result_as_its_html_view(executed):
    html = _outputs(executed, "text/html")
    views = [text for text in html if "wmx-result" in text]
    assert len(views) == 3, "replicate, synchronize and the partly failed synchronize"
    replicate, synchronize, partial = views
    assert "Succeeded" in replicate and "ReplicateJobData" in replicate
    assert "Conflicts (1)" in synchronize
    assert "Completed with errors" in partial and "Texas" in partial
    assert ">Succeeded<" not in partial


def test_the_notebook_shows_the_last_sync_table_and_the_conflict_as_dataframes(executed):
    tables = [text for text in _outputs(executed, "text/html") if "dataframe" in text]
    last_sync = next(text for text in tables if "last_sync_time" in text)
    assert "Ohio" in last_sync and "Arizona" in last_sync
    conflict = next(text for text in tables if "lost version from" in text)
    assert "Survey block 1 (checked in Ohio)" in conflict
    printed = "".join(_outputs(executed, "text/plain"))
    assert "job 1 everywhere: True" in printed


def test_the_committed_notebook_carries_no_outputs():
    """The site and CI execute it; stored outputs would show stale results and temp paths."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    stale = [index for index, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]
    assert not stale
