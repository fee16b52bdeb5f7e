"""Token-secured Esri servers: Esri's `token` parameter from WMX_TOKEN, or a token generated
from WMX_USERNAME/WMX_PASSWORD through generateToken and renewed; secrets never shown."""

from __future__ import annotations

import pytest

import wmx
from tests.http_helpers import ADMIN, make_repository
from tests.test_esri_replication import (
    assert_documented_only,
    esri_server,
    replicate,
    seed_rich_job,
    synchronize,
)
from wmx.remote.esri import EsriRepository
from wmx.remote.esri_tokens import TokenSource
from wmx.repository.base import NotAuthorized
from wmx.repository.embedded import EmbeddedRepository

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WMX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WMX_USER", ADMIN)
    for name in ("WMX_TOKEN", "WMX_USERNAME", "WMX_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def test_a_token_secured_esri_parent_replicates_with_a_generated_token(tmp_path, monkeypatch):
    with esri_server(credentials={ADMIN: PASSWORD}) as esri:
        first, second = seed_rich_job(esri)
        monkeypatch.setenv("WMX_USERNAME", ADMIN)
        monkeypatch.setenv("WMX_PASSWORD", PASSWORD)
        child = make_repository(tmp_path, "Child")
        result = replicate(esri.url, Child=child)
        assert result.status_code == 0, result.getMessages()
        with EmbeddedRepository(child) as repository:
            assert repository.jobs() == [first, second]
        generated = [r for r in esri.requests if r.path.endswith("generateToken")]
        assert generated and all(r.method == "POST" for r in generated)
        assert all(r.params.get("token") == "***" for r in esri.requests
                   if not r.path.endswith("generateToken"))
        assert PASSWORD not in result.getMessages()
        assert_documented_only(esri)


def test_an_expired_generated_token_is_renewed_and_the_request_made_again(monkeypatch):
    with esri_server(credentials={ADMIN: PASSWORD}) as esri:
        job = esri.seed_job(name="behind a token")
        monkeypatch.setenv("WMX_USERNAME", ADMIN)
        monkeypatch.setenv("WMX_PASSWORD", PASSWORD)
        with EsriRepository(esri.url, user=ADMIN) as repository:
            repository.info()
            esri.expire_tokens()
            assert repository.client.get(f"jobs/{job}")["name"] == "behind a token"
        assert len([r for r in esri.requests if r.path.endswith("generateToken")]) == 2


def test_a_token_about_to_expire_is_replaced_before_it_is_sent():
    now = [1_000.0]
    with esri_server(credentials={ADMIN: PASSWORD}, token_ttl_minutes=10) as esri:
        tokens = TokenSource(credentials=(ADMIN, PASSWORD), token_url=esri.token_url,
                             clock=lambda: now[0])
        esri.clock = lambda: now[0]
        first = tokens.token()
        now[0] += 7 * 60
        assert tokens.token() == first
        now[0] += 2 * 60  # within two minutes of expiry
        assert tokens.token() != first


def test_a_wrong_password_fails_with_a_message_that_holds_no_secret(tmp_path, monkeypatch):
    with esri_server(credentials={ADMIN: PASSWORD}) as esri:
        monkeypatch.setenv("WMX_USERNAME", ADMIN)
        monkeypatch.setenv("WMX_PASSWORD", "not the password")
        with pytest.raises(NotAuthorized) as refused:
            wmx.open_repository(esri.url)
        assert "not the password" not in str(refused.value)
        child = make_repository(tmp_path, "Child")
        with pytest.raises(wmx.ExecuteError) as failed:
            replicate(esri.url, Child=child)
        assert "not the password" not in str(failed.value)


def test_a_fixed_token_from_wmx_token_is_sent_as_esris_token_parameter(tmp_path, monkeypatch):
    with esri_server(token="s3cr3t-token-value") as esri:
        first, _ = seed_rich_job(esri)
        child = make_repository(tmp_path, "Child")
        with pytest.raises(wmx.ExecuteError) as refused:
            replicate(esri.url, Child=child)
        assert "s3cr3t-token-value" not in str(refused.value)
        esri.clear_requests()  # that contact was refused: the next one probes again
        monkeypatch.setenv("WMX_TOKEN", "s3cr3t-token-value")
        assert replicate(esri.url, Child=child).status_code == 0
        with EmbeddedRepository(child) as repository:
            repository.set_notes(first, "through a token", user=ADMIN)
        result = synchronize(esri.url, Child=child)
        assert result.status_code == 0
        assert esri.notes(first) == "through a token"
        assert "s3cr3t-token-value" not in result.getMessages()
        assert_documented_only(esri)


def test_the_password_can_come_from_the_system_keyring(tmp_path, monkeypatch):
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        """A keyring that keeps its passwords in this process (a real backend, in memory)."""

        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.passwords: dict[tuple[str, str], str] = {}

        def get_password(self, service, username):
            return self.passwords.get((service, username))

        def set_password(self, service, username, password):
            self.passwords[(service, username)] = password

        def delete_password(self, service, username):
            self.passwords.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        with esri_server(credentials={ADMIN: PASSWORD}) as esri:
            first, _ = seed_rich_job(esri)
            keyring.set_password("wmx", f"127.0.0.1:{esri.port}", PASSWORD)
            monkeypatch.setenv("WMX_USERNAME", ADMIN)
            child = make_repository(tmp_path, "Child")
            result = replicate(esri.url, Child=child)
            assert result.status_code == 0, result.getMessages()
            assert PASSWORD not in result.getMessages()
            with EmbeddedRepository(child) as repository:
                assert first in repository.jobs()
    finally:
        keyring.set_keyring(previous)
