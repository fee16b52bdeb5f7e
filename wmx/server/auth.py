"""Who may call the service: the shared token, and the ``user`` a write is made as.

Two separate checks, as in ArcGIS: the token (when the server has one) admits a client at all
and is compared in constant time; the ``user`` parameter names a Workflow Manager user whose
group privileges decide what they may change. This module must never log, echo or store a
token, never repeat a ``user`` value other than a plain name in a refusal (a page could plant
markup or prose there), and never let a request change anything before both checks pass.
"""

from __future__ import annotations

import hmac
import re
from typing import Optional

from wmx.model.records import PRIV_ADMINISTRATOR, User
from wmx.repository.jobs import ServedRepository
from wmx.server.routing import (
    BAD_REQUEST,
    FORBIDDEN,
    INVALID_TOKEN,
    TOKEN_REQUIRED,
    Call,
    HeaderLookup,
    ServiceError,
)

TOKEN_HEADERS = ("X-Esri-Authorization", "Authorization")
PLAIN_USER_NAME = re.compile(r"[\w.@$\\-]{1,64}")
"""A user name as directories spell them (``DOMAIN\\name``, ``name@domain``): repeated in
refusals; no other ``user`` value is."""


def presented_token(headers: HeaderLookup, parameter: Optional[str]) -> Optional[str]:
    """The token a request carries: a ``Bearer`` header, else Esri's ``token`` parameter."""
    for name in TOKEN_HEADERS:
        value = headers.get(name)
        if value:
            scheme, _, credential = value.strip().partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else value.strip()
    return parameter or None


def check_token(expected: Optional[str], presented: Optional[str]) -> None:
    """Admit the request or raise Esri's 499 (missing) / 498 (wrong) error."""
    if expected is None:
        return
    if not presented:
        raise ServiceError(TOKEN_REQUIRED, "Token Required")
    if not hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8")):
        raise ServiceError(INVALID_TOKEN, "Invalid Token")


def _named(name: str) -> str:
    """How a refusal names a user: a plain user name as it is (SPEC §2.8 names the acting user
    in every refusal), anything else (markup, prose, controls, a very long value) not at all."""
    return f"User '{name}'" if PLAIN_USER_NAME.fullmatch(name) else "The user named by 'user'"


def user_name(value: str) -> str:
    """Esri clients send ``DOMAIN\\name`` as ``DOMAIN|name``; store the backslash form."""
    return value.strip().replace("|", "\\")


def find_user(repository: ServedRepository, name: str) -> Optional[User]:
    """The user of that name, compared case-insensitively as Esri does. Read by name first:
    every write names its user, and reading every user for it parsed each of them per request;
    only a name written in another case (or no user's) reads them all."""
    wanted = user_name(name)
    found = repository.read_record(User.KIND, name=wanted)
    if found is not None:
        return User.from_esri(found[1], found[0])
    lowered = wanted.lower()
    return next((user for user in repository.users() if user.user_name.lower() == lowered),
                None)


def require_user(call: Call) -> str:
    """The known Workflow Manager user named by ``user`` (Esri requires it on writes)."""
    given = (call.params.text("user") or "").strip()
    if not given:
        raise ServiceError(BAD_REQUEST, "The 'user' parameter is required",
                           ["Pass user=<Workflow Manager user name>"])
    user = find_user(call.repository, given)
    if user is None:
        raise ServiceError(FORBIDDEN, f"{_named(user_name(given))} is not a Workflow Manager "
                           "user of this repository; set WMX_USER (or pass --user to the wmx "
                           "command) to a user of this repository")
    return user.user_name


def require_privilege(call: Call, privilege: str) -> str:
    """A known user who holds ``privilege`` (administrators hold every privilege)."""
    name = require_user(call)
    held = call.repository.user_privileges(name)
    if privilege not in held and PRIV_ADMINISTRATOR not in held:
        raise ServiceError(FORBIDDEN, f"{_named(name)} lacks the {privilege} privilege")
    return name


def require_replication_user(call: Call) -> str:
    """A user with Manage Replication or Administrator access (replication traffic)."""
    name = require_user(call)
    if not call.repository.may_replicate(name):
        raise ServiceError(FORBIDDEN, f"{_named(name)} needs the Manage Replication or "
                           "Administrator privilege for replication")
    return name


__all__ = ["TOKEN_HEADERS", "check_token", "find_user", "presented_token",
           "require_privilege", "require_replication_user", "require_user", "user_name"]
