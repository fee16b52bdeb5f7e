"""examples/: Esri's sample scripts, untouched but for their URLs, each run through ``wmx run``
in a fresh process as a scheduled task would run it (examples/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.http_helpers import ADMIN, running_server
from wmx import open_repository
from wmx.repository.setup import initialise

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REPLICATE = EXAMPLES / "ReplicateJobData_Example.py"
SYNCHRONIZE = EXAMPLES / "SynchronizeJobData_Example.py"
RUN_HERE = {REPLICATE.name, SYNCHRONIZE.name}


def wmx_run(script: Path, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wmx", "run", str(script)], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def assert_ran(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "WARNING" not in done.stdout + done.stderr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The three repositories examples/README.md has you create."""
    initialise(tmp_path / "parent.wmxdb", name="Parent", config="quick", admin=ADMIN).close()
    initialise(tmp_path / "ohio.wmxdb", name="Ohio_Repository", admin=ADMIN).close()
    initialise(tmp_path / "az.wmxdb", name="AZ_Repository", admin=ADMIN).close()
    with open_repository(tmp_path / "parent.wmxdb") as parent:
        parent.create_job(1, user=ADMIN, description="made at the parent")
    return tmp_path


def _jobs(path: Path) -> list[int]:
    with open_repository(path) as repository:
        return sorted(repository.jobs())


def test_every_example_script_is_run_by_this_module():
    assert {script.name for script in EXAMPLES.glob("*.py")} == RUN_HERE


def test_the_replicate_sample_makes_both_children_copies_of_the_parent(folder):
    assert_ran(wmx_run(REPLICATE, folder))

    assert _jobs(folder / "ohio.wmxdb") == _jobs(folder / "az.wmxdb") == \
        _jobs(folder / "parent.wmxdb") == [1]


def test_the_synchronize_sample_carries_an_edit_in_one_child_to_the_other(folder):
    assert_ran(wmx_run(REPLICATE, folder))
    with open_repository(folder / "ohio.wmxdb") as ohio:
        job = ohio.create_job(1, user=ADMIN, description="made in Ohio")

    assert_ran(wmx_run(SYNCHRONIZE, folder))

    assert job.id in _jobs(folder / "az.wmxdb") and job.id in _jobs(folder / "parent.wmxdb")


def test_the_samples_run_against_served_children_as_the_readme_says(folder):
    """examples/README.md, "Against servers": only the URL column changes."""
    with running_server(folder / "ohio.wmxdb") as ohio, \
            running_server(folder / "az.wmxdb") as az:
        for sample in (REPLICATE, SYNCHRONIZE):
            source = sample.read_text(encoding="utf-8")
            served = source.replace("true ohio.wmxdb", f"true {ohio.url}") \
                           .replace("true az.wmxdb", f"true {az.url}")
            assert served != source
            (folder / sample.name).write_text(served, encoding="utf-8")
            done = subprocess.run(
                [sys.executable, "-m", "wmx", "run", "--user", ADMIN, sample.name],
                cwd=folder, capture_output=True, text=True, timeout=120)
            assert_ran(done)

        assert _jobs(folder / "az.wmxdb") == _jobs(folder / "parent.wmxdb") == [1]
