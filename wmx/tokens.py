"""Token files: the one rule for a server that requires a token and a client that presents
one (``wmx serve --token-file``, ``wmx sync --token-file``), so a file written once serves
both ends. The token itself is never part of a message."""

from __future__ import annotations

from pathlib import Path


def read_token_file(path: str | Path) -> str:
    """The file's contents, surrounding white space stripped; ValueError saying why not."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"Cannot read the token file {path}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"The token file {path} is empty")
    return token
