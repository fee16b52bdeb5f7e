"""The documentation's promises: every code block either runs or says it does not, and the site
lists every page.

The convention (docs/index.md, "About the examples"): a fenced block names its language;
``python`` blocks run, a page's blocks in order in one namespace, in a temporary folder that
holds the getting-started cluster (``redlands.wmxdb`` replicated to ``ohio.wmxdb`` and
``arizona.wmxdb``; getting-started.md builds it with its own commands); ``pycon`` blocks run as
doctests; ``bash`` blocks run with bash; a block right after a ``<!-- not-runnable -->`` line
(one that needs a server elsewhere, or installs software) and every block in another language
(``text``, ``console``, ``json``, ``xml``) is shown only.
"""

from __future__ import annotations

import doctest
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import NamedTuple

import pytest

from wmx import arcpy
from wmx.repository.setup import initialise
from wmx.toolbox import TOOLS
from wmx.tools.admin import CLEAR
from wmx.tools.exchange import EXPORT, IMPORT
from wmx.tools.replication import CREATE_REPLICA, REPLICATE, SYNCHRONIZE

DOCS = Path(__file__).resolve().parent.parent / "docs"
MKDOCS = DOCS.parent / "mkdocs.yml"
NOT_RUNNABLE = "<!-- not-runnable -->"
RUN = frozenset({"python", "pycon", "bash"})
SHOWN = frozenset({"text", "console", "json", "xml"})
BUILDS_ITS_CLUSTER = frozenset({"getting-started.md"})
"""Pages whose own ``bash`` blocks build the getting-started cluster: they start empty."""
_FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[^\s`]*)[^`]*$")
"""An opening fence; what follows the language (``title=``, ``hl_lines=``) is ignored."""


class Block(NamedTuple):
    page: str
    line: int
    language: str
    code: str
    runnable: bool


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of one page, in order."""
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines))
                    if lines[i].strip() == "```"), None)
        assert end is not None, f"{page.name}:{index + 1}: a code block is never closed"
        before = next((lines[i].strip() for i in range(index - 1, -1, -1)
                       if lines[i].strip()), "")
        width = len(opening["indent"])
        code = "\n".join(line[width:] for line in lines[index + 1:end])
        found.append(Block(page.name, index + 1, opening["language"], code,
                           before != NOT_RUNNABLE))
        index = end + 1
    return found


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _runnable_pages() -> list[str]:
    return [page.name for page in pages()
            if any(b.runnable and b.language in RUN for b in blocks(page))]


def test_every_code_block_names_a_language_that_says_whether_it_runs():
    unnamed = [f"{b.page}:{b.line} [{b.language or 'no language'}]"
               for page in pages() for b in blocks(page)
               if b.language not in RUN | SHOWN]
    assert not unnamed, "name the language of these blocks (python/pycon run, " \
                        f"text/console/bash/json/xml are shown only): {unnamed}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What getting-started.md builds with the command line before its Python examples, built
    once: the children are recorded by relative paths, so each page runs on a copy."""
    folder = tmp_path_factory.mktemp("cluster")
    patch = pytest.MonkeyPatch()
    patch.chdir(folder)
    try:
        initialise("redlands.wmxdb", name="Redlands", config="quick").close()
        for name in ("Ohio", "Arizona"):
            initialise(f"{name.lower()}.wmxdb", name=name).close()
        result = arcpy.ReplicateJobData_wmx("redlands.wmxdb", "Redlands",
                                            "Ohio true ohio.wmxdb;Arizona true arizona.wmxdb")
        assert result.getOutput(0) == "0", result.getMessages()
    finally:
        patch.undo()
    return folder


def _run_pycon(block: Block, namespace: dict) -> None:
    test = doctest.DocTestParser().get_doctest(block.code, namespace, block.page,
                                               block.page, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    runner.run(test, out=report.write, clear_globs=False)
    namespace.update(test.globs)
    assert not runner.failures, f"{block.page}:{block.line}\n{report.getvalue()}"


def _run_python(block: Block, namespace: dict) -> None:
    """Run one block; a script that ends with ``sys.exit(main())`` must exit 0."""
    with redirect_stdout(io.StringIO()):
        try:
            exec(compile(block.code, f"{block.page}:{block.line}", "exec"), namespace)
        except SystemExit as exit:
            assert exit.code in (0, None), f"{block.page}:{block.line} exited {exit.code}"


def _run_bash(block: Block, folder: Path) -> None:
    """Run one shell block with bash (``-e``: the first failing command fails it), with the
    ``wmx`` of this interpreter first on the PATH."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash blocks need bash (Windows without Git Bash or WSL)")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = subprocess.run([bash, "-e", "-c", block.code], cwd=folder, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PATH": path})
    assert done.returncode == 0, f"{block.page}:{block.line}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("page", _runnable_pages())
def test_the_examples_of_each_page_run_as_written(page, cluster, tmp_path, monkeypatch):
    if page not in BUILDS_ITS_CLUSTER:
        for file in cluster.iterdir():
            shutil.copy2(file, tmp_path / file.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # pages that make their own folder
    environment = os.environ.copy()  # what a page sets (WMX_USER ...) is undone after it
    root = logging.getLogger()
    handlers = set(root.handlers)
    namespace: dict = {"__name__": "__main__"}
    try:
        for block in blocks(DOCS / page):
            if block.runnable and block.language == "pycon":
                _run_pycon(block, namespace)
            elif block.runnable and block.language == "python":
                _run_python(block, namespace)
            elif block.runnable and block.language == "bash":
                _run_bash(block, tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(environment)
        for handler in set(root.handlers) - handlers:  # a page's logging.basicConfig
            root.removeHandler(handler)
            handler.close()


def _nav_pages() -> list[str]:
    return re.findall(r":\s*([\w./-]+\.(?:md|ipynb))\s*$",
                      MKDOCS.read_text(encoding="utf-8"), re.MULTILINE)


def test_the_site_navigation_lists_every_page_once_and_nothing_else():
    on_disk = {page.name for page in pages()} | {p.name for p in DOCS.glob("*.ipynb")}
    listed = _nav_pages()
    assert sorted(listed) == sorted(on_disk)


def test_a_code_block_that_is_never_closed_is_reported_with_its_line(tmp_path):
    page = tmp_path / "broken.md"
    page.write_text("# Broken\n\n```python\nprint('the fence is never closed')\n", "utf-8")
    with pytest.raises(AssertionError, match=r"broken\.md:3"):
        blocks(page)


def test_a_fence_with_options_after_its_language_still_runs(tmp_path):
    page = tmp_path / "options.md"
    page.write_text('```python title="nightly.py"\nA\n```\n', "utf-8")
    assert [(b.language, b.code, b.runnable) for b in blocks(page)] == [("python", "A", True)]


def test_only_the_block_right_after_the_marker_is_shown_only(tmp_path):
    page = tmp_path / "marked.md"
    page.write_text(f"{NOT_RUNNABLE}\n\n```python\nA\n```\n\n```python\nB\n```\n", "utf-8")
    assert [(b.code, b.runnable) for b in blocks(page)] == [("A", False), ("B", True)]


@pytest.mark.parametrize("readme", ["README.md", "examples/README.md"])
def test_every_relative_link_of_the_readmes_names_a_file_that_exists(readme):
    """mkdocs checks the site's links; nothing else would notice a renamed page here."""
    page = DOCS.parent / readme
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
    local = [target for target in targets if "://" not in target]
    assert local or readme != "README.md"
    assert [t for t in local if not (page.parent / t).exists()] == []


def _tool_sections() -> dict[str, str]:
    """docs/tools.md cut at its second-level headings: the heading's first word -> the text."""
    text = (DOCS / "tools.md").read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.split(maxsplit=1)[0]: part for part in parts}


def test_the_tools_page_lists_every_parameter_of_every_tool_as_the_code_defines_it():
    specs = (REPLICATE, SYNCHRONIZE, EXPORT, IMPORT, CLEAR)
    assert {spec.name for spec in specs} | {CREATE_REPLICA.name} == set(TOOLS)
    sections = _tool_sections()
    for spec in specs:
        rows = re.findall(r"^\| (\d+) \| `(\w+)` \| ([^|]+) \| ([^|]+) \|", sections[spec.name],
                          re.MULTILINE)
        documented = [(int(n), name, label.strip(), kind.strip()) for n, name, label, kind in rows]
        defined = [(i, p.name, p.label, p.datatype) for i, p in enumerate(spec.parameters)]
        assert documented == defined, spec.name
    assert "CreateJobDataReplica" in sections["ReplicateJobData"]


def test_no_table_cell_escapes_a_pipe_inside_code():
    """Python-Markdown shows ``\\|`` inside a code span in a table with its backslash; write
    ``<code>a &#124; b</code>`` instead."""
    found = [f"{page.name}:{number}" for page in pages()
             for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             if line.lstrip().startswith("|") and re.search(r"`[^`]*\\\|[^`]*`", line)]
    assert not found
