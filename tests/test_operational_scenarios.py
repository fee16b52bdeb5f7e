"""What administrators really do to a cluster: restore a backup, name the parent another way,
re-replicate, clear replication information on a copy. Nothing may be lost in silence and no
advice the tools give may destroy work (SPEC §2.3 identities, §3 "Restores" and "Nothing is
destroyed without a way back")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import wmx
from tests.conftest import ADMIN, Cluster, make_cluster
from tests.http_helpers import running_server
from wmx import arcpy
from wmx.engine.outcome import ChildTarget, RunOutcome
from wmx.engine.replicate import replicate
from wmx.model.records import HoldType
from wmx.repository.embedded import EmbeddedRepository
from wmx.tools.connect import rescue_folder


def _backup(path: Path, folder: Path) -> Path:
    """A file copy of a closed repository, as an administrator's backup job takes it."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{path.stem}.backup"
    shutil.copyfile(path, copy)
    return copy


def _restore(backup: Path, path: Path) -> None:
    """Put the backup back in place of the repository (its WAL files go with the old one)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, path)


def _jobs(path: Path) -> dict[int, tuple[str, str]]:
    """Every live job of a repository: id -> (GUID, name)."""
    with EmbeddedRepository(path) as repository:
        return {job_id: (repository.read_record("job", int_id=job_id)[0],
                         repository.get_job(job_id).name) for job_id in repository.jobs()}


def _assert_no_two_jobs_share_an_id(cluster: Cluster) -> None:
    owners: dict[int, str] = {}
    for path in [cluster.parent_path, *cluster.child_paths.values()]:
        for job_id, (guid, _name) in _jobs(path).items():
            assert owners.setdefault(job_id, guid) == guid, f"job {job_id} differs in {path}"


def _assert_everything_kept(cluster: Cluster, outcome: RunOutcome, names: set[str]) -> None:
    """The recovering sync succeeded, one more converges, each job is one job everywhere and
    every job named is there."""
    assert outcome.status_code == 0, [c.error for c in outcome.children]
    cluster.sync()
    cluster.assert_converged()
    _assert_no_two_jobs_share_an_id(cluster)
    assert names <= {name for _guid, name in _jobs(cluster.parent_path).values()}


def _create(path: Path, name: str) -> int:
    with EmbeddedRepository(path) as repository:
        return repository.create_job(1, user=ADMIN, name=name).id


def _rename(path: Path, job_id: int, name: str) -> None:
    with EmbeddedRepository(path) as repository:
        repository.update_job(job_id, user=ADMIN, name=name)


# --- restores ---------------------------------------------------------------------------------


def test_a_child_restored_from_a_backup_loses_nothing_and_reuses_no_job_id(tmp_path):
    cluster = make_cluster(tmp_path)
    child = cluster.child_paths["Child1"]
    first = _create(child, "before the backup")
    assert cluster.sync().status_code == 0
    backup = _backup(child, tmp_path)
    lost = _create(child, "made after the backup")
    for round_ in range(3):
        _rename(child, first, f"edited after the backup {round_}")
    assert cluster.sync().status_code == 0

    _restore(backup, child)
    reused = _create(child, "made after the restore")
    assert reused == lost, "the restored child hands out the id its earlier self gave"
    for round_ in range(12):  # move its log past the checkpoint the parent holds
        _rename(child, first, f"edited after the restore {round_}")
    outcome = cluster.sync()

    _assert_everything_kept(cluster, outcome, {
        "made after the backup", "made after the restore", "edited after the restore 11"})
    assert any("restored" in (c.notice or "") for c in outcome.children)


def test_a_parent_restored_from_a_backup_gets_back_what_its_children_hold(tmp_path):
    cluster = make_cluster(tmp_path)
    backup = _backup(cluster.parent_path, tmp_path)
    lost = _create(cluster.parent_path, "made at the parent after the backup")
    _create(cluster.child_paths["Child1"], "made at a child")
    assert cluster.sync().status_code == 0

    _restore(backup, cluster.parent_path)
    reused = _create(cluster.parent_path, "made at the restored parent")
    assert reused == lost
    outcome = cluster.sync()

    _assert_everything_kept(cluster, outcome, {
        "made at the parent after the backup", "made at a child", "made at the restored parent"})


def test_a_parent_and_a_child_restored_to_one_moment_get_back_what_the_others_kept(tmp_path):
    """Found by the convergence property: both backups agree with each other, so neither
    looks restored to the other; only the siblings hold the child's delete made since."""
    cluster = make_cluster(tmp_path, children=3)
    child = cluster.child_paths["Child2"]
    job = _create(child, "deleted after the backups")
    assert cluster.sync().status_code == 0
    backups = {path: _backup(path, tmp_path / path.stem) for path in (child,
                                                                      cluster.parent_path)}
    with EmbeddedRepository(child) as repository:
        repository.delete_job(job, user=ADMIN)
    assert cluster.sync().status_code == 0

    for path, backup in backups.items():
        _restore(backup, path)
    outcome = cluster.sync()

    assert outcome.status_code == 0, [c.error for c in outcome.children]
    cluster.assert_converged()
    assert job not in _jobs(cluster.parent_path)


def test_configuration_made_again_on_a_restored_child_is_kept_under_a_free_id(tmp_path):
    """Found by the convergence property: the restored child gave its new hold type the id its
    earlier self gave another one, which the parent holds; it was refused and the child kept
    an element no one else had."""
    cluster = make_cluster(tmp_path, children=1)
    child = cluster.child_paths["Child1"]
    backup = _backup(child, tmp_path)
    with EmbeddedRepository(child) as repository:
        first = repository.create_config(HoldType(id=None, name="Survey"))
    assert cluster.replicate(["Child1"]).status_code == 0
    _restore(backup, child)
    with EmbeddedRepository(child) as repository:
        again = repository.create_config(HoldType(id=None, name="Survey"))
    assert again.id == first.id

    outcome = cluster.sync()

    assert outcome.status_code == 0, [c.error for c in outcome.children]
    cluster.assert_converged()
    with EmbeddedRepository(cluster.parent_path) as parent:
        kept = {t.name: t.id for t in parent.list_config(HoldType)}
    assert kept["Survey"] == first.id and kept["Survey_1"] not in (None, first.id)


def test_an_id_renumbered_in_an_earlier_run_reaches_a_child_that_still_holds_it(tmp_path):
    """Found by the long convergence run: the restored parent reused an attachment id; a
    replicate of Child1 renumbered the lost attachment; the next sync pushed to Child2 the
    new one (with the id) before the renumbered one, and Child2 refused it for good."""
    cluster = make_cluster(tmp_path, children=2)
    job = _create(cluster.parent_path, "with attachments")
    backup = _backup(cluster.parent_path, tmp_path)
    with EmbeddedRepository(cluster.parent_path) as parent:
        lost = parent.add_attachment(job, "a.txt", b"first", user=ADMIN)
    assert cluster.replicate().status_code == 0
    _restore(backup, cluster.parent_path)
    with EmbeddedRepository(cluster.parent_path) as parent:
        again = parent.add_attachment(job, "b.txt", b"second", user=ADMIN)
    assert again.id == lost.id
    assert cluster.replicate(["Child1"]).status_code == 0

    outcome = cluster.sync()

    assert outcome.status_code == 0, [c.error for c in outcome.children]
    cluster.assert_converged()
    with EmbeddedRepository(cluster.child_paths["Child2"]) as child:
        assert sorted(a.filename for a in child.attachments(job)) == ["a.txt", "b.txt"]


def test_an_id_taken_at_a_child_by_hand_is_reported_in_both_directions(tmp_path):
    cluster = make_cluster(tmp_path)
    taken = _create(cluster.parent_path, "made at the parent")
    with EmbeddedRepository(cluster.child_paths["Child1"]) as child:
        child.create_job(1, user=ADMIN, id=taken, name="same id, made at the child")

    table = ";".join(f"{t.name} true '{t.url}' #" for t in cluster.targets())
    result = arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", table)

    assert result.getOutput(0) == "0"
    assert f"job {taken} from Child1 has the id of a different job; both are kept" in \
        result.getMessages(1)
    cluster.sync()
    cluster.assert_converged()
    _assert_no_two_jobs_share_an_id(cluster)
    names = {name for _guid, name in _jobs(cluster.parent_path).values()}
    assert {"made at the parent", "same id, made at the child"} <= names


# --- the parent under another name -------------------------------------------------------------


def _sync_table(name: str, location: str) -> str:
    return f"{name} true '{location}' #"


def _aliases(cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    parent = cluster.parent_path
    symlink = tmp_path / "alias.wmxdb"
    symlink.symlink_to(parent)
    hardlink = tmp_path / "hardlink.wmxdb"
    os.link(parent, hardlink)
    return {"symlink": str(symlink), "hard link": str(hardlink),
            "sqlite URL": f"sqlite:///{parent}", "relative": os.path.relpath(parent),
            "dot segments": str(parent.parent / "." / parent.name)}


@pytest.mark.parametrize("tool", ["sync", "replicate"])
def test_the_parent_as_its_own_child_under_another_spelling_is_refused(tmp_path, tool):
    cluster = make_cluster(tmp_path, children=1)
    for alias, location in _aliases(cluster, tmp_path).items():
        seqs = cluster.seqs()
        with EmbeddedRepository(cluster.parent_path) as parent:
            identity = parent.info().node_id
        table = _sync_table("Self", location) if tool == "sync" else f"Self true '{location}'"
        run = arcpy.SynchronizeJobData_wmx if tool == "sync" else arcpy.ReplicateJobData_wmx
        with pytest.raises(wmx.WmxValidationError) as caught:
            run(str(cluster.parent_path), "Parent", table)
        assert caught.value.code == 733, (alias, str(caught.value))
        assert cluster.seqs() == seqs, alias
        with EmbeddedRepository(cluster.parent_path) as parent:
            assert parent.info().node_id == identity, alias


@pytest.mark.http
def test_the_served_parent_named_localhost_is_refused_as_its_own_child(tmp_path, monkeypatch):
    monkeypatch.setenv("WMX_USER", ADMIN)
    cluster = make_cluster(tmp_path, children=1)
    with running_server(cluster.parent_path) as server:
        alias = server.url.replace("127.0.0.1", "localhost")
        for spelling in (alias, alias + "/", alias.replace("WMServer", "wmserver")):
            with pytest.raises(wmx.WmxValidationError) as caught:
                arcpy.ReplicateJobData_wmx(server.url, "Parent", f"Self true {spelling}")
            assert caught.value.code == 733, (spelling, str(caught.value))
    outcome = cluster.sync()
    assert outcome.status_code == 0, [c.error for c in outcome.children]


def test_a_child_listed_twice_under_two_spellings_is_refused(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    child = cluster.child_paths["Child1"]
    table = f"Child1 true '{child}' #;Again true 'sqlite:///{child}' #"
    seqs = cluster.seqs()
    with pytest.raises(wmx.WmxValidationError) as caught:
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", table)
    assert caught.value.code in (733, 589)
    assert cluster.seqs() == seqs


def test_a_byte_copy_of_the_parent_in_a_sync_is_refused_and_says_what_it_is(tmp_path):
    cluster = make_cluster(tmp_path, children=1)
    copy = tmp_path / "copy.wmxdb"
    shutil.copyfile(cluster.parent_path, copy)
    with pytest.raises(wmx.WmxValidationError) as caught:
        arcpy.SynchronizeJobData_wmx(str(cluster.parent_path), "Parent", _sync_table("Copy", copy))
    assert caught.value.code == 733
    assert "copy" in str(caught.value).lower()


# --- re-replicate and clear keep work ----------------------------------------------------------


def test_replicating_again_first_consolidates_what_the_child_never_synchronized(tmp_path):
    cluster = make_cluster(tmp_path)
    job = _create(cluster.child_paths["Child1"], "never synchronized")

    outcome = cluster.replicate(["Child1"])

    assert outcome.status_code == 0
    assert job in _jobs(cluster.parent_path)
    assert job in _jobs(cluster.child_paths["Child1"])


def test_replicating_into_a_repository_of_another_cluster_saves_its_content_first(tmp_path):
    cluster = make_cluster(tmp_path)
    other = make_cluster(tmp_path / "other", children=1)
    stranger = other.child_paths["Child1"]
    job = _create(stranger, "belongs to another cluster")

    with cluster.parent() as parent:
        outcome = replicate(parent, [ChildTarget("Stranger", str(stranger))],
                            wmx.open_repository, rescue=rescue_folder)

    assert outcome.status_code == 0, [c.error for c in outcome.children]
    saved = outcome.children[0].saved_file
    assert saved and Path(saved).is_file() and Path(saved).parent == stranger.parent
    assert job not in _jobs(stranger)
    arcpy.ImportJobData_wmx(saved, "COMBINE", str(stranger))  # the way back
    assert _jobs(stranger)[job][1] == "belongs to another cluster"


def test_clear_on_a_copy_of_the_parent_leaves_the_real_children_alone(tmp_path):
    cluster = make_cluster(tmp_path)
    copy = tmp_path / "copy.wmxdb"
    shutil.copyfile(cluster.parent_path, copy)
    assert cluster.sync().status_code == 0

    result = arcpy.ClearJobReplicationInfo_wmx(str(copy))

    text = result.getMessages()
    assert "Child1" in text and "not cleared" in text
    outcome = cluster.sync()
    assert outcome.status_code == 0, [c.error for c in outcome.children]
