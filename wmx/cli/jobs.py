"""``wmx jobs list|show|create|update|close|delete``: day-to-day job work and test data, on
any kind of location.

Every call goes through the JobTracking interface (the embedded store and the REST client
offer the same methods), so a file and a WMServer URL behave alike. Writes act as the acting
user (SPEC 2.8). This module must never reach into a backend's internals.
"""

from __future__ import annotations

import argparse
import random
import re
from typing import Any, Callable

from wmx.cli.output import (
    EXIT_OK,
    INTERRUPTED_READING,
    CommandError,
    Output,
    acting_user,
    repository_failure,
)
from wmx.errors import INVALID_VALUE
from wmx.model.records import ActivityType, HoldType, Job, JobStatus, JobType, Priority, User
from wmx.repository import RepositoryError
from wmx.tools.connect import open_location
from wmx.valuetable import format_time

_STAGES = {1: "created", 2: "ready", 3: "working", 4: "done", 5: "closed"}
_JOB_FIELDS = ("id", "name", "job_type_id", "status", "priority", "stage", "assigned_to",
               "owned_by", "created_by", "created_date", "due_date", "end_date",
               "percentage_complete", "description")
_ASCII_ID = re.compile(r"[0-9]{1,18}")


def job_id(text: str) -> int:
    """A job id: ASCII digits only (int() would also take '1_0' or other scripts' digits)."""
    if not _ASCII_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (digits 0-9)")
    return int(text)


class _Names:
    """Configuration names of one repository, to show and accept names instead of ids."""

    def __init__(self, repository: Any) -> None:
        self.types = {t.id: t for t in repository.list_config(JobType)}
        self.statuses = {s.id: s.name for s in repository.list_config(JobStatus)}
        self.priorities = {p.value: p.name for p in repository.list_config(Priority)}

    def row(self, job: Job) -> dict[str, Any]:
        row = {name: getattr(job, name) for name in _JOB_FIELDS}
        job_type = self.types.get(job.job_type_id)
        row["job_type"] = job_type.name if job_type else str(job.job_type_id)
        row["status_name"] = self.statuses.get(job.status, str(job.status))
        row["priority_name"] = self.priorities.get(job.priority, str(job.priority))
        row["stage_name"] = _STAGES.get(job.stage, str(job.stage))
        return row

    @staticmethod
    def lookup(kind: str, text: str, choices: dict[int, str]) -> int:
        """An id from an id or a name (case-insensitive)."""
        if _ASCII_ID.fullmatch(text) and int(text) in choices:
            return int(text)
        for key, name in choices.items():
            if name.casefold() == text.casefold():
                return key
        known = ", ".join(sorted(choices.values())) or "none"
        raise CommandError(INVALID_VALUE, f"There is no {kind} {text!r} (known: {known})")

    def type_id(self, text: str) -> int:
        return self.lookup("job type", text, {k: t.name for k, t in self.types.items()})


def _with_repository(args: argparse.Namespace, work: Callable[[Any], int]) -> int:
    try:
        repository = open_location(args.location)
        try:
            return work(repository)
        finally:
            repository.close()
    except RepositoryError as exc:
        raise repository_failure(exc, args.location) from None


def _line(row: dict[str, Any]) -> str:
    return (f"{row['id']:>6}  {row['name'][:28]:28}  {row['job_type'][:16]:16}  "
            f"{row['status_name'][:14]:14}  {row['priority_name'][:8]:8}  "
            f"{row['stage_name']:8}  {row['assigned_to'] or '-'}")


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    def work(repository: Any) -> int:
        names = _Names(repository)
        ids = sorted(repository.jobs())
        shown = ids if args.limit is None else ids[:args.limit]
        rows = [names.row(repository.get_job(i)) for i in shown]
        out.data = {"total": len(ids), "jobs": rows}
        out.line(f"{'id':>6}  {'name':28}  {'type':16}  {'status':14}  {'priority':8}  "
                 f"{'stage':8}  assigned to")
        for row in rows:
            out.line(_line(row))
        out.line(f"{len(rows)} of {len(ids)} job(s)")
        return EXIT_OK
    return _with_repository(args, work)


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    def work(repository: Any) -> int:
        names = _Names(repository)
        row = names.row(repository.get_job(args.id))
        holds = [{"id": h.id, "type": h.type, "held_by": h.held_by, "comments": h.hold_comments,
                  "released": h.release_date is not None} for h in repository.holds(args.id)]
        history = [{"date": a.date, "user": a.user, "type": a.type, "message": a.message}
                   for a in repository.activity(args.id)]
        notes = repository.get_notes(args.id)
        out.data = {"job": row, "holds": holds, "notes": notes, "history": history}
        for key in ("id", "name", "job_type", "status_name", "priority_name", "stage_name",
                    "assigned_to", "owned_by", "created_by", "created_date", "due_date",
                    "percentage_complete", "description"):
            value = row[key]
            shown = format_time(value) if hasattr(value, "isoformat") else \
                ("-" if value is None else value)
            out.line(f"{key.replace('_name', '').replace('_', ' '):20} {shown}")
        out.line(f"{'notes':20} {notes or '-'}")
        out.line(f"holds ({len(holds)}):")
        for hold in holds:
            state = "released" if hold["released"] else "active"
            out.line(f"  #{hold['id']} {state}, by {hold['held_by']}: {hold['comments']}")
        out.line(f"history ({len(history)}):")
        for entry in history:
            when = format_time(entry["date"]) if entry["date"] else ""
            out.line(f"  {when}  {entry['user']}: {entry['message']}")
        return EXIT_OK
    return _with_repository(args, work)


def _fields(args: argparse.Namespace, names: _Names) -> dict[str, Any]:
    """The job fields the options name, as the store wants them."""
    fields: dict[str, Any] = {}
    for option in ("name", "description"):
        if getattr(args, option) is not None:
            fields[option] = getattr(args, option)
    if args.priority is not None:
        fields["priority"] = names.lookup("priority", args.priority, names.priorities)
    if args.assign is not None:
        fields["assigned_to"], fields["assigned_type"] = args.assign or None, 1 if args.assign \
            else 0
    if getattr(args, "status", None) is not None:
        fields["status"] = names.lookup("status", args.status, names.statuses)
    if getattr(args, "percent", None) is not None:
        fields["percentage_complete"] = args.percent
    return fields


def cmd_create(args: argparse.Namespace, out: Output) -> int:
    user = acting_user(args)

    def work(repository: Any) -> int:
        names = _Names(repository)
        if args.count is not None:
            created = _bulk(repository, names, args.count, user, random.Random(args.seed))
        else:
            type_id = names.type_id(args.type) if args.type else min(names.types, default=1)
            created = [repository.create_job(type_id, user=user, **_fields(args, names)).id]
        out.data = {"created": created}
        out.info(f"Created {len(created)} job(s): {_ranges(created)}")
        return EXIT_OK
    return _with_repository(args, work)


def _bulk(repository: Any, names: _Names, count: int, user: str,
          rng: random.Random) -> list[int]:
    """A realistic mix: every active job type, every priority, assignees, holds, notes,
    logged comments, and about a fifth of the jobs closed."""
    types = [t.id for t in names.types.values() if t.state != 0] or list(names.types)
    priorities = sorted(names.priorities) or [0]
    users = [u.user_name for u in repository.list_config(User)] or [user]
    hold_types = [h.id for h in repository.list_config(HoldType)]
    comment_type = next((a.id for a in repository.list_config(ActivityType)
                         if "comment" in a.name.casefold()), None)
    created = []
    for number in range(count):
        job = repository.create_job(rng.choice(types), user=user,
                                    priority=rng.choice(priorities),
                                    assigned_to=rng.choice(users), assigned_type=1,
                                    description=f"Bulk job {number + 1} of {count}")
        created.append(job.id)
        if hold_types and rng.random() < 0.2:
            repository.create_hold(job.id, rng.choice(hold_types), user=user,
                                   comments="waiting for data")
        if rng.random() < 0.3:
            repository.set_notes(job.id, f"Checked by {user}", user=user)
        if comment_type is not None and rng.random() < 0.3:
            repository.log_action(job.id, comment_type, user=user, comments="field visit")
        if rng.random() < 0.2:
            repository.close_job(job.id, user=user)
    return created


def _ranges(ids: list[int]) -> str:
    """``1-5, 9``: a short way to name many ids."""
    parts: list[str] = []
    for job in sorted(ids):
        if parts and parts[-1].split("-")[-1] == str(job - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{job}"
        else:
            parts.append(str(job))
    return ", ".join(parts) or "none"


def cmd_update(args: argparse.Namespace, out: Output) -> int:
    user = acting_user(args)

    def work(repository: Any) -> int:
        fields = _fields(args, _Names(repository))
        if not fields:
            raise CommandError(INVALID_VALUE, "Nothing to update: give at least one of --name, "
                                              "--description, --priority, --status, --assign, "
                                              "--percent")
        job = repository.update_job(args.id, user=user, **fields)
        out.data = {"updated": job.id, "fields": sorted(fields)}
        out.info(f"Updated job {job.id}: {', '.join(sorted(fields))}")
        return EXIT_OK
    return _with_repository(args, work)


def _each(verb: str, call: Callable[[Any, int, str], Any]) -> Callable[..., int]:
    def command(args: argparse.Namespace, out: Output) -> int:
        user = acting_user(args)

        def work(repository: Any) -> int:
            for number in args.ids:
                call(repository, number, user)
            out.data = {verb: args.ids}
            out.info(f"{verb.capitalize()} job(s): {_ranges(args.ids)}")
            return EXIT_OK
        return _with_repository(args, work)
    return command


cmd_close = _each("closed", lambda repository, number, user: repository.close_job(number,
                                                                                  user=user))
cmd_delete = _each("deleted", lambda repository, number, user: repository.delete_job(number,
                                                                                    user=user))


def _edit_options(sub: argparse.ArgumentParser, *, update: bool) -> None:
    sub.add_argument("--name", help="the job's name")
    sub.add_argument("--description", help="the job's description")
    sub.add_argument("--priority", metavar="NAME|VALUE", help="priority, by name or value")
    sub.add_argument("--assign", metavar="USER", help="assign to this user ('' unassigns)")
    if update:
        sub.add_argument("--status", metavar="NAME|ID", help="status, by name or id")
        sub.add_argument("--percent", type=int, metavar="N", help="percentage complete")


def register(command: Callable[..., argparse.ArgumentParser],
             family: Callable[[str, str, str], Callable[..., argparse.ArgumentParser]]
             ) -> None:
    """``family(name, help, example)`` gives the ``command`` function of a nested group."""
    jobs = family("jobs", "list, show, create, update, close and delete jobs",
                  "wmx jobs list redlands.wmxdb --json")

    sub = jobs("list", cmd_list, "list the jobs, with type, status and priority names",
               "wmx jobs list http://localhost:8080/arcgis/rest/services/Redlands/WMServer",
               INTERRUPTED_READING)
    sub.add_argument("location", help="repository path or WMServer URL")
    sub.add_argument("--limit", type=int, metavar="N", help="show only the first N jobs")

    sub = jobs("show", cmd_show, "one job: its fields, holds, notes and history",
               "wmx jobs show redlands.wmxdb 12", INTERRUPTED_READING)
    sub.add_argument("location", help="repository path or WMServer URL")
    sub.add_argument("id", type=job_id, help="the job id")

    sub = jobs("create", cmd_create, "create a job, or with --count a realistic bulk of them",
               "wmx jobs create redlands.wmxdb --type 'Data Edits' --priority High\n"
               "  wmx jobs create redlands.wmxdb --count 500 --seed 7")
    sub.add_argument("location", help="repository path or WMServer URL")
    sub.add_argument("--type", metavar="NAME|ID", help="job type, by name or id (default: "
                                                       "the first)")
    _edit_options(sub, update=False)
    sub.add_argument("--count", type=int, metavar="N",
                     help="create N jobs of every type and priority, some held, noted, "
                          "commented or closed (test data)")
    sub.add_argument("--seed", type=int, default=0, help="random seed for --count (default 0)")

    sub = jobs("update", cmd_update, "change fields of a job", "wmx jobs update redlands.wmxdb "
               "12 --status 'Ready To Work' --assign editor1")
    sub.add_argument("location", help="repository path or WMServer URL")
    sub.add_argument("id", type=job_id, help="the job id")
    _edit_options(sub, update=True)

    for name, handler, text in (("close", cmd_close, "close jobs"),
                                ("delete", cmd_delete, "delete jobs (the deletes replicate)")):
        sub = jobs(name, handler, text, f"wmx jobs {name} redlands.wmxdb 12 13 14")
        sub.add_argument("location", help="repository path or WMServer URL")
        sub.add_argument("ids", type=job_id, nargs="+", metavar="ID", help="job ids")

