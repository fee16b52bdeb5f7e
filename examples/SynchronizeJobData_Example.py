# Name: SynchronizeJobData_Example.py
# Description: Synchronizes the parent repository with its two child repositories.
# Esri's documented sample for Synchronize Job Data (Workflow Manager (Classic)), including its
# copy-pasted "Process: Export Job Data" comment and its unquoted "2011-08-08 12:00" times.
# Changed for wmx, only where it must be: the service URLs name repository files in the current
# folder (see README.md; a WMServer URL of `wmx serve` or of an Esri server works the same way).
# Esri's long lines are kept as they were.
# ruff: noqa: E501
# Run it untouched with:  wmx run SynchronizeJobData_Example.py

# Import arcpy module
import arcpy

# Check out any necessary licenses
arcpy.CheckOutExtension("JTX")

# Local variables:
# wmx: was "http://localhost/arcgis/rest/services/parent/wmserver"
Input_Parent_Repository_URL = "parent.wmxdb"
Input_Parent_Repository_Name = "Parent"
# wmx: the URLs were http://ohioServer/arcgis/rest/services/SO/WMServer and http://AZServer/...
Input_Multi_Name = "Ohio_Repository true ohio.wmxdb 2011-08-08 12:00;AZ_Repository true az.wmxdb 2011-08-08 12:00"

# Process: Export Job Data
arcpy.SynchronizeJobData_WMX(Input_Parent_Repository_URL, Input_Parent_Repository_Name, Input_Multi_Name)
