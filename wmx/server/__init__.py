"""The WMServer-compatible REST service (``wmx serve``): Esri's documented surface plus the
replication extension, on Flask served by waitress.

Flask and waitress are the optional extra ``wmx[server]``; nothing here imports them until a
server is actually built, so ``import wmx`` works without them. This package must never be
imported by the engine or the client layer (the client shares only ``wmx.repository.wire``).

    from wmx.server import ServerThread
    with ServerThread("parent.wmxdb") as server:
        print(server.url)     # http://127.0.0.1:PORT/arcgis/rest/services/Parent/WMServer
"""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install 'wmx[server]'"


def missing_extra(exc: ImportError) -> ImportError:
    """The error to raise when Flask or waitress is absent, telling the user what to install."""
    return ImportError(f"The wmx server needs Flask and waitress ({exc.name or exc} is missing); "
                       f"install them with: {INSTALL_HINT}")


_LAZY = {"create_app": "wmx.server.app", "serve": "wmx.server.run",
         "ServerThread": "wmx.server.run"}


def __getattr__(name: str) -> Any:
    """Import the Flask-based parts only when asked for (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'wmx.server' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = ["INSTALL_HINT", "ServerThread", "create_app", "missing_extra", "serve"]
