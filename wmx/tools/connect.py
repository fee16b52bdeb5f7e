"""How tools reach repositories: opening the parent (a validation step, before anything is
written) and handing the engine an opener for children.

Tokens for secured WMServer services come from the ``WMX_TOKEN`` environment variable (the
Esri tools had no token parameter); they are passed to the REST client and never echoed.
``WMX_USER`` names the Workflow Manager user REST calls act as (default: the OS login, as
Esri's tools used the Windows login).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from wmx.errors import (
    DATASET_NOT_FOUND,
    NOT_A_MEMBER,
    dataset_not_found_text,
    not_a_member_text,
)
from wmx.repository import (
    Repository,
    RepositoryError,
    RepositoryNotFound,
    is_service_url,
    open_repository,
)
from wmx.repository.embedded import embedded_path
from wmx.state import saved_folder
from wmx.store.postgres_location import shown_location
from wmx.tools._base import ValidationFailure
from wmx.tools.failures import REPOSITORY, Node, classify

TOKEN_VARIABLE = "WMX_TOKEN"
USER_VARIABLE = "WMX_USER"


def rescue_folder(location: str) -> Path:
    """Where a replicate saves the content of a child that is no replica of its parent before
    replacing it: beside an embedded child's file, in the state folder for a service."""
    if is_service_url(location) or location.lower().startswith(("postgresql:", "postgres:")):
        return saved_folder()
    return embedded_path(location).resolve().parent


def token() -> Optional[str]:
    return os.environ.get(TOKEN_VARIABLE) or None


def open_location(location: str, *, dry_run: bool = False) -> Repository:
    """The engine's opener: any location, with the configured token and user; ``dry_run``:
    for a run that writes nothing (an Esri server's unfinished push waits for a real run)."""
    return open_repository(location, token=token(), user=os.environ.get(USER_VARIABLE) or None,
                           dry_run=dry_run)


def open_checked(location: str, label: str, name: Optional[str] = None,
                 name_label: str = "", *, dry_run: bool = False) -> Repository:
    """Open a repository the tool's parameters name, or fail validation saying why."""
    try:
        repository = open_location(location, dry_run=dry_run)
        actual = repository.info().name
    except RepositoryNotFound:
        raise ValidationFailure([(DATASET_NOT_FOUND, label,
                                  dataset_not_found_text(shown_location(location)))]) from None
    except RepositoryError as exc:  # its code is decided where every repository failure's is
        code = classify(exc, Node(REPOSITORY, "", location)).code
        raise ValidationFailure([(code, label, str(exc))]) from None
    if name is not None and name.strip().casefold() != actual.casefold():
        repository.close()
        raise ValidationFailure([(NOT_A_MEMBER, name_label, not_a_member_text([actual]))])
    return repository
