"""The benchmark runs end to end at tiny sizes and reports every figure (never timings)."""

from __future__ import annotations

import json

import pytest

from wmx import bench

FIGURES = ("raw_copy", "replicate_embedded", "replicate_http", "sync_small", "sync_large",
           "sync_scaling", "noop_sync_http", "replicate_peak_rss")
TINY = ["--smoke", "--rows", "400", "--small-rows", "150", "--rss-rows", "400",
        "--changes", "4", "--repeat", "1", "--quiet"]


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
    assert figures["replicate_peak_rss"]["rows"] == figures["raw_copy"]["rows"]
    assert "peak_rss_mb" in figures["replicate_peak_rss"]
    assert [t["figure"] for t in results["targets"]] == list(bench.TARGETS)
    for verdict in results["targets"]:
        assert {"figure", "unit", "target", "measured", "met"} <= set(verdict)
    assert results["parameters"]["rows"] == 400


def test_smoke_run_reports_every_figure_without_http(tmp_path, capsys):
    results = _run(tmp_path, "--skip-http")
    _check_common(results)
    assert results["figures"]["replicate_http"] == {"skipped": True}
    assert results["figures"]["noop_sync_http"] == {"skipped": True}
    skipped = {t["figure"]: t for t in results["targets"]}
    assert skipped["replicate_http"]["met"] is None
    table = capsys.readouterr().out
    assert "raw sqlite3 copy" in table and "replicate embedded" in table
    assert "skipped" in table


def test_smoke_run_over_http(tmp_path):
    pytest.importorskip("waitress")
    results = _run(tmp_path, "--noop-children", "2")
    _check_common(results)
    http = results["figures"]["replicate_http"]
    assert http["rows"] == results["figures"]["raw_copy"]["rows"] and http["ratio_to_raw"] > 0
    assert results["figures"]["noop_sync_http"]["children"] == 2
    assert all(t["measured"] is not None for t in results["targets"]
               if t["figure"] != "replicate_peak_rss")


def test_smoke_sizes_apply_unless_given():
    args = bench._settings(bench.build_parser().parse_args(["--smoke", "--rows", "123"]),
                           ["--smoke", "--rows", "123"])
    assert args.rows == 123 and args.small_rows == bench.SMOKE["small_rows"]
    assert args.rss_rows == bench.SMOKE["rss_rows"]
