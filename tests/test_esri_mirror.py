"""The mirror of an Esri server, alone: its identity rules, where it lives, how it compares
what a server shows with what it holds, and that a damaged or foreign answer is refused."""

from __future__ import annotations

import pytest

from tests.esri_double import EsriDouble
from tests.http_helpers import ADMIN
from wmx.model.records import Hold, Job
from wmx.remote.esri import EsriRepository
from wmx.remote.mirror import (
    Seen,
    canonical_url,
    job_guid_for,
    mirror_path,
    node_id_for,
    open_mirror,
    projection,
    reconcile,
)
from wmx.repository.base import RepositoryError

URL = "http://127.0.0.1:8080/arcgis/rest/services/Redlands/WMServer"


@pytest.fixture(autouse=True)
def state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WMX_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.mark.parametrize("spelling", [
    "HTTP://LOCALHOST:8080/arcgis/rest/services/Redlands/WMServer/",
    "http://127.0.0.1:8080/ARCGIS/rest/services/redlands/wmserver",
    " http://localhost:8080/arcgis/rest/services/Redlands/WMServer ",
])
def test_every_spelling_of_a_service_url_is_one_server(spelling):
    assert canonical_url(spelling) == canonical_url(URL)
    assert node_id_for(spelling) == node_id_for(URL)
    assert mirror_path(spelling) == mirror_path(URL)


def test_default_ports_are_the_same_server_and_other_ports_are_not():
    assert node_id_for("http://gis/arcgis/rest/services/A/WMServer") == node_id_for(
        "http://gis:80/arcgis/rest/services/A/WMServer")
    assert node_id_for("https://gis:443/arcgis/rest/services/A/WMServer") == node_id_for(
        "https://gis/arcgis/rest/services/A/WMServer")
    assert node_id_for("http://gis:8080/arcgis/rest/services/A/WMServer") != node_id_for(
        "http://gis/arcgis/rest/services/A/WMServer")


def test_a_job_has_one_guid_on_every_esri_server_and_after_a_rebuild():
    assert job_guid_for(7) == job_guid_for(7) != job_guid_for(8)


def test_the_mirror_lives_in_the_state_folder_with_the_servers_identity(state_folder):
    with open_mirror(URL, name="Redlands", id_block_start=1) as mirror:
        assert mirror.info().node_id == node_id_for(URL)
        assert mirror.path.is_relative_to(state_folder)
    with open_mirror(URL, name="ignored once it exists", id_block_start=5) as again:
        assert again.info().name == "Redlands"


def test_empty_values_and_server_stamped_fields_do_not_make_a_change():
    ours = Hold(id=3, job_id=1, type=2, hold_comments="wait", released_by=None).to_esri()
    theirs = {**ours, "id": 99, "heldBy": "someone", "holdDate": 123, "releaseComments": ""}
    assert projection("hold", ours, full=False) == projection("hold", theirs, full=False)
    assert projection("hold", ours, full=True) != projection("hold", theirs, full=True)
    released = {**theirs, "releaseDate": 456}
    assert projection("hold", ours, full=False) != projection("hold", released, full=False)


def test_reconcile_writes_only_what_differs_and_tombstones_what_is_gone():
    with open_mirror(URL, name="Redlands", id_block_start=1) as mirror:
        node = mirror.info().node_id
        one = Seen(job_guid_for(1), Job(id=1, job_type_id=1, name="one"))
        two = Seen(job_guid_for(2), Job(id=2, job_type_id=1, name="two"))
        assert reconcile(mirror, [one, two], esri_node=node, skip=set()) == 2
        assert reconcile(mirror, [one, two], esri_node=node, skip=set()) == 0
        renamed = Seen(one.guid, Job(id=1, job_type_id=1, name="renamed"))
        assert reconcile(mirror, [renamed], esri_node=node, skip=set()) == 2
        assert mirror.job_ids() == [1]
        assert mirror.get_job(1).name == "renamed"
        # a pending element (being pushed) is neither changed nor deleted by what the server shows
        assert reconcile(mirror, [], esri_node=node, skip={one.guid}) == 0
        assert mirror.job_ids() == [1]


@pytest.mark.parametrize("answer", [{"jobIds": "not a list"}, {"jobIds": [1, "x"]}])
def test_a_malformed_answer_fails_with_an_error_naming_the_server(answer, monkeypatch):
    with EsriDouble(users=(ADMIN,)) as double:
        double.seed_job(name="one")
        with EsriRepository(double.url, user=ADMIN) as repository:
            real_get = repository.client.get
            monkeypatch.setattr(repository.client, "get", lambda path="", **params: (
                answer if path == "jobs" else real_get(path, **params)))
            with pytest.raises(RepositoryError, match=r"127\.0\.0\.1.*malformed"):
                repository.info()
            assert repository.mirror.job_ids() == [], "nothing was written"


def test_two_server_elements_bound_to_one_guid_stay_two_elements():
    with EsriDouble(users=(ADMIN,)) as double:
        job = double.seed_job(name="one")
        first = double.seed_hold(job, type=1, holdComments="first")
        second = double.seed_hold(job, type=1, holdComments="second")
        with EsriRepository(double.url, user=ADMIN) as repository:
            repository.jobs()  # reads the server
            ids = repository.book.id_map()
            repository.book.bind([("hold", job, str(second), ids[("hold", job, str(first))])])
        with EsriRepository(double.url, user=ADMIN) as repository:
            repository.info()
            assert sorted(h.hold_comments for h in repository.mirror.holds(job)) == [
                "first", "second"]
            seq = repository.mirror.info().seq
        with EsriRepository(double.url, user=ADMIN) as repository:
            assert repository.info().seq == seq, "and they do not flip-flop"


def test_a_job_deleted_on_the_server_while_it_is_read_is_gone_not_an_error(monkeypatch):
    with EsriDouble(users=(ADMIN,)) as double:
        kept = double.seed_job(name="kept")
        doomed = double.seed_job(name="deleted while read")
        with EsriRepository(double.url, user=ADMIN) as repository:
            real_get = repository.client.get

            def get(path: str = "", **params: object) -> dict:
                if path == f"jobs/{doomed}/holds":
                    double.jobs.pop(doomed)  # an Esri user deletes it right now
                return real_get(path, **params)

            monkeypatch.setattr(repository.client, "get", get)
            repository.jobs()  # reads the server
            assert repository.mirror.job_ids() == [kept]
