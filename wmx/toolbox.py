"""arcpy's toolbox plumbing for the Workflow Manager tools: the ``arcpy.wmx.<Tool>`` namespace,
the ``<Tool>_wmx`` / ``<Tool>_WMX`` names, ``ImportToolbox`` and the licensing functions.

Licensing is simulated: wmx needs no licence, so the JTX extension is always available. Set
``WMX_SIMULATE_LICENSE=Unavailable`` to exercise a script's no-licence branch.
"""

from __future__ import annotations

import functools
import os
import types
from pathlib import Path
from typing import Any, NoReturn, Optional

from wmx.not_provided import NotProvidedError, message
from wmx.tools import TOOLS

ALIAS = "wmx"
TOOLBOX_LABEL = "Workflow Manager Tools"
EXTENSION = "JTX"


def _toolbox(alias: str) -> types.ModuleType:
    module = types.ModuleType(alias, f"{TOOLBOX_LABEL} (alias {ALIAS})")
    for name, tool in TOOLS.items():
        setattr(module, name, tool)
    vars(module)["__all__"] = list(TOOLS)  # a module built at run time: no declared names
    vars(module)["__getattr__"] = functools.partial(_not_a_tool, alias)  # PEP 562
    return module


def _not_a_tool(alias: str, name: str) -> NoReturn:
    """``arcpy.wmx.<Tool>`` for a Workflow Manager tool wmx does not provide."""
    if name.startswith("_"):
        raise AttributeError(f"module {alias!r} has no attribute {name!r}")
    raise NotProvidedError(message(f"{alias}.{name}"))


wmx = _toolbox(ALIAS)
"""``arcpy.wmx``: the toolbox as a module-like namespace (``arcpy.wmx.SynchronizeJobData``)."""

SUFFIXED_TOOLS: dict[str, Any] = {
    f"{name}_{suffix}": tool for name, tool in TOOLS.items() for suffix in ("wmx", "WMX", "Wmx")
}
"""``SynchronizeJobData_wmx`` and friends: Esri's own samples use both spellings."""


def ImportToolbox(input_file: str, module_name: Optional[str] = None) -> types.ModuleType:
    """Accept Esri's Workflow Manager toolbox path (e.g. ``...\\Workflow Manager Tools.tbx``)
    and return the tools; any other toolbox is an error, since wmx cannot run it."""
    stem = Path(str(input_file).replace("\\", "/")).stem.lower()
    if "workflow manager" not in stem and stem not in {"wmx", "wmxtools", "jtx"}:
        raise ValueError(f"{input_file} is not the Workflow Manager toolbox; wmx provides only"
                         " the Workflow Manager tools")
    return wmx if not module_name else _toolbox(module_name)


def _licence_state(available: str) -> str:
    simulated = os.environ.get("WMX_SIMULATE_LICENSE")
    return simulated if simulated else available


def CheckExtension(extension_code: str) -> str:
    if str(extension_code).upper() != EXTENSION:
        return "NotLicensed"
    return _licence_state("Available")


def CheckOutExtension(extension_code: str) -> str:
    if str(extension_code).upper() != EXTENSION:
        return "Failed"
    return "CheckedOut" if _licence_state("Available") == "Available" else "Unavailable"


def CheckInExtension(extension_code: str) -> str:
    return "CheckedIn" if str(extension_code).upper() == EXTENSION else "Failed"
