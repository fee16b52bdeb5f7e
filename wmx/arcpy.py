"""The shim for ``from wmx import arcpy``: Esri's Workflow Manager samples run as written.

It re-exports the public face of :mod:`wmx` (tools under every spelling, ``arcpy.wmx.<Tool>``,
``Result``, ``ExecuteError``, ``ValueTable``, message and licensing functions). It must not grow
behaviour of its own; anything a script can call belongs in the package proper.
"""

from wmx import *  # noqa: F403 - the shim is exactly wmx's public face
from wmx import __all__  # noqa: F401
