"""Esri's Replicate and Synchronize samples, with only the import line changed, run as
stand-alone scripts against Esri doubles at the sample's URL shapes
(``http://ServerName/arcgis/rest/services/ServerObjectName/WMServer``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.http_helpers import ADMIN
from tests.test_esri_replication import assert_documented_only, esri_server, seed_rich_job
from tests.test_tools_esri_samples import REPLICATE_SAMPLE, SYNCHRONIZE_SAMPLE

REPOSITORY = Path(__file__).resolve().parent.parent


def _run_script(folder: Path, source: str) -> subprocess.CompletedProcess:
    script = folder / "sample.py"
    script.write_text(textwrap.dedent(source) + "\nprint(result.getOutput(0))\n",
                      encoding="utf-8")
    env = {**os.environ, "WMX_STATE_DIR": str(folder / "state"), "WMX_USER": ADMIN,
           "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run([sys.executable, str(script)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_esris_replicate_and_synchronize_samples_run_against_esri_servers(tmp_path):
    with esri_server("Parent") as parent, esri_server("Ohio") as ohio, \
            esri_server("AZ") as az:
        parent.seed_replication_node(name="Parent", serverURL=parent.url, isParent=True)
        first, _ = seed_rich_job(parent)
        urls = {"parent": parent.url, "ohio": ohio.url, "az": az.url}

        replicated = _run_script(tmp_path, REPLICATE_SAMPLE.format(**urls))
        assert replicated.returncode == 0, replicated.stderr
        assert replicated.stdout.strip().splitlines()[-1] == "0"
        assert sorted(ohio.jobs) == sorted(parent.jobs) == sorted(az.jobs)

        ohio.seed_note(first, "edited in Ohio")
        synchronized = _run_script(tmp_path, SYNCHRONIZE_SAMPLE.format(**urls))
        assert synchronized.returncode == 0, synchronized.stderr
        assert synchronized.stdout.strip().splitlines()[-1] == "0"
        assert parent.notes(first) == az.notes(first) == "edited in Ohio"
        for double in (parent, ohio, az):
            assert_documented_only(double)
