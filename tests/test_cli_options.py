"""The command line's shared options, help, JSON report and exit codes (issue 11, point 5)."""

from __future__ import annotations

import argparse
import json

import wmx
from tests.cli_helpers import wmx as run_wmx
from tests.cli_helpers import wmx_here, wmx_here_json, wmx_json
from tests.conftest import ADMIN, make_cluster
from wmx.cli import build_parser


def _table(cluster) -> str:
    return ";".join(f"{t.name} true {t.url}" for t in cluster.targets())


def test_version_prints_the_package_version():
    done = run_wmx("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"wmx {wmx.__version__}"


def test_verbose_quiet_user_and_json_are_accepted_before_and_after_the_subcommand(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    before = run_wmx("-v", "--user", ADMIN, "--json", "sync", cluster.parent_path, "Parent",
                     _table(cluster))
    after = run_wmx("sync", cluster.parent_path, "Parent", _table(cluster), "-q", "-v",
                    "--user", ADMIN, "--json")
    assert before.returncode == after.returncode == 0, (before.stderr, after.stderr)
    for done in (before, after):
        assert "pulled 0 change(s) from Child1" in done.stderr  # -v: the engine's log
        assert json.loads(done.stdout)["command"] == "sync"  # --json, not reset by the sync


def test_quiet_drops_informative_lines_and_keeps_warnings(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    table = f"Ghost true {tmp_path / 'ghost.wmxdb'};{_table(cluster)}"
    quiet = wmx_here("sync", cluster.parent_path, "Parent", table, "-q")
    assert quiet.returncode == 3
    assert "Start Time" not in quiet.stdout
    assert "WARNING 999981: Ghost" in quiet.stdout


def test_json_report_of_a_sync_with_a_failed_child_says_so_and_exits_3(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    table = f"Ghost true {tmp_path / 'ghost.wmxdb'};{_table(cluster)}"
    code, report = wmx_here_json("sync", cluster.parent_path, "Parent", table)
    assert code == report["exit_code"] == 3 and report["ok"] is False
    assert report["schema"] == "wmx-cli/1" and report["command"] == "sync"
    assert report["data"]["tool"] == "SynchronizeJobData"
    assert [child["name"] for child in report["data"]["children"]] == ["Ghost", "Child1"]
    assert any(m["code"] == 999981 and m["severity"] == 1 for m in report["messages"])


def test_a_tool_error_in_json_is_a_json_object_with_its_code_and_exit_code_1(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    code, report = wmx_here_json("sync", cluster.parent_path, "NotTheName", _table(cluster))
    assert code == report["exit_code"] == 1
    assert report["error"]["code"] == 800
    assert "Failed to execute (SynchronizeJobData)." in report["error"]["message"]


def test_a_usage_error_exits_2_in_text_and_in_json(tmp_path):
    text = run_wmx("sync", "--no-such-option")
    assert text.returncode == 2 and "usage: wmx sync" in text.stderr
    code, report = wmx_json("status")
    assert code == 2 and report["error"]["message"].startswith("wmx status:")


def test_user_option_acts_as_that_user_unless_wmx_user_is_set(tmp_path):
    cluster = make_cluster(tmp_path, children=1, replicated=False)
    assert wmx_here("jobs", "create", cluster.parent_path, "--user", "alice").returncode == 0
    assert wmx_here("jobs", "create", cluster.parent_path, "--user", "alice",
                   env={"WMX_USER": "bob"}).returncode == 0
    with cluster.parent() as parent:
        assert [parent.get_job(i).created_by for i in sorted(parent.jobs())] == ["alice", "bob"]


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "wmx"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _subparsers(sub, f"{prefix} {name}")


def test_every_command_and_option_has_help_text_and_every_command_an_example():
    missing = []
    for name, sub in _subparsers(build_parser()):
        if "example:" not in (sub.epilog or ""):
            missing.append(f"{name}: no example")
        missing += [f"{name} {action.dest}: no help" for action in sub._actions
                    if not action.help and not isinstance(action, argparse._SubParsersAction)]
    assert not missing


def test_replicate_help_does_not_offer_a_last_sync_time():
    done = run_wmx("replicate", "--help")
    assert done.returncode == 0
    assert "last_sync" not in done.stdout.lower() and "NAME CONNECTED URL" in done.stdout
    assert "LAST_SYNC_TIME" in run_wmx("sync", "--help").stdout


def test_bench_passes_every_argument_through_to_the_benchmark():
    done = run_wmx("bench", "--smoke", "--help")
    assert done.returncode == 0, done.stderr
    assert "python -m wmx.bench" in done.stdout and "--smoke" in done.stdout


def test_replicate_and_sync_take_the_token_from_a_token_file(tmp_path):
    """A scheduled task keeps the token of a secured parent in a file only its account can
    read: ``--token-file`` presents it, as WMX_TOKEN would, and never prints it."""
    from tests.cli_helpers import wmx_here
    from tests.http_helpers import ADMIN, make_repository, running_server

    secret = "tok-3f9a1c"
    parent = make_repository(tmp_path, "Parent")
    child = make_repository(tmp_path, "Child")
    token_file = tmp_path / "token.txt"
    token_file.write_text(f"{secret}\n", encoding="utf-8")
    with running_server(parent, token=secret) as server:
        rows = f"Child true {child}"
        user = {"WMX_USER": ADMIN, "WMX_TOKEN": ""}
        refused = wmx_here("replicate", server.url, "Parent", rows, env=user)
        assert refused.returncode != 0
        done = wmx_here("replicate", server.url, "Parent", rows, "--token-file", token_file,
                        env=user)
        assert done.returncode == 0, done.stdout + done.stderr
        done = wmx_here("sync", server.url, "Parent", rows, "--token-file", token_file,
                        env=user)
        assert done.returncode == 0, done.stdout + done.stderr
        assert secret not in done.stdout + done.stderr
        missing = wmx_here("sync", server.url, "Parent", rows,
                           "--token-file", tmp_path / "nowhere.txt", env=user)
        assert missing.returncode != 0
        assert "Cannot read the token file" in missing.stdout + missing.stderr
