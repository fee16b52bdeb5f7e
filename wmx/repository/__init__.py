"""The client layer: one ``open_repository(location)`` whatever the backend.

``http(s)://…/WMServer`` opens the REST client of ``wmx serve`` or, for a server that answers
the first probe as Esri's WMServer does, the Esri client with its mirror (``wmx.remote``);
``sqlite:///path`` or a file path opens the embedded store, ``postgresql://…`` (or
``postgres://…``) a PostgreSQL one (:mod:`wmx.store.postgres`). The engine only ever sees
:class:`wmx.repository.base.Repository`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from wmx.repository.base import (
    InvalidRequest,
    NotAuthorized,
    Repository,
    RepositoryError,
    RepositoryNotFound,
    RepositoryUnavailable,
)

if TYPE_CHECKING:
    from wmx.repository.jobs import ServedRepository


def is_service_url(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


def open_repository(location: str | Path, token: Optional[str] = None, *,
                    user: Optional[str] = None, dry_run: bool = False,
                    **options: Any) -> Repository:
    """Open a repository by the string a value table would name it with.

    ``token`` and ``user`` (the Workflow Manager user the REST calls act as; default: the OS
    login) matter only for services; an embedded file is opened with local rights. For an
    Esri server without a token, ``WMX_USERNAME``/``WMX_PASSWORD`` (or the keyring) are used
    to generate one. ``dry_run``: the repository is for a run that writes nothing; only an
    Esri server needs to know (it then leaves a push an earlier run could not finish for the
    next real run).
    """
    location = str(location).strip()
    if not location:
        raise RepositoryNotFound("No repository location given")
    if is_service_url(location):
        from wmx.remote import open_service

        return open_service(location, token=token, user=user, dry_run=dry_run, **options)
    if location.lower().startswith(("postgresql://", "postgres://")):
        return _open_postgres(location, **options)
    from wmx.repository.embedded import EmbeddedRepository

    return EmbeddedRepository(location, **options)


def open_store(location: str | Path) -> ServedRepository:
    """A store this process holds itself (what ``wmx serve`` serves): a PostgreSQL schema for
    ``postgresql://`` locations, else an embedded file; never a service."""
    location = str(location).strip()
    if location.lower().startswith(("postgresql://", "postgres://")):
        return _open_postgres(location)
    from wmx.repository.embedded import EmbeddedRepository

    return EmbeddedRepository(location)


def _open_postgres(location: str, **options: Any) -> ServedRepository:
    """A repository in a PostgreSQL schema (SPEC §2.7; needs the ``wmx[postgresql]`` extra)."""
    try:
        from wmx.store.postgres import PostgresRepository
    except ImportError:
        raise RepositoryUnavailable(
            "PostgreSQL repositories need the psycopg driver: pip install 'wmx[postgresql]'"
        ) from None
    return PostgresRepository(location, **options)


__all__ = ["InvalidRequest", "NotAuthorized", "Repository", "RepositoryError",
           "RepositoryNotFound", "RepositoryUnavailable", "is_service_url", "open_repository",
           "open_store"]
