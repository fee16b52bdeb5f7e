"""The wmx geoprocessing tools: one module per tool family, plus the generic runner in _base."""

from wmx.tools.admin import ClearJobReplicationInfo
from wmx.tools.exchange import ExportJobData, ImportJobData
from wmx.tools.replication import CreateJobDataReplica, ReplicateJobData, SynchronizeJobData

TOOLS = {tool.__name__: tool for tool in (
    ReplicateJobData, CreateJobDataReplica, SynchronizeJobData, ExportJobData, ImportJobData,
    ClearJobReplicationInfo)}
"""Every tool of the Workflow Manager toolbox (alias ``wmx``), by its Esri name."""

__all__ = ["TOOLS", *TOOLS]
