"""``arcpy.env``: the geoprocessing environment settings scripts set before calling tools
(``overwriteOutput``, ``workspace``, ``scratchWorkspace`` ...), and arcpy's functions around them
(``EnvManager``, ``ClearEnvironment``, ``ResetEnvironments``, ``ListEnvironments``).

Every setting arcpy has can be set and read back, so a script written for ArcGIS runs as
written; wmx itself honours only what concerns its tools: ``overwriteOutput`` (read with
:func:`overwrite_output` wherever wmx writes an output file). Names fold case, as arcpy's do.
``scratchFolder`` and ``scratchGDB`` are read-only and derived from ``scratchWorkspace``.
This module must never run a tool, open a repository or read anything but its own settings.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

_FLAG_TEXT = {"true": True, "false": False, "1": True, "0": False}


def _flag(name: str, value: Any) -> bool:
    """True/False from a bool, 0/1 or ``"true"``/``"false"``; never Python truthiness, so
    ``"false"`` is not True."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAG_TEXT:
        return _FLAG_TEXT[value.strip().lower()]
    raise ValueError(f"arcpy.env.{name} takes True or False, not {value!r}")


def _location(_name: str, value: Any) -> Optional[str]:
    """A workspace or folder: kept as text (a ``Path`` becomes its string); ``""`` is unset."""
    if value is None:
        return None
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return text or None


def _as_given(_name: str, value: Any) -> Any:
    return value


#: Setting name -> (default, converter). The names and defaults of ArcGIS Pro's environment
#: settings; ``scratchFolder``, ``scratchGDB`` and ``isCancelled`` are read-only.
_SETTINGS: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "overwriteOutput": (False, _flag),
    "workspace": (None, _location),
    "scratchWorkspace": (None, _location),
    "packageWorkspace": (None, _location),
    "addOutputsToMap": (True, _flag),
    "autoCancelling": (True, _flag),
    "autoCommit": (1000, _as_given),
    "maintainAttachments": (True, _flag),
    "maintainCurveSegments": (None, _as_given),
    "maintainSpatialIndex": (False, _flag),
    "preserveGlobalIds": (False, _flag),
    "qualifiedFieldNames": (True, _flag),
    "transferDomains": (False, _flag),
    "transferGDBAttributeProperties": (False, _flag),
    "outputCoordinateSystem": (None, _as_given),
    "geographicTransformations": (None, _as_given),
    "cartographicCoordinateSystem": (None, _as_given),
    "extent": (None, _as_given),
    "mask": (None, _as_given),
    "snapRaster": (None, _as_given),
    "cellSize": (None, _as_given),
    "cellSizeProjectionMethod": (None, _as_given),
    "cellAlignment": (None, _as_given),
    "compression": (None, _as_given),
    "configKeyword": (None, _as_given),
    "nodata": (None, _as_given),
    "pyramid": (None, _as_given),
    "rasterStatistics": (None, _as_given),
    "resamplingMethod": (None, _as_given),
    "tileSize": (None, _as_given),
    "outputMFlag": (None, _as_given),
    "outputZFlag": (None, _as_given),
    "outputZValue": (None, _as_given),
    "XYDomain": (None, _as_given),
    "XYResolution": (None, _as_given),
    "XYTolerance": (None, _as_given),
    "ZDomain": (None, _as_given),
    "ZResolution": (None, _as_given),
    "ZTolerance": (None, _as_given),
    "MDomain": (None, _as_given),
    "MResolution": (None, _as_given),
    "MTolerance": (None, _as_given),
    "coincidentPoints": (None, _as_given),
    "parallelProcessingFactor": (None, _as_given),
    "processingServer": (None, _as_given),
    "randomGenerator": (None, _as_given),
    "referenceScale": (None, _as_given),
    "terrainMemoryUsage": (None, _as_given),
    "tinSaveVersion": (None, _as_given),
    "gpuId": (None, _as_given),
    "unionDimension": (None, _as_given),
    "matchMultidimensionalVariable": (None, _as_given),
    "buildStatsAndRATForTempRaster": (None, _as_given),
}
_READ_ONLY = ("scratchFolder", "scratchGDB", "isCancelled")
_CANONICAL = {name.lower(): name for name in (*_SETTINGS, *_READ_ONLY)}


def _canonical(name: str) -> str:
    """``overwriteoutput`` -> ``overwriteOutput``; an unknown name is an AttributeError that
    suggests the closest real one (a typo must not pass silently)."""
    found = _CANONICAL.get(name.lower())
    if found is not None:
        return found
    close = difflib.get_close_matches(name.lower(), list(_CANONICAL), n=1)
    hint = f"; did you mean {_CANONICAL[close[0]]}?" if close else ""
    raise AttributeError(f"arcpy.env has no setting {name!r}{hint}")


class Environment:
    """The object behind ``arcpy.env``: attribute and item access, ``keys``/``items``/
    ``values`` and iteration over setting names, as arcpy's has."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {name: default for name, (default, _convert)
                                             in _SETTINGS.items()})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        canonical = _canonical(name)
        if canonical == "scratchFolder":
            return str(_scratch_folder(self._values["scratchWorkspace"]))
        if canonical == "scratchGDB":
            return str(_scratch_folder(self._values["scratchWorkspace"]) / "scratch.gdb")
        if canonical == "isCancelled":
            return False
        return self._values[canonical]

    def __setattr__(self, name: str, value: Any) -> None:
        canonical = _canonical(name)
        if canonical in _READ_ONLY:
            advice = "" if canonical == "isCancelled" else "; set arcpy.env.scratchWorkspace"
            raise AttributeError(f"arcpy.env.{canonical} is read-only{advice}")
        _default, convert = _SETTINGS[canonical]
        self._values[canonical] = convert(canonical, value)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def keys(self) -> list[str]:
        return [*_SETTINGS, *_READ_ONLY]

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in self.keys()]

    def _reset(self, name: Optional[str] = None) -> None:
        names = [_canonical(name)] if name else list(_SETTINGS)
        for setting in names:
            if setting in _SETTINGS:
                self._values[setting] = _SETTINGS[setting][0]

    def __repr__(self) -> str:
        changed = {name: value for name, value in self._values.items()
                   if value != _SETTINGS[name][0]}
        return f"<arcpy.env (wmx) changed={changed!r}>"


def _scratch_folder(scratch_workspace: Optional[str]) -> Path:
    """arcpy's rule: the scratch workspace if it is a folder, its parent if it is a
    geodatabase, else a ``scratch`` folder in the user's temporary directory (created, as
    arcpy creates it)."""
    if scratch_workspace:
        workspace = Path(scratch_workspace)
        return workspace.parent if workspace.suffix.lower() in (".gdb", ".sde", ".mdb") \
            else workspace
    folder = Path(tempfile.gettempdir()) / "scratch"
    with contextlib.suppress(OSError):  # an unwritable temp folder still names the path
        folder.mkdir(exist_ok=True)
    return folder


env = Environment()
"""``arcpy.env``: one per process, as in arcpy."""


def overwrite_output() -> bool:
    """Whether a tool may replace an output file that already exists (``arcpy.env.
    overwriteOutput``); a tool that writes one refuses with 000725 when this is False."""
    return env.overwriteOutput


class EnvManager:
    """``with arcpy.EnvManager(overwriteOutput=True): ...`` sets settings for the block and
    restores the previous values after it, even when the block raises."""

    def __init__(self, **settings: Any) -> None:
        self._settings = {_canonical(name): value for name, value in settings.items()}
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> EnvManager:
        self._saved = {name: env._values[name] for name in self._settings}
        for name, value in self._settings.items():
            setattr(env, name, value)
        return self

    def __exit__(self, *_exc: object) -> None:
        env._values.update(self._saved)


def ClearEnvironment(environment_name: str) -> None:
    """Reset one setting to its default."""
    env._reset(environment_name)


def ResetEnvironments() -> None:
    """Reset every setting to its default."""
    env._reset()


def ListEnvironments(wild_card: Optional[str] = None) -> list[str]:
    """Setting names, filtered by a ``*`` wild card (case-insensitive), sorted."""
    pattern = (wild_card or "*").lower()
    return sorted(name for name in env if fnmatch.fnmatchcase(name.lower(), pattern))
