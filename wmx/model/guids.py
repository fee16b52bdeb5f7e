"""GUIDs for new elements: time-ordered (RFC 9562 UUID version 7).

A random (version 4) GUID lands on a random leaf of every GUID-keyed B-tree, so each new
element rewrites a page of its own; on a large repository a sync of a hundred new history rows
wrote a hundred GUID-index pages. A version-7 GUID starts with the creation time in
milliseconds, so new elements sort together at the end of the index. They are still unique
(74 random bits per millisecond) and still ordinary GUIDs to every other system.
"""

from __future__ import annotations

import secrets
import time
import uuid

_VERSION = 0x7
_VARIANT = 0b10


def new_guid() -> str:
    """A new element GUID, as the canonical lower-case string."""
    random_bits = secrets.randbits(74)
    value = ((time.time_ns() // 1_000_000) << 80 | _VERSION << 76
             | (random_bits >> 62) << 64 | _VARIANT << 62 | random_bits & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))
