"""wmx: arcpy-compatible replication of Workflow Manager (Classic) repositories."""

__version__ = "0.1.0"
