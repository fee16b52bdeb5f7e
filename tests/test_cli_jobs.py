"""``wmx jobs``: day-to-day job work and test data from the command line, on a repository file
and on a real ``wmx serve`` over HTTP (issue 11, point 5). The work itself runs the command
line in this process (fast); the errors and exit codes run it as a real process."""

from __future__ import annotations

import contextlib

import pytest

from tests.cli_helpers import wmx, wmx_here, wmx_here_json, wmx_json
from tests.http_helpers import ADMIN, make_repository, running_server

ACTING = {"WMX_USER": ADMIN}


@pytest.fixture(params=["file", "http"])
def location(request, tmp_path):
    """The same repository, named by its path or by the URL of a server publishing it."""
    path = make_repository(tmp_path)
    with contextlib.ExitStack() as stack:
        if request.param == "file":
            yield str(path)
        else:
            yield stack.enter_context(running_server(path)).url


def test_jobs_create_count_makes_a_realistic_bulk_that_list_shows_by_name(location):
    code, created = wmx_here_json("jobs", "create", location, "--count", "25", "--seed", "3",
                             env=ACTING)
    assert code == 0 and len(created["data"]["created"]) == 25
    code, listed = wmx_here_json("jobs", "list", location, env=ACTING)
    jobs = listed["data"]["jobs"]
    assert code == 0 and listed["data"]["total"] == 25
    assert len({job["job_type"] for job in jobs}) > 1
    assert len({job["priority_name"] for job in jobs}) > 1
    assert {"closed", "created"} <= {job["stage_name"] for job in jobs}
    assert all(not job["job_type"].isdigit() for job in jobs)
    text = wmx_here("jobs", "list", location, "--limit", "2", env=ACTING)
    assert text.returncode == 0 and "2 of 25 job(s)" in text.stdout


def test_jobs_show_update_close_and_delete_one_job(location):
    assert wmx_here("jobs", "create", location, "--type", "Data Edits", "--name", "Fix roads",
               env=ACTING).returncode == 0
    shown = wmx_here("jobs", "show", location, "1", env=ACTING)
    assert shown.returncode == 0
    assert "Fix roads" in shown.stdout and "Data Edits" in shown.stdout
    assert "Created job 1" in shown.stdout  # the history
    updated = wmx_here("jobs", "update", location, "1", "--description", "both lanes",
                  "--assign", "editor1", env=ACTING)
    assert updated.returncode == 0, updated.stderr
    assert wmx_here("jobs", "close", location, "1", env=ACTING).returncode == 0
    code, report = wmx_here_json("jobs", "show", location, "1", env=ACTING)
    assert code == 0
    job = report["data"]["job"]
    assert (job["description"], job["assigned_to"], job["stage_name"]) == \
        ("both lanes", "editor1", "closed")
    assert wmx_here("jobs", "delete", location, "1", env=ACTING).returncode == 0
    _code, report = wmx_here_json("jobs", "list", location, env=ACTING)
    assert report["data"]["total"] == 0


def test_jobs_errors_are_one_coded_line_and_write_nothing(tmp_path):
    path = make_repository(tmp_path)
    missing = wmx("jobs", "show", path, "42")
    assert missing.returncode == 1
    assert missing.stderr.startswith("ERROR 000589: ") and "42" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = wmx("jobs", "create", path, "--type", "No Such Type")
    assert unknown.returncode == 1 and "known: " in unknown.stderr
    not_an_id = wmx("jobs", "close", path, "1_0")
    assert not_an_id.returncode == 2 and "is not a job id" in not_an_id.stderr
    nothing = wmx("jobs", "update", path, "1")
    assert nothing.returncode == 1 and "Nothing to update" in nothing.stderr
    _code, report = wmx_json("jobs", "list", path)
    assert report["data"]["total"] == 0
