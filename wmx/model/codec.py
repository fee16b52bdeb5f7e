"""The one JSON codec of wmx: compact, UTF-8, orjson when installed (``wmx[fast]``).

Used for element bodies in the store, REST payloads and export files, so that a body written
by one component is byte-identical when another reads and re-sends it.
"""

from __future__ import annotations

import json
from typing import Any

try:  # optional accelerator
    import orjson
except ImportError:  # pragma: no cover - exercised on installs without the extra
    orjson = None


def dumps(value: Any) -> str:
    """Serialize to compact JSON text with sorted keys (stable bytes for equal values)."""
    if orjson is not None:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def dumps_bytes(value: Any) -> bytes:
    if orjson is not None:
        return orjson.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(text: str | bytes) -> Any:
    if orjson is not None:
        return orjson.loads(text)
    return json.loads(text)
