# Name: ReplicateJobData_Example.py
# Description: Replicates the parent repository to two child repositories.
# Esri's documented sample for Replicate Job Data (Workflow Manager (Classic)). Changed for wmx,
# only where it must be: the service URLs name repository files in the current folder (see
# README.md; a WMServer URL of `wmx serve` or of an Esri server works the same way).
# Esri's long lines are kept as they were.
# ruff: noqa: E501
# Run it untouched with:  wmx run ReplicateJobData_Example.py

# Import arcpy module
import arcpy

# Check out any necessary licenses
arcpy.CheckOutExtension("JTX")

# Local variables:
# wmx: was "http://localhost/arcgis/rest/services/parent/wmserver"
Input_Parent_Repository_URL = "parent.wmxdb"
Input_Parent_Repository_Name = "Parent"
# wmx: the URLs were http://ohioServer/arcgis/rest/services/SO/WMServer and http://AZServer/...
Input_Multi_Name = "Ohio_Repository true ohio.wmxdb;AZ_Repository true az.wmxdb"

# Process: Replicate Job Data
arcpy.ReplicateJobData_WMX(Input_Parent_Repository_URL, Input_Parent_Repository_Name, Input_Multi_Name)
