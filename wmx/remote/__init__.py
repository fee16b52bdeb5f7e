"""Repositories behind servers that are not wmx: Esri's Workflow Manager (Classic) WMServer.

:func:`open_service` tells an Esri server from ``wmx serve`` on first contact and opens the
matching client; :class:`EsriRepository` is the Esri one. Nothing here is known to the engine,
which sees only :class:`wmx.repository.base.Repository`.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from wmx.remote.esri_client import probe_node
from wmx.remote.esri_tokens import TokenSource, credentials_for, token_url_for
from wmx.remote.mirror import canonical_url, mirror_path
from wmx.repository.base import Repository
from wmx.repository.transport import default_timeout

_KNOWN: dict[str, bool] = {}
_KNOWN_LOCK = threading.Lock()
"""Verdicts of this process (canonical URL -> is Esri): a server is probed once."""


def is_esri_server(location: str, *, token: Optional[str] = None,
                   timeout: Optional[float] = None, verify: bool | str = True) -> bool:
    """Whether a WMServer URL is an Esri server. A server that already has a mirror in the
    state folder is one (it was detected before); any other is probed once per process.
    ``timeout`` defaults to the replication timeout (``WMX_TIMEOUT``, else 30 s)."""
    return _identify(location, token=token, timeout=timeout, verify=verify)[0]


def _identify(location: str, *, token: Optional[str], timeout: Optional[float],
              verify: bool | str) -> tuple[bool, Optional[dict[str, Any]]]:
    """(is Esri, the wmx server's identity when this call had to ask for it)."""
    timeout = default_timeout() if timeout is None else timeout
    key = canonical_url(location)
    with _KNOWN_LOCK:
        if key in _KNOWN:
            return _KNOWN[key], None
    node: Optional[dict[str, Any]] = None
    if mirror_path(location).is_file():
        verdict = True
    else:
        tokens = TokenSource(token=token, credentials=None if token else credentials_for(
            location), token_url=token_url_for(location), timeout=timeout, verify=verify)
        node = probe_node(location, tokens=tokens, timeout=timeout, verify=verify)
        verdict = node is None
    with _KNOWN_LOCK:
        _KNOWN[key] = verdict
    return verdict, node


def forget_servers() -> None:
    """Forget this process's verdicts (each server is probed again on next contact, unless
    it has a mirror): for a process that outlives the servers it met, such as a test run in
    which a later server takes an earlier one's port."""
    with _KNOWN_LOCK:
        _KNOWN.clear()


def open_service(location: str, token: Optional[str] = None, *, user: Optional[str] = None,
                 dry_run: bool = False, **options: Any) -> Repository:
    """The repository at a WMServer URL: an Esri server's mirror-backed client, or the
    ``wmx serve`` REST client. A wmx server this process has already reached is not probed
    again at open (its identity, asked for next, tells as much)."""
    esri_options = {k: options[k] for k in ("timeout", "verify") if k in options}
    esri, node = _identify(location, token=token, timeout=esri_options.get("timeout"),
                           verify=esri_options.get("verify", True))
    if esri:
        from wmx.remote.esri import EsriRepository

        allowed = ("timeout", "verify", "connections", "credentials", "token_url")
        return EsriRepository(location, token=token, user=user, dry_run=dry_run,
                              **{k: v for k, v in options.items() if k in allowed})
    from wmx.repository.rest import RestRepository

    options.setdefault("probe", False)
    return RestRepository(location, token=token, user=user, node_answer=node, **options)


__all__ = ["forget_servers", "is_esri_server", "open_service"]
