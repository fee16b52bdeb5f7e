"""Exchange files carry a checksum and the identity of their cluster (SPEC §3, issue 8 item 10).

Seen before: a truncated ``.jxl`` imported with COMBINE wrote 5,000 rows before failing; a file
with one character flipped imported silently with wrong attachment bytes; a file exported from
another cluster imported with exit 0 and overwrote its configuration. Now a file is verified
completely (checksum, element count, every element, where it came from) in a first streaming
pass, and a refused file leaves the repository exactly as it was, COMBINE and REPLACE alike,
with ERROR 999985.
"""

from __future__ import annotations

import base64
import re
import shutil
import tracemalloc
from pathlib import Path

import pytest

from tests.conftest import ADMIN, Cluster, make_cluster
from tests.guarantees_helpers import bulk_jobs
from wmx import arcpy
from wmx.engine import exchange
from wmx.engine.exchange import (
    PAGE_SIZE,
    ExchangeFileRefused,
    MergeMode,
    export_repository,
    import_file,
    verify_file,
)
from wmx.engine.outcome import ChildTarget
from wmx.engine.replicate import replicate
from wmx.errors import INCOMPATIBLE_REPOSITORY, ExecuteError
from wmx.repository import open_repository
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.setup import initialise

ATTACHMENT = bytes(range(256)) * 8


def _state(path: Path) -> tuple[list[tuple], int]:
    with EmbeddedRepository(path) as repository:
        return repository.all_rows(), repository.info().seq


def _export(repository_path: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    with EmbeddedRepository(repository_path) as repository:
        return export_repository(repository, folder)[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Cluster, Path]:
    """A cluster whose parent holds more than one import page of jobs and an attachment, and
    the parent's export (built once: the tests using it only see imports refused)."""
    folder = tmp_path_factory.mktemp("exported")
    cluster = make_cluster(folder)
    with cluster.parent() as parent:
        bulk_jobs(parent, PAGE_SIZE + 500, description="bulk")
        job = parent.create_job(1, user=ADMIN)
        parent.add_attachment(job.id, "scan.bin", ATTACHMENT, user=ADMIN)
    return cluster, _export(cluster.parent_path, folder / "out")


@pytest.fixture
def big_export(exported, tmp_path: Path) -> Path:
    return Path(shutil.copy(exported[1], tmp_path / exported[1].name))


@pytest.fixture
def child(exported) -> Path:
    return exported[0].child_paths["Child1"]


def _import_refused(path: Path, jxl: Path, mode: MergeMode, match: str) -> None:
    before = _state(path)
    with EmbeddedRepository(path) as repository, pytest.raises(ExchangeFileRefused,
                                                                match=match):
        import_file(repository, jxl, mode)
    assert _state(path) == before, "a refused file wrote something"


@pytest.mark.parametrize("mode", list(MergeMode))
def test_a_truncated_file_is_refused_before_the_first_write(child, big_export, mode):
    text = big_export.read_bytes()
    cut = big_export.with_name("cut.jxl")
    cut.write_bytes(text[:int(len(text) * 0.8)])
    _import_refused(child, cut, mode, "truncated or damaged")


@pytest.mark.parametrize("mode", list(MergeMode))
def test_a_file_cut_exactly_before_its_checksum_is_refused(child, big_export, mode):
    text = big_export.read_text()
    cut = big_export.with_name("cut.jxl")
    cut.write_text(text[:text.index("  <Checksum")] + "</WMXExchange>\n")
    _import_refused(child, cut, mode, "no checksum")


@pytest.mark.parametrize("mode", list(MergeMode))
def test_one_flipped_character_in_attachment_bytes_is_refused(child, big_export, mode):
    text = big_export.read_text()
    encoded = base64.b64encode(ATTACHMENT).decode()
    at = text.index(encoded) + 100
    flipped = big_export.with_name("flipped.jxl")
    flipped.write_text(text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:])
    _import_refused(child, flipped, mode, "does not match its checksum")


@pytest.mark.parametrize("where", ["a job body", "the header", "an element count"])
def test_any_altered_part_is_refused(child, big_export, where):
    text = big_export.read_text()
    if where == "a job body":
        altered = text.replace('"description":"bulk"', '"description":"bulK"', 1)
    elif where == "the header":
        altered = re.sub(r'repository="[^"]*"', 'repository="Elsewhere"', text, count=1)
    else:
        altered = re.sub(r'elements="(\d+)"', lambda m: f'elements="{int(m[1]) - 1}"', text)
    assert altered != text
    damaged = big_export.with_name("damaged.jxl")
    damaged.write_text(altered)
    _import_refused(child, damaged, MergeMode.COMBINE,
                    "does not match its checksum")


def test_an_intact_file_imports_with_the_attachment_bytes_it_was_given(exported, big_export):
    with EmbeddedRepository(exported[0].child_paths["Child2"]) as sibling:
        report, _ = import_file(sibling, big_export, MergeMode.COMBINE)
        job = max(sibling.job_ids())
        assert report.inserted >= PAGE_SIZE
        attachment = sibling.attachments(job)[0]
        assert sibling.attachment_content(job, attachment.id) == ATTACHMENT


def test_a_file_from_another_cluster_is_refused_both_ways(exported, tmp_path):
    other = make_cluster(tmp_path / "other", children=1)
    foreign = _export(other.parent_path, tmp_path / "foreign")
    for target in (exported[0].parent_path, exported[0].child_paths["Child1"]):
        _import_refused(target, foreign, MergeMode.COMBINE, "comes from another cluster")
        _import_refused(target, foreign, MergeMode.REPLACE, "cannot replace")


def test_files_between_a_parent_its_children_and_siblings_are_accepted(cluster, tmp_path):
    """Disconnected synchronization by file goes both ways: parent to child, child to parent,
    and a sibling's file is of the same cluster too."""
    with cluster.child("Child1") as child:
        child.create_job(1, user=ADMIN)
    from_child = _export(cluster.child_paths["Child1"], tmp_path / "c1")
    from_parent = _export(cluster.parent_path, tmp_path / "p")
    with cluster.parent() as parent:
        assert import_file(parent, from_child)[0].inserted >= 1
    with cluster.child("Child2") as sibling:
        assert import_file(sibling, from_child)[0].inserted >= 1
        import_file(sibling, from_parent, MergeMode.REPLACE)
        assert sibling.info().parent_node_id == _node_id(cluster.parent_path)


def _node_id(path: Path) -> str:
    with EmbeddedRepository(path) as repository:
        return repository.info().node_id


def test_replace_never_turns_the_parent_into_a_child_of_its_own_child(cluster, tmp_path):
    from_child = _export(cluster.child_paths["Child1"], tmp_path / "c1")
    _import_refused(cluster.parent_path, from_child, MergeMode.REPLACE, "cannot replace")


def test_a_disconnected_child_is_made_from_the_replicate_file_and_syncs_by_file(tmp_path):
    """Replicate with connected=false writes the file; a new repository loads it with REPLACE
    and becomes the parent's child; its later export is accepted back at the parent."""
    cluster = make_cluster(tmp_path / "cluster", children=0)
    folder = tmp_path / "carry"
    folder.mkdir()
    with cluster.parent() as parent:
        outcome = replicate(parent, [ChildTarget("Remote", str(folder), connected=False)],
                            open_repository)
    assert outcome.status_code == 0, [child.error for child in outcome.children]
    (jxl,) = folder.glob("*.jxl")
    remote = tmp_path / "remote.wmxdb"
    initialise(remote, name="Remote", config="minimum", admin=ADMIN).close()
    with EmbeddedRepository(remote) as child:
        import_file(child, jxl, MergeMode.REPLACE)
        assert child.info().parent_node_id == _node_id(cluster.parent_path)
        child.create_job(1, user=ADMIN)
    back = _export(remote, tmp_path / "back")
    with cluster.parent() as parent:
        assert import_file(parent, back)[0].inserted >= 1


def test_an_old_file_without_a_checksum_says_how_to_export_it_again(child, big_export):
    old = big_export.with_name("old.jxl")
    text = big_export.read_text().replace('format="wmx-jxl/2"', 'format="wmx-jxl/1"', 1)
    old.write_text(re.sub(r"  <Checksum[^\n]*\n", "", text))
    _import_refused(child, old, MergeMode.COMBINE,
                    "earlier wmx.*export it again with ExportJobData")


def test_the_import_tool_fails_with_999985_and_status_minus_one(child, big_export):
    text = big_export.read_bytes()
    cut = big_export.with_name("cut.jxl")
    cut.write_bytes(text[:len(text) // 2])
    before = _state(child)
    with pytest.raises(ExecuteError) as failed:
        arcpy.ImportJobData_wmx(str(cut), "COMBINE", str(child))
    assert failed.value.code == INCOMPATIBLE_REPOSITORY
    assert "ERROR 999985" in str(failed.value)
    assert failed.value.result.getOutput(0) == "-1"
    assert _state(child) == before


def test_verifying_a_large_file_keeps_memory_bounded(cluster, tmp_path):
    """The first pass holds one element at a time, not the file (nor its cleared elements)."""
    with cluster.parent() as parent:
        bulk_jobs(parent, 2000, description="x" * 4600)
    jxl = _export(cluster.parent_path, tmp_path / "out")
    tracemalloc.start()
    try:
        with jxl.open("rb") as handle:
            verify_file(handle, jxl)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert jxl.stat().st_size > 9_000_000
    assert peak < 2_000_000, peak


def test_content_saved_before_a_replicate_replaced_it_comes_back_with_import(tmp_path):
    """The way back ReplicateJobData offers (SPEC §3): a repository that was no replica held
    jobs, they were saved to an exchange file, and that file is accepted by the repository
    it came from, now a child of the cluster."""
    cluster = make_cluster(tmp_path / "cluster", children=1, replicated=False)
    with cluster.child("Child1") as stranger:
        (own,) = bulk_jobs(stranger, 1, description="its own")
    with cluster.parent() as parent:
        outcome = replicate(parent, cluster.targets(), open_repository,
                            rescue=lambda url: tmp_path)
    (saved,) = [child.saved_file for child in outcome.children]
    assert saved is not None
    with cluster.child("Child1") as child:
        report, _ = import_file(child, saved, MergeMode.COMBINE)
        assert report.inserted >= 1
        assert child.get_job(own).description == "its own"


@pytest.mark.parametrize("overwrite", [False, True])
def test_export_honours_overwrite_output_for_a_file_already_there(tmp_path, monkeypatch,
                                                                  overwrite):
    """arcpy.env.overwriteOutput: off (arcpy's default), an export never replaces a file of
    the same name (000725, nothing written); on, it does."""
    cluster = make_cluster(tmp_path / "cluster", children=1)
    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.setattr(exchange, "export_file_name", lambda name, moment: "Parent.jxl")
    existing = folder / "Parent.jxl"
    existing.write_text("an older export", encoding="utf-8")
    with arcpy.EnvManager(overwriteOutput=overwrite):
        if overwrite:
            result = arcpy.ExportJobData_wmx(str(folder), str(cluster.parent_path))
        else:
            with pytest.raises(arcpy.ExecuteError) as refused:
                arcpy.ExportJobData_wmx(str(folder), str(cluster.parent_path))
    if overwrite:
        assert result.getOutput(1) == str(existing)
        assert existing.read_text(encoding="utf-8") != "an older export"
    else:
        assert refused.value.code == 725
        assert f"Dataset {existing} already exists." in str(refused.value)
        assert existing.read_text(encoding="utf-8") == "an older export"
        assert sorted(p.name for p in folder.iterdir()) == ["Parent.jxl"]
