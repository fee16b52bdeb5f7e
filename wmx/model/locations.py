"""Repository locations as they may be shown: in messages, logs, tables, node records.

SPEC §2.7: a password written in a location (``postgresql://user:secret@host/db``, or libpq's
``password=`` parameter) is accepted, and the location is then shown everywhere without it.
Pure string work, so every layer (the engine included) can use it; opening a location is the
backends' business, never this module's.
"""

from __future__ import annotations

import ipaddress
from typing import Optional, Union
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

UNREADABLE = "(a location that cannot be read)"


def shown_location(location: str) -> str:
    """``location`` without any password written in it (one that cannot be taken apart is not
    shown at all); a location without one, a file path for example, as it is."""
    text = str(location)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text.strip())
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return UNREADABLE
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    secret_in_query = any(key == "password" for key, _value in query)
    if not (colon and password) and not secret_in_query:
        return text
    public_query = urlencode([(key, value) for key, value in query if key != "password"],
                             safe=",/:")
    return urlunsplit((parts.scheme, f"{user}{at}{hosts}", parts.path, public_query,
                       parts.fragment))


IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def ip_address(host: str) -> Optional[IPAddress]:
    """``host`` as an IP address (an IPv6 zone such as ``%eth0`` ignored), or None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name, as in a URL) is this machine's loopback."""
    address = ip_address(host.strip("[]"))
    return address.is_loopback if address is not None else host.lower() == "localhost"
