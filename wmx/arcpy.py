"""The shim for ``from wmx import arcpy``: Esri's Workflow Manager samples run as written.

It re-exports the public face of :mod:`wmx` (tools under every spelling, ``arcpy.wmx.<Tool>``,
``Result``, ``ExecuteError``, ``ValueTable``, ``arcpy.env``, message, parameter and licensing
functions), and explains any other name a script reaches for (``arcpy.da``, ``import
arcpy.da``) with one clear error. It must not grow behaviour of its own; anything a script can
call belongs in the package proper.
"""

from typing import TYPE_CHECKING, Any

from wmx import *  # noqa: F403 - the shim is exactly wmx's public face
from wmx import __all__  # noqa: F401
from wmx.not_provided import install_submodule_finder

if TYPE_CHECKING:
    # A script type-checks as against arcpy: what the shim lacks, or a type checker cannot
    # see through ``import *`` (the tools' suffixed names), is Any, not the end of the script.
    def __getattr__(name: str) -> Any: ...
else:
    from wmx.not_provided import shim_getattr as __getattr__  # noqa: F401

__path__: list[str] = []  # a package without submodules: "import arcpy.da" reaches the finder

install_submodule_finder()
