"""Export Job Data and Import Job Data: moving a repository's contents through a file, for
children that cannot be reached over the network (Esri's disconnected replication).

``Input_DatabasePath`` names a wmx repository location (a ``.wmxdb`` path or a WMServer URL)
where Esri took a ``.jtc`` connection file; when omitted, ``WMX_DEFAULT_REPOSITORY`` is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from wmx.arcpy_env import overwrite_output
from wmx.engine.exchange import (
    ExchangeFileRefused,
    MergeMode,
    OutputExists,
    export_repository,
    import_file,
    read_header,
    stamp_window,
)
from wmx.errors import (
    DATASET_EXISTS,
    DATASET_NOT_FOUND,
    INCOMPATIBLE_REPOSITORY,
    NOT_A_MEMBER,
    VALUE_REQUIRED,
    VALUE_REQUIRED_TEXT,
    dataset_exists_text,
    dataset_not_found_text,
    not_a_member_text,
)
from wmx.repository import InvalidRequest, Repository
from wmx.result import Result
from wmx.tools._base import (
    Parameter,
    ToolContext,
    ToolFailure,
    ToolSpec,
    ValidationFailure,
    run_tool,
)
from wmx.tools.connect import open_checked
from wmx.valuetable import ValueTableError, parse_time

DEFAULT_REPOSITORY_VARIABLE = "WMX_DEFAULT_REPOSITORY"

DATABASE = Parameter("Input_DatabasePath", "Input Database Path", "File", required=False)
REPOSITORY_NAME = Parameter("Input_Repository_Name", "Repository Name", "String",
                            required=False)
STATUS = Parameter("Output_Status", "Status", "Long", "Output", False)

EXPORT = ToolSpec("ExportJobData", "Export Job Data", (
    Parameter("Input_Folder", "Folder To Export To", "Folder"), DATABASE, REPOSITORY_NAME,
    Parameter("Input_Export_Since", "Export Since", "Date", required=False),
    Parameter("Input_Export_Until", "Export Until", "Date", required=False),
    STATUS, Parameter("Output_File", "Output File", "File", "Output", False)))
IMPORT = ToolSpec("ImportJobData", "Import Job Data", (
    Parameter("Input_File", "Input JXL/Acknowledgement", "File"),
    Parameter("Input_Merge", "Merge", "Boolean", required=False), DATABASE, REPOSITORY_NAME,
    STATUS))


def open_database(params: dict[str, Any]) -> Repository:
    """The repository an Export/Import call names (or the default one)."""
    location = params[DATABASE.name] or os.environ.get(DEFAULT_REPOSITORY_VARIABLE)
    if not location:
        raise ValidationFailure([(VALUE_REQUIRED, DATABASE.label, VALUE_REQUIRED_TEXT)])
    name = params[REPOSITORY_NAME.name]
    return open_checked(str(location), DATABASE.label, None if name is None else str(name),
                        REPOSITORY_NAME.label)


def _time(value: Any, label: str):
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueTableError as error:
        raise ValidationFailure([(error.code, label, error.message)]) from None


def _export(ctx: ToolContext, params: dict[str, Any]) -> dict[str, str]:
    folder = Path(str(params["Input_Folder"]))
    if not folder.is_dir():
        raise ValidationFailure([(DATASET_NOT_FOUND, "Folder To Export To",
                                  dataset_not_found_text(str(folder)))])
    since = _time(params["Input_Export_Since"], "Export Since")
    until = _time(params["Input_Export_Until"], "Export Until")
    repository = open_database(params)
    try:
        path, count = export_repository(repository, folder, since=since, until=until,
                                        replace_existing=overwrite_output())
    except OutputExists as exc:
        raise ValidationFailure([(DATASET_EXISTS, "Output File",
                                  dataset_exists_text(str(exc)))]) from None
    except InvalidRequest as exc:
        raise ToolFailure(DATASET_NOT_FOUND, str(exc), {"Output_Status": "-1"}) from None
    finally:
        repository.close()
    ctx.add_message(f"Exported {count} element(s) to {path}")
    return {"Output_Status": "0", "Output_File": str(path)}


def _merge_mode(value: Optional[Any]) -> MergeMode:
    if value is None or value is True:
        return MergeMode.COMBINE
    if value is False:
        return MergeMode.REPLACE
    text = str(value).strip().upper()
    aliases = {"TRUE": MergeMode.COMBINE, "FALSE": MergeMode.REPLACE}
    if text in aliases:
        return aliases[text]
    try:
        return MergeMode(text)
    except ValueError:
        raise ValidationFailure([(NOT_A_MEMBER, "Merge", not_a_member_text(
            [m.value for m in MergeMode]))]) from None


def _import(ctx: ToolContext, params: dict[str, Any]) -> dict[str, str]:
    path = Path(str(params["Input_File"]))
    if not path.is_file():
        raise ValidationFailure([(DATASET_NOT_FOUND, "Input JXL/Acknowledgement",
                                  dataset_not_found_text(str(path)))])
    mode = _merge_mode(params["Input_Merge"])
    repository = open_database(params)
    try:
        header = read_header(path)
        report, _ = import_file(repository, path, mode)
    except ExchangeFileRefused as exc:  # damaged, truncated, old or from another cluster
        raise ToolFailure(INCOMPATIBLE_REPOSITORY, str(exc), {"Output_Status": "-1"}) from None
    except InvalidRequest as exc:
        raise ToolFailure(DATASET_NOT_FOUND, str(exc), {"Output_Status": "-1"}) from None
    finally:
        repository.close()
    ctx.add_message(f"Imported {stamp_window(header)} exported by {header.repository} "
                    f"({mode.value}): {report.inserted} new, {report.updated} changed, "
                    f"{report.deleted} deleted, {report.renamed} renamed element(s)")
    for conflict in report.conflicts:
        ctx.add_warning(f"{conflict.kind} {conflict.int_id} was not imported: its id belongs "
                        "to a different element (kept in the conflict log)")
    return {"Output_Status": "0"}


def ExportJobData(Input_Folder: Any = None, Input_DatabasePath: Any = None,
                  Input_Repository_Name: Any = None, Input_Export_Since: Any = None,
                  Input_Export_Until: Any = None) -> Result:
    """Write the repository (or what changed in a time window, UTC) to a ``.jxl`` file."""
    return run_tool(EXPORT, (Input_Folder, Input_DatabasePath, Input_Repository_Name,
                             Input_Export_Since, Input_Export_Until), {}, _export)


def ImportJobData(Input_File: Any = None, Input_Merge: Any = "COMBINE",
                  Input_DatabasePath: Any = None, Input_Repository_Name: Any = None) -> Result:
    """Load a ``.jxl`` file: COMBINE merges it, REPLACE swaps the contents for it."""
    return run_tool(IMPORT, (Input_File, Input_Merge, Input_DatabasePath,
                             Input_Repository_Name), {}, _import)
