"""wmx: arcpy-compatible replication of Workflow Manager (Classic) job-tracking repositories.

``from wmx import arcpy`` (or ``import wmx as arcpy``) gives scripts written for Esri's tools
what they call: the tools under every name Esri used, ``Result``, ``ExecuteError``,
``ValueTable``, ``env``, the message, script-tool parameter and licensing functions; any other
arcpy name (``da``, ``Describe`` ...) is one clear error saying so. ``wmx.open_repository``
opens any repository (embedded file or WMServer URL) for Python code of its own.

The package logs through the ``wmx`` logger (``wmx.engine``, ``wmx.tools`` ...) and adds only a
``NullHandler`` to it: a script or notebook that configures no logging sees nothing from wmx on
stderr; one that does (``logging.basicConfig``) sees wmx's records like any other library's.
"""

import logging
from typing import TYPE_CHECKING

from wmx.arcpy_env import (
    ClearEnvironment,
    EnvManager,
    ListEnvironments,
    ResetEnvironments,
    env,
)
from wmx.errors import (
    ExecuteError,
    ExecuteWarning,
    WmxAuthorizationError,
    WmxConflictError,
    WmxConnectionError,
    WmxRuntimeError,
    WmxValidationError,
)
from wmx.messages import (
    AddError,
    AddMessage,
    AddReturnMessage,
    AddWarning,
    GetAllMessages,
    GetMaxSeverity,
    GetMessage,
    GetMessageCount,
    GetMessages,
    GetSeverity,
    GetSeverityLevel,
    ResetProgressor,
    SetProgressor,
    SetProgressorLabel,
    SetProgressorPosition,
    SetSeverityLevel,
)
from wmx.not_provided import package_getattr as __getattr__  # noqa: F401 - arcpy.da & co
from wmx.repository import open_repository
from wmx.result import Result
from wmx.script_tool import (
    AddIDMessage,
    GetArgumentCount,
    GetParameter,
    GetParameterAsText,
    SetParameter,
    SetParameterAsText,
)
from wmx.toolbox import (
    SUFFIXED_TOOLS,
    CheckExtension,
    CheckInExtension,
    CheckOutExtension,
    ImportToolbox,
    wmx,
)
from wmx.tools import (
    ClearJobReplicationInfo,
    CreateJobDataReplica,
    ExportJobData,
    ImportJobData,
    ReplicateJobData,
    SynchronizeJobData,
)
from wmx.valuetable import ValueTable

__version__ = "0.1.0"

logging.getLogger("wmx").addHandler(logging.NullHandler())

globals().update(SUFFIXED_TOOLS)
if TYPE_CHECKING:
    # The names the line above makes, spelled out for type checkers and editors: without
    # them they take the shim's __getattr__ (which raises) for a tool and see every call of
    # SynchronizeJobData_wmx in a user's script as the end of it.
    ReplicateJobData_wmx = ReplicateJobData_WMX = ReplicateJobData_Wmx = ReplicateJobData
    CreateJobDataReplica_wmx = CreateJobDataReplica_WMX = CreateJobDataReplica_Wmx = \
        CreateJobDataReplica
    SynchronizeJobData_wmx = SynchronizeJobData_WMX = SynchronizeJobData_Wmx = \
        SynchronizeJobData
    ExportJobData_wmx = ExportJobData_WMX = ExportJobData_Wmx = ExportJobData
    ImportJobData_wmx = ImportJobData_WMX = ImportJobData_Wmx = ImportJobData
    ClearJobReplicationInfo_wmx = ClearJobReplicationInfo_WMX = ClearJobReplicationInfo_Wmx = \
        ClearJobReplicationInfo

__all__ = [
    "AddError", "AddIDMessage", "AddMessage", "AddReturnMessage", "AddWarning", "CheckExtension",
    "CheckInExtension", "CheckOutExtension", "ClearEnvironment", "ClearJobReplicationInfo",
    "CreateJobDataReplica", "EnvManager", "ExecuteError", "ExecuteWarning", "ExportJobData",
    "GetAllMessages", "GetArgumentCount", "GetMaxSeverity", "GetMessage", "GetMessageCount",
    "GetMessages", "GetParameter", "GetParameterAsText", "GetSeverity", "GetSeverityLevel",
    "ImportJobData", "ImportToolbox", "ListEnvironments", "ReplicateJobData",
    "ResetEnvironments", "ResetProgressor", "Result", "SetParameter", "SetParameterAsText",
    "SetProgressor", "SetProgressorLabel", "SetProgressorPosition", "SetSeverityLevel",
    "SynchronizeJobData", "ValueTable", "WmxAuthorizationError", "WmxConflictError",
    "WmxConnectionError", "WmxRuntimeError", "WmxValidationError", "env", "open_repository",
    "wmx",
    *SUFFIXED_TOOLS,
]
