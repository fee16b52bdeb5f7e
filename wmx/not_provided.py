"""One clear error for the parts of arcpy that wmx does not provide (``arcpy.da``,
``arcpy.management``, ``arcpy.Describe``, ``GetCount_management`` ...), raised where the script
touches them: at attribute access (``arcpy.da``) and at import (``import arcpy.da``).

The attribute error is an ``AttributeError``, so ``hasattr(arcpy, "mp")`` (how scripts tell
ArcMap from Pro) still answers False; the import error is a ``ModuleNotFoundError``. This module
must never pretend to provide a name: it only explains, and it never hides a name wmx has.
"""

from __future__ import annotations

import importlib.abc
import re
import sys
from typing import NoReturn, Optional

PROVIDED = (
    "wmx stands in for arcpy only around the Workflow Manager (Classic) tools: "
    "ReplicateJobData, CreateJobDataReplica, SynchronizeJobData, ExportJobData, "
    "ImportJobData and ClearJobReplicationInfo (as arcpy.<Tool>_wmx and arcpy.wmx.<Tool>), "
    "Result, ValueTable, ExecuteError, the message functions, arcpy.env, the script-tool "
    "parameter functions and the licensing calls (docs/arcpy-compatibility.md lists them)."
)
ADVICE = "Run the parts of the script that need it with ArcGIS's own arcpy."

#: arcpy's modules and the functions scripts most often call around the Workflow Manager
#: tools; ``import wmx as arcpy`` explains these (``wmx.arcpy`` explains every missing name).
ARCPY_NAMES = frozenset({
    "da", "management", "analysis", "conversion", "cartography", "edit", "mapping", "mp",
    "sa", "na", "ddd", "stats", "ia", "ra", "lr", "md", "geocoding", "sharing", "metadata",
    "charts", "nax", "time", "ln", "topographic", "aviation", "defense", "maritime",
    "intelligence", "geoanalytics", "agolservices",
    "Describe", "Exists", "Delete_management", "GetCount_management", "ListFeatureClasses",
    "ListTables", "ListFields", "ListWorkspaces", "ListDatasets", "ListFiles", "ListRasters",
    "SearchCursor", "UpdateCursor", "InsertCursor", "SpatialReference", "Geometry", "Point",
    "Array", "Polygon", "Polyline", "Extent", "Field", "FieldMappings", "CreateScratchName",
    "CreateUniqueName", "ValidateTableName", "ParseTableName", "TestSchemaLock",
    "GetInstallInfo", "ProductInfo", "SetProduct", "Usage", "GetParameterInfo",
    "RefreshActiveView", "RefreshTOC", "ClearWorkspaceCache_management",
})
_TOOL_NAME = re.compile(r"[A-Z]\w*_(?:management|analysis|conversion|cartography|edit|sa|na|"
                        r"ddd|stats|ia|ra|lr|md|geocoding|server|ta|gapro|intelligence)")


def message(name: str) -> str:
    return f"arcpy.{name} is not provided by wmx. {PROVIDED} {ADVICE}"


class NotProvidedError(AttributeError):
    """An arcpy attribute wmx does not provide (an ``AttributeError``, so probes say no)."""


class NotProvidedImportError(ModuleNotFoundError):
    """An arcpy submodule wmx does not provide (``import arcpy.da``)."""


def is_arcpy_name(name: str) -> bool:
    return name in ARCPY_NAMES or _TOOL_NAME.fullmatch(name) is not None


def shim_getattr(name: str) -> NoReturn:
    """``wmx.arcpy.__getattr__``: every public name the shim lacks is explained."""
    if name.startswith("_"):
        raise AttributeError(f"module 'arcpy' has no attribute {name!r}")
    raise NotProvidedError(message(name))


def package_getattr(name: str) -> NoReturn:
    """``wmx.__getattr__``: arcpy's own names are explained (``import wmx as arcpy``), any
    other missing name is the ordinary error."""
    if is_arcpy_name(name):
        raise NotProvidedError(message(name))
    raise AttributeError(f"module 'wmx' has no attribute {name!r}")


class ShimSubmoduleFinder(importlib.abc.MetaPathFinder):
    """Consulted last: ``import wmx.arcpy.da``, and ``import arcpy.da`` while the shim stands
    in for ``arcpy``, fail with the clear error instead of "No module named"."""

    def find_spec(self, fullname: str, path: Optional[object] = None,
                  target: Optional[object] = None) -> None:
        for prefix in ("wmx.arcpy.", "arcpy."):
            if fullname.startswith(prefix) and self._is_shim(prefix[:-1]):
                error = NotProvidedImportError(message(fullname[len(prefix):]))
                # name stays None: importlib would swallow an error named after the submodule
                # inside "from arcpy import da" and report "cannot import name" instead.
                raise error
        return None

    @staticmethod
    def _is_shim(module_name: str) -> bool:
        module = sys.modules.get(module_name)
        return module is not None and module is sys.modules.get("wmx.arcpy")


def install_submodule_finder() -> None:
    """Add the finder once, at the end of ``sys.meta_path`` (after every real finder)."""
    if not any(isinstance(finder, ShimSubmoduleFinder) for finder in sys.meta_path):
        sys.meta_path.append(ShimSubmoduleFinder())
