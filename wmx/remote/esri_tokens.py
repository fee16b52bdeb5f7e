"""Tokens for token-secured Esri services: a fixed token, or one generated from a user name and
password through ArcGIS Server's ``generateToken`` and renewed before it expires.

Where the secrets come from: the ``token`` argument (``WMX_TOKEN`` or ``--token-file``, read by
the caller), else ``WMX_USERNAME``/``WMX_PASSWORD``, else the system keyring (the optional
``keyring`` package, service ``wmx``, entry = the service host). This module must never put a
token or a password in a message, a log record, an exception or a URL.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional
from urllib.parse import urlsplit

import requests

from wmx.repository.base import NotAuthorized, RepositoryUnavailable

USERNAME_VARIABLE = "WMX_USERNAME"
PASSWORD_VARIABLE = "WMX_PASSWORD"
KEYRING_SERVICE = "wmx"
TOKEN_MINUTES = 60
RENEW_BEFORE_SECONDS = 120.0
"""A generated token is replaced this long before it expires (Esri's viewer renews a minute
before; two leave room for a slow request that starts just before the deadline)."""


def token_url_for(service_url: str) -> str:
    """ArcGIS Server's token endpoint for a service: ``<site>/tokens/generateToken``, where the
    site is everything before ``/rest/services``."""
    head, sep, _ = service_url.partition("/rest/services")
    if not sep:
        parts = urlsplit(service_url)
        head = f"{parts.scheme}://{parts.netloc}/arcgis"
    return f"{head}/tokens/generateToken"


def credentials_for(service_url: str) -> Optional[tuple[str, str]]:
    """User name and password for a service, from the environment or the keyring."""
    username = os.environ.get(USERNAME_VARIABLE, "").strip()
    password = os.environ.get(PASSWORD_VARIABLE, "")
    if username and password:
        return username, password
    if not username:
        return None
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        stored = keyring.get_password(KEYRING_SERVICE, urlsplit(service_url).netloc)
    except KeyringError:
        return None
    return (username, stored) if stored else None


class TokenSource:
    """The token to send to one service, or ``None`` for an open service.

    ``renew()`` forces a new generated token (after a 498 answer); a fixed token cannot be
    renewed, so it returns False and the caller reports the refusal."""

    def __init__(self, *, token: Optional[str] = None,
                 credentials: Optional[tuple[str, str]] = None, token_url: str = "",
                 session: Optional[requests.Session] = None, timeout: float = 30.0,
                 verify: bool | str = True, clock: Callable[[], float] = time.time) -> None:
        self._fixed = token.strip() if token and token.strip() else None
        self._credentials = None if self._fixed else credentials
        self._token_url = token_url
        self._session = session or requests.Session()
        self._timeout = timeout
        self._verify = verify
        self._clock = clock
        self._generated: Optional[str] = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    @property
    def generates(self) -> bool:
        return self._credentials is not None

    def secrets(self) -> list[str]:
        """Every secret this source holds, for scrubbing text before it is shown."""
        held = [self._fixed, self._generated, *(self._credentials[1:] if self._credentials
                                                else ())]
        return [secret for secret in held if secret]

    def token(self) -> Optional[str]:
        if self._fixed or not self._credentials:
            return self._fixed
        with self._lock:
            if self._generated is None or self._clock() >= self._expires_at - \
                    RENEW_BEFORE_SECONDS:
                self._generate()
            return self._generated

    def renew(self) -> bool:
        if not self._credentials:
            return False
        with self._lock:
            self._generate()
        return True

    def _generate(self) -> None:
        username, password = self._credentials or ("", "")
        form = {"username": username, "password": password, "client": "requestip",
                "expiration": TOKEN_MINUTES, "f": "json"}
        try:
            response = self._session.post(self._token_url, data=form, timeout=self._timeout,
                                          verify=self._verify, allow_redirects=False)
            answer = response.json()
        except requests.RequestException as exc:
            raise RepositoryUnavailable(
                f"Cannot reach the token service {self._token_url}: "
                f"{type(exc).__name__}") from None
        except ValueError:
            raise NotAuthorized(f"The token service {self._token_url} did not answer with "
                                "JSON") from None
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise NotAuthorized(f"The token service {self._token_url} refused the user name "
                                f"{username!r} and its password")
        expires = answer.get("expires")
        now = self._clock()
        self._expires_at = (int(expires) / 1000 if isinstance(expires, (int, float))
                            and not isinstance(expires, bool) else now + TOKEN_MINUTES * 60)
        self._generated = token
