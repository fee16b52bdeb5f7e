"""PostgreSQL repository locations taken apart, without the driver: what libpq is given, the
schema, and the location as it may be shown (SPEC §2.7: a password written in the URI is
accepted, and never shown). Importable without psycopg, so every message can use it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import attrs

from wmx.model.locations import shown_location
from wmx.repository.base import InvalidRequest, RepositoryNotFound

DEFAULT_SCHEMA = "wmx"
SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def is_postgres_location(location: str) -> bool:
    return location.strip().lower().startswith(SCHEMES)


@attrs.frozen
class PostgresLocation:
    """A location taken apart: what libpq is given (``conninfo``, the password included), the
    schema, and ``public``: the location as it may be shown (no password, anywhere)."""

    conninfo: str
    schema: str
    public: str
    secrets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, location: str) -> PostgresLocation:
        try:
            parts = urlsplit(location.strip())
        except ValueError:
            raise RepositoryNotFound("A PostgreSQL location that cannot be read (check the "
                                     "host part)") from None
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            raise RepositoryNotFound("A PostgreSQL location starts with postgresql://")
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((value for key, value in reversed(query) if key == "schema"),
                      DEFAULT_SCHEMA)
        libpq_query = [(key, value) for key, value in query if key != "schema"]
        userinfo, at, hosts = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        secrets = [password, unquote(password)] if colon and password else []
        secrets += [value for key, value in libpq_query if key == "password" and value]
        public_query = [(key, value) for key, value in query if key != "password"]
        public = urlunsplit((parts.scheme, f"{user}{at}{hosts}", parts.path,
                             urlencode(public_query, safe=",/:"), ""))
        if not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidRequest(f"{public}: schema= must be a plain PostgreSQL name (letters, "
                                 "digits and _, not starting with a digit, at most 63)")
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path,
                               urlencode(libpq_query, safe=",/:"), ""))
        return cls(conninfo, schema, public, tuple(sorted(set(secrets), key=len, reverse=True)))

    def scrub(self, text: str) -> str:
        """``text`` with every form of the password replaced (libpq never prints it, but a
        connection-string parse error quotes what it was given)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


__all__ = ["DEFAULT_SCHEMA", "SCHEMES", "PostgresLocation", "is_postgres_location",
           "shown_location"]
