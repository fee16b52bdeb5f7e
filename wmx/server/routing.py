"""The framework-free core of the server: a case-insensitive path router, typed request
parameters, the request context handlers receive, and the error every handler may raise.

Handlers (``wmx.server.esri``, ``wmx.server.replication``) see only these objects, never Flask,
so the Esri surface can be read and tested as plain functions. This module must never import a
web framework or format a response.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Callable, Literal, Optional, Protocol, TypeVar, Union, overload

import attrs

from wmx.model import codec
from wmx.repository.jobs import ServedRepository
from wmx.repository.wire import INT64_MAX, INT64_MIN, WireError, from_millis

H = TypeVar("H", bound=Callable[..., Any])
"""A request handler: the router keeps it and hands it back unchanged."""
DECIMAL = re.compile(r"\s*[+-]?[0-9]+\s*")
"""An integer parameter as Esri's clients write it: ASCII digits, an optional sign."""

BAD_REQUEST, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED = 400, 403, 404, 405
TOO_LARGE, INVALID_TOKEN, TOKEN_REQUIRED, INTERNAL = 413, 498, 499, 500


class ServiceError(Exception):
    """An error answered as Esri's envelope ``{"error": {"code", "message", "details"}}``.

    Messages and details are shown to clients: they name parameters, never echo their values
    (a client may have put a secret in the wrong parameter).
    """

    def __init__(self, code: int, message: str, details: Optional[list[str]] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details if details is not None else [message]

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def bad_parameter(name: str, expected: str) -> ServiceError:
    return ServiceError(BAD_REQUEST, f"Invalid or missing parameter '{name}'",
                        [f"'{name}' must be {expected}"])


@attrs.frozen
class RawResponse:
    """Bytes answered as they are (``f=file`` attachment content)."""

    content: bytes
    mimetype: str
    filename: str


class HeaderLookup(Protocol):
    """Request headers as the checks read them (Flask's ``Headers``, a plain dict in tests)."""

    def get(self, key: str) -> Optional[str]:
        """The value of the header named ``key`` (case-insensitively for real requests)."""
        ...


class Params:
    """Request parameters (query string and form fields) with case-insensitive names and
    typed getters that raise a 400 :class:`ServiceError` naming the parameter."""

    def __init__(self, values: Union[Mapping[str, str], Mapping[Optional[str], str]]) -> None:
        # A multipart part whose name cannot be parsed comes with the name None: ignored.
        self._values = {key.lower(): value for key, value in values.items()
                        if key is not None}

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values

    @overload
    def text(self, name: str, default: str, *, required: bool = False) -> str: ...

    @overload
    def text(self, name: str, default: None = None, *, required: Literal[True]) -> str: ...

    @overload
    def text(self, name: str, default: Optional[str] = None, *,
             required: bool = False) -> Optional[str]: ...

    def text(self, name: str, default: Optional[str] = None, *,
             required: bool = False) -> Optional[str]:
        """The parameter as sent; ``default`` when absent (a 400 when ``required``)."""
        value = self._values.get(name.lower())
        if value is None:
            if required:
                raise bad_parameter(name, "given")
            return default
        return value

    @overload
    def integer(self, name: str, default: int, *, required: bool = False,
                minimum: Optional[int] = None) -> int: ...

    @overload
    def integer(self, name: str, default: None = None, *, required: Literal[True],
                minimum: Optional[int] = None) -> int: ...

    @overload
    def integer(self, name: str, default: Optional[int] = None, *, required: bool = False,
                minimum: Optional[int] = None) -> Optional[int]: ...

    def integer(self, name: str, default: Optional[int] = None, *, required: bool = False,
                minimum: Optional[int] = None) -> Optional[int]:
        """A signed 64-bit decimal integer; ``default`` when absent or blank (a 400 when
        ``required``, malformed, out of range or below ``minimum``)."""
        value = self.text(name, required=required)
        if value is None or value.strip() == "":
            if required:
                raise bad_parameter(name, "an integer")
            return default
        if not DECIMAL.fullmatch(value):  # int() also takes "1_000" and non-ASCII digits
            raise bad_parameter(name, "an integer")
        number = int(value)
        if not INT64_MIN <= number <= INT64_MAX:
            raise bad_parameter(name, "a 64-bit integer")
        if minimum is not None and number < minimum:
            raise bad_parameter(name, f"an integer of at least {minimum}")
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.text(name)
        if value is None or value.strip() == "":
            return default
        lowered = value.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise bad_parameter(name, "true or false")
        return lowered in ("true", "1", "yes")

    def millis(self, name: str) -> Any:
        value = self.text(name)
        try:
            return from_millis(value, name)
        except WireError:
            raise bad_parameter(name, "epoch milliseconds") from None

    def json(self, name: str, *, required: bool = False) -> Any:
        value = self.text(name, required=required)
        if value is None or value.strip() == "":
            if required:
                raise bad_parameter(name, "JSON")
            return None
        return parse_json(value, name)

    def id_list(self, name: str) -> list[int]:
        """Esri's comma-joined id lists (``jobs=5,6,9``), each id once (in its first place:
        ``jobs=5,5`` names job 5, and deleting it twice failed after the first delete)."""
        parts = [part for part in (self.text(name, required=True) or "").split(",")
                 if part.strip()]
        if not all(DECIMAL.fullmatch(part) for part in parts):
            raise bad_parameter(name, "a comma-separated list of integers")
        ids = [int(part) for part in parts]
        if not ids or not all(INT64_MIN <= number <= INT64_MAX for number in ids):
            raise bad_parameter(name, "a comma-separated list of 64-bit integers")
        return list(dict.fromkeys(ids))


def parse_json(text: Union[str, bytes], what: str) -> Any:
    try:
        return codec.loads(text)
    except ValueError:
        raise bad_parameter(what, "valid JSON") from None


@attrs.define
class Call:
    """One request as a handler sees it: the repository, parameters, and lazy body access."""

    repository: ServedRepository
    params: Params
    method: str
    service_url: str
    read_body: Callable[[], bytes] = lambda: b""
    read_upload: Callable[[], Optional[tuple[str, bytes]]] = lambda: None

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (an empty body is ``{}``)."""
        raw = self.read_body()
        if not raw.strip():
            return {}
        body = parse_json(raw, "body")
        if not isinstance(body, dict):
            raise bad_parameter("body", "a JSON object")
        return body


Handler = Callable[..., Any]
_SEGMENT = re.compile(r"^\{(\w+)(?::(int))?\}$")


def _id_segment(part: str) -> Optional[int]:
    """An id in a path: ASCII digits (``str.isdigit`` also takes "²", which ``int`` refuses)
    within the ids a repository can hold; anything else names no resource."""
    if not (part.isascii() and part.isdigit()) or len(part) > len(str(INT64_MAX)):
        return None
    number = int(part)
    return number if number <= INT64_MAX else None


@attrs.frozen
class Route:
    segments: tuple[tuple[str, Optional[str]], ...]
    """(literal lower-cased, None) or (parameter name, ``"int"``/``"str"``) per segment."""
    handler: Handler
    methods: frozenset[str]
    public: bool = False
    """A read-only resource of Esri's documented surface: any page may read it (cross-site,
    JSONP). Every other route is guarded by :mod:`wmx.server.crosssite`."""

    def match(self, parts: list[str]) -> Optional[dict[str, Any]]:
        if len(parts) != len(self.segments):
            return None
        found: dict[str, Any] = {}
        for part, (name, kind) in zip(parts, self.segments):
            if kind is None:
                if part.lower() != name:
                    return None
            elif kind == "int":
                number = _id_segment(part)
                if number is None:
                    return None
                found[name] = number
            else:
                found[name] = part
        return found


class Router:
    """Paths relative to ``…/WMServer``; literal segments match case-insensitively (Esri's own
    clients disagree on ``visibleJobTypes`` vs ``visiblejobtypes``)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, pattern: str, methods: tuple[str, ...] = ("GET", "POST"), *,
              public: bool = False) -> Callable[[H], H]:
        segments = []
        for part in filter(None, pattern.split("/")):
            variable = _SEGMENT.match(part)
            if variable:
                segments.append((variable.group(1), variable.group(2) or "str"))
            else:
                segments.append((part.lower(), None))

        def register(handler: H) -> H:
            self.routes.append(Route(tuple(segments), handler, frozenset(methods), public))
            return handler

        return register

    def include(self, other: Router) -> None:
        self.routes.extend(other.routes)

    def resolve(self, path: str, method: str) -> tuple[Route, dict[str, Any]]:
        parts = [part for part in path.split("/") if part]
        allowed = False
        for route in self.routes:
            found = route.match(parts)
            if found is None:
                continue
            if method in route.methods:
                return route, found
            allowed = True
        if allowed:
            raise ServiceError(METHOD_NOT_ALLOWED, f"Method {method} is not allowed here",
                               ["Use POST for this operation"])
        raise ServiceError(NOT_FOUND, "Not Found", ["The requested resource does not exist"])


__all__ = ["Call", "HeaderLookup", "Params", "RawResponse", "Route", "Router", "ServiceError",
           "bad_parameter", "parse_json"]
