"""The one JSON codec of wmx: compact, UTF-8, orjson when installed (``wmx[fast]``).

Used for element bodies in the store, REST payloads and export files, so that a body written
by one component is byte-identical when another reads and re-sends it.
"""

from __future__ import annotations

import importlib
import json
import math
from types import ModuleType
from typing import Any, Optional

orjson: Optional[ModuleType]
try:  # optional accelerator, imported by name so that its absence has a type (None)
    orjson = importlib.import_module("orjson")
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


def loads(text: str | bytes | bytearray) -> Any:
    """Parse JSON; malformed input raises ``ValueError`` whichever library parses it. Without
    orjson, the standard library is held to what orjson accepts: no ``NaN``/``Infinity``, no
    number beyond a double's range, no lone surrogate (SQLite cannot store one), and nesting
    too deep is malformed rather than a ``RecursionError``."""
    if orjson is not None:
        return orjson.loads(text)
    if isinstance(text, (bytes, bytearray)):
        # UTF-8 only, strictly: json.loads would guess UTF-16/32 and let encoded surrogates in.
        text = bytes(text).decode("utf-8")
    try:
        value = _STRICT.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if "\\ud" in text or "\\uD" in text:  # a surrogate, escaped (rare: only then check)
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("JSON text with a lone surrogate") from None
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is beyond a double's range")
    return value


_STRICT = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
"""Made once: ``json.loads`` with hooks builds a decoder per call, a third of the parse time
of a short body (every replicated row's body is parsed)."""
