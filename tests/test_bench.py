"""The benchmark runs end to end at tiny sizes and reports every figure (never timings)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import sys
import time

import pytest
import requests

from wmx import bench

FIGURES = ("raw_copy", "replicate_embedded", "replicate_http", "sync_small", "sync_large",
           "sync_scaling", "noop_sync_http", "replicate_peak_rss", "esri", "postgres")
TINY = ["--smoke", "--rows", "400", "--small-rows", "150", "--rss-rows", "400",
        "--changes", "4", "--repeat", "1", "--esri-jobs", "2,5", "--esri-latency", "0",
        "--serve-writes", "12", "--serve-clients", "3", "--quiet"]


def _run(tmp_path, *extra: str) -> dict:
    output = tmp_path / "bench.json"
    assert bench.main([*TINY, *extra, "--output", str(output)]) == 0
    return json.loads(output.read_text(encoding="utf-8"))


def _check_common(results: dict) -> None:
    assert set(FIGURES) <= set(results["figures"])
    figures = results["figures"]
    for key in ("raw_copy", "replicate_embedded"):
        assert figures[key]["rows"] > 0
        assert figures[key]["rows_per_s"] > 0
    assert figures["replicate_embedded"]["rows"] == figures["raw_copy"]["rows"]
    assert figures["replicate_embedded"]["ratio_to_raw"] > 0
    for key in ("sync_small", "sync_large"):
        assert figures[key]["changed_jobs"] == 4
        assert figures[key]["seconds"] > 0 and figures[key]["raw_seconds"] > 0
    assert figures["sync_scaling"]["ratio"] > 0 and figures["sync_scaling"]["raw_ratio"] > 0
    _check_changeset(results)
    assert figures["replicate_peak_rss"]["rows"] == figures["raw_copy"]["rows"]
    assert "peak_rss_mb" in figures["replicate_peak_rss"]
    assert [t["figure"] for t in results["targets"]] == list(bench.TARGETS)
    for verdict in results["targets"]:
        assert {"figure", "unit", "target", "measured", "met"} <= set(verdict)
    assert results["parameters"]["rows"] == 400


def _check_changeset(results: dict) -> None:
    """The session-changeset limit of each sync is measured wherever apsw has the session
    extension (``dev`` installs it), and otherwise skipped with the reason: never missing."""
    reason = bench.bench_changeset.unavailable()
    verdicts = {t["figure"]: t for t in results["targets"]}
    for size in ("small", "large"):
        sync = results["figures"][f"sync_{size}"]
        changeset, verdict = sync["changeset"], verdicts[f"sync_changeset_{size}"]
        assert verdict["target"] == "<= 1.5" and verdict["unit"] == "sync / changeset time"
        if reason is not None:
            assert changeset == {"skipped": True, "reason": reason}
            assert verdict["measured"] is None and verdict["met"] is None
            continue
        assert changeset["seconds"] > 0 and changeset["bytes"] > 0
        assert len(changeset["samples"]) == len(sync["samples"])  # one per timed sync
        assert changeset["changed_rows"] == sync["changed_rows"] == 2 * sync["changed_jobs"]
        assert changeset["ratio"] == sync["seconds"] / changeset["seconds"]
        assert verdict["measured"] == changeset["ratio"]
        assert changeset["apsw"] and changeset["sqlite"]


def _check_postgres(results: dict) -> None:
    """The PostgreSQL figures are there, or skipped with a reason (never without PostgreSQL
    where CI requires it)."""
    figure = results["figures"]["postgres"]
    verdicts = {t["figure"]: t for t in results["targets"]}
    if figure.get("skipped"):
        assert figure["reason"]
        assert os.environ.get("WMX_REQUIRE_POSTGRES") != "1" or \
            figure["reason"] == "--skip-postgres", figure["reason"]
        assert verdicts["replicate_postgres"]["measured"] is None
        assert verdicts["serve_postgres_scaling"]["measured"] is None
        return
    raw, copied, serve = figure["raw_copy"], figure["replicate"], figure["serve"]
    assert raw["rows"] == copied["rows"] > 0 and raw["rows_per_s"] > 0
    sync = figure["sync"]
    for size in ("small", "large"):  # the SQLite sync figures' sizes and changes
        sqlite_sync = results["figures"][f"sync_{size}"]
        for key in ("rows", "changed_jobs", "changed_rows"):
            assert sync[size][key] == sqlite_sync[key]
        assert len(sync[size]["samples"]) == len(sqlite_sync["samples"])
    assert sync["ratio"] == sync["large"]["seconds"] / sync["small"]["seconds"] > 0
    assert copied["ratio_to_raw_copy"] == raw["seconds"] / copied["seconds"]
    assert serve["writes"] == 12 and serve["clients"] == 3
    for key in ("one_process", "two_processes"):
        assert serve[key]["writes_per_s"] == 12 / serve[key]["seconds"] > 0
        if sys.platform.startswith("linux"):  # where the cores went, read from /proc
            cores = [serve[key][name] for name in ("server_cpu_s", "machine_busy_cores")]
            assert all(value is not None and value > 0 for run in cores for value in run)
            # 0 when the server runs on another machine
            assert all(value is not None and value >= 0 for value in serve[key][
                "postgres_cpu_s"])
            assert all(busy <= os.cpu_count() + 0.01  # type: ignore[operator]
                       for busy in serve[key]["machine_busy_cores"])
    assert serve["ratio"] == serve["one_process"]["seconds"] / serve["two_processes"]["seconds"]
    assert verdicts["replicate_postgres"]["measured"] == copied["ratio_to_raw_copy"]
    assert verdicts["serve_postgres_scaling"]["measured"] == serve["ratio"]
    assert verdicts["serve_postgres_scaling"]["target"] == ">= 1.5"


def _settings(*argv: str) -> argparse.Namespace:
    return bench._settings(bench.build_parser().parse_args(list(argv)), list(argv))


def test_smoke_run_reports_every_figure_without_http(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "ESRI_DOUBLE", tmp_path / "tests" / "esri_double.py")
    results = _run(tmp_path, "--skip-http", "--skip-postgres")
    _check_common(results)
    assert results["figures"]["postgres"] == {"skipped": True, "reason": "--skip-postgres"}
    assert results["figures"]["replicate_http"] == {"skipped": True}
    assert results["figures"]["noop_sync_http"] == {"skipped": True}
    skipped = {t["figure"]: t for t in results["targets"]}
    assert skipped["replicate_http"]["met"] is None
    table = capsys.readouterr().out
    assert "raw sqlite3 copy" in table and "replicate embedded" in table
    assert "skipped" in table
    esri = results["figures"]["esri"]
    assert esri["skipped"] is True and "esri_double.py is not here" in esri["reason"]
    assert skipped["esri_first_sync"]["met"] is None and skipped["esri_noop_sync"]["met"] is None
    assert "Esri server (double)" in table
    assert "PostgreSQL" in table and "skipped (--skip-postgres)" in table


def test_smoke_run_over_http_carries_the_esri_figures_targets_and_verdicts(tmp_path, capsys):
    pytest.importorskip("waitress")
    results = _run(tmp_path, "--noop-children", "2")
    _check_common(results)
    _check_postgres(results)
    http = results["figures"]["replicate_http"]
    assert http["rows"] == results["figures"]["raw_copy"]["rows"] and http["ratio_to_raw"] > 0
    assert results["figures"]["noop_sync_http"]["children"] == 2
    assert all(t["measured"] is not None for t in results["targets"]
               if t["figure"] != "replicate_peak_rss" and t["figure"] not in
               bench.bench_postgres.TARGETS)
    esri = results["figures"]["esri"]
    assert [size["jobs"] for size in esri["sizes"]] == [2, 5]
    assert esri["sizes"][0]["noop_sync"]["latency_floor_s"] == 0
    assert esri["connections"] == 8 and esri["latency_s"] == 0
    verdicts = {t["figure"]: t for t in results["targets"]}
    for key in ("first_sync", "noop_sync"):
        verdict = verdicts[f"esri_{key}"]
        assert verdict["jobs"] == 5 and verdict["target"] == "< 60" and verdict["met"] is True
        assert verdict["measured"] == esri["sizes"][1][key]["seconds"]
    assert results["parameters"]["esri_jobs"] == [2, 5]
    table = capsys.readouterr().out
    assert "Esri server (double, 0 ms/request, 8 connections)" in table
    assert "as parent, 5 jobs: nothing new" in table and "requests" in table
    if not results["figures"]["postgres"].get("skipped"):
        assert "replicate embedded -> PostgreSQL" in table and "two wmx serve" in table


def test_without_a_server_or_the_programs_to_start_one_the_postgres_figures_say_why(
        tmp_path, monkeypatch):
    pytest.importorskip("psycopg")
    from wmx.store import postgres_cluster

    monkeypatch.delenv(bench.bench_postgres.SERVER_VARIABLE, raising=False)
    monkeypatch.setattr(postgres_cluster, "find_program", lambda name: None)
    figure = bench.bench_postgres.measure(_settings("--quiet"), {}, bench.replicate_once,
                                          bench.Bench(_settings(), tmp_path).timed_syncs,
                                          lambda text: None)
    assert figure["skipped"] is True and "initdb/pg_ctl not found" in figure["reason"]
    assert bench.bench_postgres.measured(figure) == {
        key: None for key in bench.bench_postgres.TARGETS}


def test_without_apsw_the_changeset_figures_are_skipped_with_the_reason(tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.setattr(bench.bench_changeset, "unavailable",
                        lambda: "apsw is not installed (pip install 'wmx[bench]')")
    results = _run(tmp_path, "--skip-http", "--skip-postgres", "--skip-esri")
    _check_common(results)
    assert results["figures"]["sync_large"]["changeset"]["reason"].startswith("apsw is not")
    table = capsys.readouterr().out
    assert re.search(r"same changes as a session changeset +skipped \(apsw is not installed",
                     table)


def test_the_changeset_baseline_applies_exactly_the_recorded_changes(tmp_path):
    pytest.importorskip("apsw")
    if bench.bench_changeset.unavailable():
        pytest.skip(bench.bench_changeset.unavailable())
    source = tmp_path / "source.db"
    with contextlib.closing(bench._raw_connect(source)) as db:
        db.execute(bench._element_table_sql())
        bench._raw_upsert(db, [("g1", "job", 1, None, "Job 1", "{}", None, 1, "a", 0)])
    pair = bench.bench_changeset.ChangesetPair(source, tmp_path / "r.db", tmp_path / "a.db")
    rows = [("g1", "job", 1, None, "Job 1", '{"x": 1}', None, 2, "b", 0),
            ("g2", "activity", 5, "g1", None, "{}", b"\x00", 3, "b", 0)]
    assert pair.measure(functools.partial(bench._raw_upsert, rows=rows), bench.settle) > 0
    assert pair.sizes[0] > 0 and len(pair.samples) == 1
    columns = ", ".join(bench.RAW_COLUMNS)
    for path in (pair.recorded, pair.applied):
        with contextlib.closing(bench._raw_connect(path)) as db:
            assert db.execute(f"SELECT {columns} FROM elements ORDER BY seq").fetchall() == [
                (*rows[0], 2), (*rows[1], 3)]


def test_the_esri_figures_count_every_request_of_the_first_run_and_of_a_sync_with_nothing_new(
        tmp_path):
    runner = bench.Bench(_settings("--esri-jobs", "3,7", "--esri-latency", "0", "--quiet"),
                         tmp_path)
    runner.esri_sync()
    sizes = runner.figures["esri"]["sizes"]
    assert [size["jobs"] for size in sizes] == [3, 7]
    for size in sizes:
        jobs = size["jobs"]
        assert size["rows"] > jobs  # every job arrived at the child, with its sub-records
        for key in ("first_sync", "noop_sync"):
            figure = size[key]
            assert figure["seconds"] > 0
            assert figure["requests"] == sum(figure["by_request"].values())
            assert figure["requests_per_job"] == figure["requests"] / jobs
            # where the time went: both processes worked, no latency was asked
            assert figure["client_cpu_s"] > 0 and figure["double_cpu_s"] > 0
            assert figure["latency_floor_s"] == 0
            # each job is read (so the count is the client's, not a constant)
            assert figure["by_request"]["GET jobs/{id}"] == jobs
            assert figure["unimplemented"] == [] and figure["internal_errors"] == []
        # first contact probes once (the one request outside Esri's surface), then never
        assert size["first_sync"]["undocumented"] == ["GET replication/x-node"]
        assert size["noop_sync"]["undocumented"] == []
        assert "GET jobs/{id}/attachments/{id}/content" in size["first_sync"]["by_request"]
        assert "GET jobs/{id}/attachments/{id}/content" not in size["noop_sync"]["by_request"]
    assert not list(tmp_path.glob("esri-state-*")), "the state folders are removed"


def test_skip_esri_skips_the_esri_figures_and_says_so(tmp_path):
    runner = bench.Bench(_settings("--skip-esri", "--quiet"), tmp_path)
    runner.esri_sync()
    assert runner.figures["esri"] == {"skipped": True, "reason": "--skip-esri"}


def test_the_double_process_waits_the_latency_asked_and_counts_requests_since_the_last_summary():
    with bench.EsriDoubleProcess(bench.ESRI_DOUBLE, 2, 0.3) as double:
        assert double.requests()["requests"] == 0
        started = time.perf_counter()
        assert requests.get(f"{double.url}/jobs", params={"f": "json"}, timeout=30).json() == {
            "jobIds": [1, 2]}
        assert time.perf_counter() - started >= 0.3
        requests.get(f"{double.url}/jobs/2/holds", params={"f": "json"}, timeout=30)
        summary = double.requests()
        assert summary["by_request"] == {"GET jobs": 1, "GET jobs/{id}/holds": 1}
        assert summary["cpu_s"] >= 0
        assert double.requests()["requests"] == 0


def test_a_damaged_double_file_is_a_clear_error_not_a_hang(tmp_path):
    damaged = tmp_path / "esri_double.py"
    damaged.write_text("class EsriDouble(:\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match=r"stopped before sending its URL \(exit code 1\)"):
        bench.EsriDoubleProcess(damaged, 2, 0.0)


@pytest.mark.parametrize("sizes", ["0", "abc", "", "10,-1"])
def test_esri_job_sizes_must_be_positive_counts(sizes, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.build_parser().parse_args(["--esri-jobs", sizes])
    assert exit_info.value.code == 2
    assert "positive job counts" in capsys.readouterr().err


def test_smoke_sizes_apply_unless_given():
    args = _settings("--smoke", "--rows", "123")
    assert args.rows == 123 and args.small_rows == bench.SMOKE["small_rows"]
    assert args.rss_rows == bench.SMOKE["rss_rows"]
    assert args.esri_jobs == bench.SMOKE["esri_jobs"] and args.esri_latency == 0.005
    assert _settings("--smoke", "--esri-jobs", "7").esri_jobs == (7,)
    assert _settings().esri_jobs == (1_000, 10_000)
