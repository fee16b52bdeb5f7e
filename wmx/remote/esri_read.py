"""Reading an Esri WMServer into records: the configuration from the root and ``community``
resources, and each job with its holds, notes, activity, attachments, dependencies and
extended properties, as Esri's documented JSON gives them.

Reads only (no element identity, no comparison: :mod:`wmx.remote.esri` does that); every read
is a documented GET, and a job's embedded attachment bytes are fetched only when asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Callable, Optional

import attrs

from wmx.model.records import (
    NODE_LOCAL_PROPERTIES,
    STORAGE_EMBEDDED,
    Activity,
    ActivityType,
    Attachment,
    ConfigProperty,
    Dependency,
    ExtendedPropertyRecord,
    Group,
    Hold,
    HoldType,
    Job,
    JobStatus,
    JobType,
    Priority,
    Record,
    User,
)
from wmx.remote.esri_client import EsriClient
from wmx.repository.base import InvalidRequest, RepositoryError

_ROOT_LISTS: tuple[tuple[type[Record], str], ...] = (
    (JobStatus, "jobStatuses"), (Priority, "jobPriorities"), (ActivityType, "activityTypes"),
    (HoldType, "holdTypes"))


@attrs.define
class JobBundle:
    """One job and everything that belongs to it, as the server answered."""

    job: Job
    holds: list[Hold]
    notes: str
    activity: list[Activity]
    attachments: list[Attachment]
    dependencies: list[Dependency]
    extended: list[ExtendedPropertyRecord]
    tables: frozenset[str] = frozenset()
    """Upper-cased names of the extended-property tables the server lists for the job."""
    contents: dict[int, bytes] = attrs.Factory(dict)


def _malformed(client: EsriClient, what: str, exc: Exception) -> RepositoryError:
    return RepositoryError(f"{client.url} sent a malformed {what}: {type(exc).__name__} {exc}")


def _decode(client: EsriClient, what: str, decode: Callable[[], Any]) -> Any:
    try:
        return decode()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _malformed(client, what, exc) from None


def _attachment(data: dict[str, Any]) -> Attachment:
    """Esri documents an attachment's ``type`` without saying what it holds (servers give the
    file extension); the cluster's records hold the storage kind there, so that it is."""
    record = Attachment.from_esri(data)
    if not isinstance(record.type, int) or isinstance(record.type, bool):
        record = attrs.evolve(record, type=record.storage_type)
    return record


def read_configuration(client: EsriClient, root: dict[str, Any]) -> list[Record]:
    """Every configuration element the server shows (job type details read in parallel)."""
    records: list[Record] = []
    for record_type, key in _ROOT_LISTS:
        items = root.get(key) or []
        records.extend(_decode(client, key, functools.partial(
            lambda rt, found: [rt.from_esri(item) for item in found], record_type, items)))
    properties = _decode(client, "configProperties",
                         lambda: dict(root.get("configProperties") or {}))
    records.extend(ConfigProperty(key=str(k), value=str(v)) for k, v in properties.items()
                   if str(k).upper() not in NODE_LOCAL_PROPERTIES)
    type_ids = _decode(client, "jobTypes", lambda: [int(t["id"]) for t in root.get("jobTypes")
                                                    or []])
    records.extend(client.map(lambda i: _decode(
        client, f"job type {i}", lambda: JobType.from_esri(client.get(f"jobTypes/{i}"))),
        type_ids))
    users = client.get("community/users").get("users") or []
    records.extend(_decode(client, "user list", lambda: [User.from_esri(u) for u in users]))
    groups = client.get("community/groups").get("groups") or []
    held = _decode(client, "user list", lambda: {
        str(u["userName"]).lower(): {str(p["name"]) for p in u.get("privileges") or []}
        for u in users})
    records.extend(_decode(client, "group list", lambda: [
        _group(Group.from_esri(g), held) for g in groups]))
    return records


def _group(group: Group, held: dict[str, set[str]]) -> Group:
    """Esri lists privileges per user (what all their groups grant), not per group; a group
    is taken to grant what every one of its members holds (exact when each user is in one
    group; never more than a member has)."""
    members: list[set[str]] = []
    for name in group.users:
        found = held.get(str(name).replace("|", "\\").lower(), held.get(str(name).lower()))
        if found is None:
            return group  # a member the user list does not show: nothing to derive from
        members.append(found)
    if not members:
        return group
    return attrs.evolve(group, privileges=sorted(set.intersection(*members)))


def read_job_ids(client: EsriClient) -> list[int]:
    return _decode(client, "job list",
                   lambda: sorted(int(i) for i in client.get("jobs")["jobIds"]))


_PARTS: dict[str, tuple[str, str]] = {
    "holds": ("holds", "holds"), "notes": ("notes", "notes"),
    "activity": ("activity", "activity"), "attachments": ("attachments", "attachments"),
    "dependencies": ("dependencies", "dependencies"),
    "extended": ("extendedProperties", "containers")}
"""A job's sub-resources: part -> (path below ``jobs/{id}``, key of the answer)."""
PARTS = frozenset({"job", *_PARTS})
"""What :func:`refresh` can read again: the job itself and each sub-resource."""


def _part_fields(job_id: int, part: str, raw: Any) -> dict[str, Any]:
    """A sub-resource's answer as :class:`JobBundle` fields."""
    with_job = {"jobId": int(job_id)}
    if part == "holds":
        return {"holds": [Hold.from_esri({**h, **with_job}) for h in raw or []]}
    if part == "notes":
        return {"notes": str(raw or "")}
    if part == "activity":
        return {"activity": [Activity.from_esri({**a, **with_job}) for a in raw or []]}
    if part == "attachments":
        return {"attachments": [_attachment({**a, **with_job}) for a in raw or []]}
    if part == "dependencies":
        return {"dependencies": [Dependency.from_esri({**d, **with_job}) for d in raw or []]}
    containers = raw or []
    return {"extended": [ExtendedPropertyRecord(
                id=int(record["id"]), job_id=int(job_id), table_name=str(container["tableName"]),
                values={v["name"]: v.get("data") for v in record.get("recordValues") or []})
                for container in containers for record in container.get("records") or []],
            "tables": frozenset(str(container["tableName"]).upper()
                                for container in containers)}


def _read_parts(client: EsriClient, job_id: int, parts: Iterable[str]
                ) -> Optional[dict[str, Any]]:
    """The named parts of a job as :class:`JobBundle` fields (``job`` included when named),
    or ``None`` if the job no longer exists (deleted meanwhile)."""
    base = f"jobs/{int(job_id)}"
    fields: dict[str, Any] = {}
    if "job" in parts:
        answer = client.get(base)
        if not answer or "id" not in answer:
            return None  # Esri's clients read {} as "no such job"
        fields["job"] = _decode(client, f"job {job_id}", lambda: Job.from_esri(answer))
    raw: dict[str, Any] = {}
    try:
        for part in sorted(set(parts) & set(_PARTS)):
            path, key = _PARTS[part]
            raw[part] = client.get(f"{base}/{path}").get(key)
    except InvalidRequest:
        again = client.get(base)
        if not again or "id" not in again:
            return None  # deleted on the server while it was being read
        raise
    for part, answer in raw.items():
        fields.update(_decode(client, f"{part} of job {job_id}",
                              functools.partial(_part_fields, job_id, part, answer)))
    return fields


def _download(client: EsriClient, bundle: JobBundle,
              wants_content: Callable[[int, Attachment], bool]) -> None:
    for attachment in bundle.attachments:
        if attachment.storage_type == STORAGE_EMBEDDED and attachment.id not in \
                bundle.contents and wants_content(bundle.job.id, attachment):
            bundle.contents[attachment.id] = client.content(
                f"jobs/{int(bundle.job.id)}/attachments/{attachment.id}/content")


def read_job(client: EsriClient, job_id: int,
             wants_content: Callable[[int, Attachment], bool]) -> Optional[JobBundle]:
    """A job with its sub-records, or ``None`` if it no longer exists (deleted meanwhile);
    ``wants_content(job_id, attachment)`` says which embedded attachments to download."""
    fields = _read_parts(client, job_id, PARTS)
    if fields is None:
        return None
    bundle = JobBundle(**fields)
    _download(client, bundle, wants_content)
    return bundle


def refresh(client: EsriClient, bundle: JobBundle, parts: Iterable[str],
            wants_content: Callable[[int, Attachment], bool]) -> Optional[JobBundle]:
    """``bundle`` with the named parts read again (after writes that changed only them), or
    ``None`` if the job no longer exists. Attachment bytes already read are kept; of the
    attachments the bundle did not list, those ``wants_content`` names are downloaded."""
    fields = _read_parts(client, bundle.job.id, parts)
    if fields is None:
        return None
    known = {a.id for a in bundle.attachments}
    fresh = attrs.evolve(bundle, **fields, contents={
        key: value for key, value in bundle.contents.items()})
    _download(client, fresh, lambda job_id, attachment: attachment.id not in known and
              wants_content(job_id, attachment))
    return fresh


__all__ = ["PARTS", "JobBundle", "read_configuration", "read_job", "read_job_ids", "refresh"]
