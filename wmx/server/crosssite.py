"""The cross-site policy (SPEC §2.8): what a web page on another origin may ask of a server,
which Host names a server without a token answers to, and where JSONP is served.

A server without a token trusts the ``user`` parameter, and a browser sends any page's
requests to it from the user's own machine, so without this policy any page the user opens
could delete jobs (Esri's GET writes), post replication batches as ``text/plain`` or read the
feed by JSONP. Decided once per request from its headers and its route, before any handler
runs. This module must never import a web framework, read a body, or repeat a header value in
a refusal.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Optional
from urllib.parse import urlsplit

import attrs

from wmx.server.routing import BAD_REQUEST, FORBIDDEN, HeaderLookup, ServiceError

SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})
"""``Sec-Fetch-Site`` of requests made by this origin's own pages or by the user (``none``:
a typed address or a bookmark)."""
JSON_TYPE = "application/json"
LOOPBACK_NAME = "localhost"


@attrs.frozen
class Exchange:
    """What the policy reads of one request: never its body."""

    method: str
    host: str
    """The Host header as sent (``name[:port]``)."""
    headers: HeaderLookup
    path: Sequence[str]
    """The segments after ``…/WMServer``."""
    public: bool
    """The route is a read-only resource of Esri's documented surface."""
    mimetype: str
    """The body's media type, lower-cased, without parameters ("" when none)."""
    jsonp: bool
    """A ``callback`` parameter asks for JSONP."""


def host_name(host: str) -> Optional[str]:
    """The lower-cased name of a Host header (IPv6 brackets removed), None when malformed."""
    host = host.strip()
    if not host or any(mark in host for mark in "@/\\?# "):
        return None
    try:
        parts = urlsplit(f"//{host}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    return (parts.hostname or "").rstrip(".") or None


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_extension(path: Sequence[str]) -> bool:
    """Whether a path is the replication extension (``replication/x-…``)."""
    return len(path) >= 2 and path[0].lower() == "replication" and \
        path[1].lower().startswith("x-")


def _names_another_origin(value: str, host: str) -> bool:
    """Whether an Origin or Referer value is not the origin the request addressed (its
    authority differs from Host; ``null`` and unparsable values count as another origin)."""
    try:
        authority = urlsplit(value.strip()).netloc
    except ValueError:
        return True
    return authority.lower() != host.strip().lower()


def is_cross_site(headers: HeaderLookup, host: str) -> bool:
    """Whether a browser made this request for a page on another origin: its ``Origin``
    says so; without one (links, images, scripts), ``Sec-Fetch-Site``; in old browsers
    the ``Referer``. A request with none of them comes from a script, not a page."""
    origin = headers.get("Origin")
    if origin is not None:
        return _names_another_origin(origin, host)
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in SAME_ORIGIN_FETCHES
    referer = headers.get("Referer")
    return referer is not None and _names_another_origin(referer, host)


@attrs.frozen
class SitePolicy:
    """The policy of one served repository."""

    names: frozenset[str]
    """Host names (lower-cased) a server without a token answers to, besides IP literals."""
    check_host: bool
    """Without a token a DNS name rebound to this machine would make an attacker's page
    same-origin with the server; with one, nothing gets in without the token anyway."""

    @classmethod
    def for_server(cls, hosts: Iterable[str] = (), *, token: bool = False) -> SitePolicy:
        """``hosts``: aliases (DNS names, optionally with a port) besides the server's IP
        addresses, ``localhost`` and the machine's own name."""
        names = {LOOPBACK_NAME, socket.gethostname().lower()}
        names.update(name for name in map(host_name, hosts) if name)
        return cls(frozenset(names), check_host=not token)

    def answers_to(self, host: str) -> bool:
        name = host_name(host)
        return name is not None and (name in self.names or is_ip_literal(name))

    def admit(self, exchange: Exchange) -> None:
        """Raise the refusal for a request the policy forbids; nothing has run yet."""
        if self.check_host and not self.answers_to(exchange.host):
            raise ServiceError(FORBIDDEN, "This server does not answer to that host name", [
                "Without a token it answers only to its IP addresses, localhost, its "
                "machine name and the aliases it was started with"])
        if not exchange.public and exchange.jsonp:
            raise ServiceError(FORBIDDEN, "JSONP is not served for this resource", [
                "Only Esri's public read-only resources answer a 'callback'; call this one "
                "without it"])
        if not exchange.public and is_cross_site(exchange.headers, exchange.host):
            raise ServiceError(FORBIDDEN, "Refused: the request comes from a page on another "
                               "origin", ["Writes, replication and the user lists answer "
                                          "only scripts and this server's own pages"])
        if exchange.method == "POST" and is_extension(exchange.path) and \
                exchange.mimetype != JSON_TYPE:
            raise ServiceError(BAD_REQUEST, "Replication requests must be application/json",
                               [f"Send the body as Content-Type: {JSON_TYPE}"])


__all__ = ["Exchange", "SitePolicy", "host_name", "is_cross_site", "is_extension"]
