"""The state folder: what wmx keeps for itself outside any repository (mirrors of Esri
servers, content saved before a replicate replaced it).

``WMX_STATE_DIR`` when set, else the platform's per-user data folder for wmx (platformdirs:
``%LOCALAPPDATA%\\wmx`` on Windows, ``~/.local/share/wmx`` on Linux). Nothing in it is needed
to keep data safe: deleting it costs time (a mirror is rebuilt), never data.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_VARIABLE = "WMX_STATE_DIR"


def state_folder() -> Path:
    """``WMX_STATE_DIR``, else the per-user data folder of wmx (``platformdirs``)."""
    configured = os.environ.get(STATE_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("wmx", appauthor=False))


def saved_folder() -> Path:
    """Where content saved before a replicate replaced it goes when no better place is known
    (a service has no folder beside it)."""
    folder = state_folder() / "saved"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
