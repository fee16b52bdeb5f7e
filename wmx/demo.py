"""``wmx demo``: a parent and two children on embedded repositories, edited everywhere,
replicated and synchronized with the arcpy-compatible tools, then compared.

It is also the shortest tour of the public API, so it uses only what a user script would.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Optional

from wmx import arcpy
from wmx.model.records import JobType
from wmx.repository.embedded import EmbeddedRepository
from wmx.repository.setup import initialise

USER = "demo"


def _say(out: Callable[[str], None], title: str) -> None:
    out("")
    out(f"== {title}")


def run_demo(folder: Optional[Path] = None, out: Callable[[str], None] = print) -> bool:
    """Run the demo in ``folder`` (a new temporary folder if None); True when converged."""
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="wmx-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name.lower()}.wmxdb" for name in ("Redlands", "Ohio", "Arizona")}
    for path in paths.values():
        if path.exists():
            raise FileExistsError(f"{path} exists; give the demo an empty folder")
    out(f"wmx demo in {folder}")

    _say(out, "1. Create a parent (quick configuration) and two children (minimum)")
    with initialise(paths["Redlands"], name="Redlands", config="quick", admin=USER) as parent:
        for _ in range(5):
            job = parent.create_job(1, user=USER)
            parent.create_hold(job.id, 1, user=USER, comments="waiting for imagery")
        parent.set_notes(1, "Imagery arrives Monday", user=USER)
    for name in ("Ohio", "Arizona"):
        initialise(paths[name], name=name, config="minimum", admin=USER).close()
    out("Redlands has 5 jobs; Ohio and Arizona are empty")

    _say(out, "2. ReplicateJobData_wmx: copy Redlands to both children")
    children = f"Ohio true {paths['Ohio']};\nArizona true {paths['Arizona']}"
    result = arcpy.ReplicateJobData(str(paths["Redlands"]), "Redlands", children)
    out(result.getMessages())

    _say(out, "3. Edit all three repositories")
    with EmbeddedRepository(paths["Ohio"]) as ohio:
        created = [ohio.create_job(2, user=USER).id for _ in range(2)]
        ohio.update_job(2, user=USER, description="Ohio reviewed the extent")
        ohio.log_action(1, 7, user=USER, comments="Field crew scheduled")
        out(f"Ohio: created jobs {created}, edited job 2, logged a comment on job 1")
    with EmbeddedRepository(paths["Arizona"]) as arizona:
        job = arizona.create_job(3, user=USER)
        arizona.add_attachment(job.id, "site-photo.jpg", b"\xff\xd8demo-bytes", user=USER)
        arizona.update_job(2, user=USER, description="Arizona changed the extent")
        arizona.create_config(JobType(id=None, name="Survey", category="Field"))
        out(f"Arizona: created job {job.id} with an attachment, edited job 2 (a conflict with "
            "Ohio), added job type Survey")
    with EmbeddedRepository(paths["Redlands"]) as parent:
        parent.release_hold(3, parent.holds(3)[0].id, user=USER, comments="imagery arrived")
        parent.delete_job(5, user=USER)
        out("Redlands: released the hold on job 3, deleted job 5")

    _say(out, "4. SynchronizeJobData_wmx (the last-sync time is Esri's sample value)")
    rows = f"Ohio true {paths['Ohio']} 2011-08-08 12:00;Arizona true {paths['Arizona']} " \
           "2011-08-08 12:00"
    result = arcpy.SynchronizeJobData(str(paths["Redlands"]), "Redlands", rows)
    out(result.getMessages())
    out(f"Status: {result.getOutput(0)}")
    out("Last synchronized (Output_LastSync):")
    for row in result.getOutput(1).split(";"):
        out(f"  {row}")

    _say(out, "5. Synchronize again, feeding Output_LastSync back in: nothing to do")
    again = arcpy.SynchronizeJobData(str(paths["Redlands"]), "Redlands", result.getOutput(1))
    out(again.getMessages())

    _say(out, "6. Summary")
    states = {}
    for name, path in paths.items():
        with EmbeddedRepository(path) as repository:
            states[name] = repository.all_rows()
            out(f"{name:9} jobs {repository.jobs()}  job 2: "
                f"{repository.get_job(2).description!r}")
            if name == "Redlands":
                out(f"{'':9} conflict log: {len(repository.conflicts())} losing version(s) kept "
                    f"(wmx conflicts {path} --show 1 prints one)")
    converged = states["Ohio"] == states["Redlands"] == states["Arizona"]
    out(f"All three repositories identical, row for row: {'yes' if converged else 'NO'}")
    return converged
