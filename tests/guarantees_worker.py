"""A process for the crash-safety tests to kill (and for the concurrent-writer tests to race):
runs one Replicate or Synchronize of embedded repositories and exits.
``tests/test_guarantees_crash_safety.py`` starts it with ``sys.executable``, waits for the
``started`` line, and kills it with ``Popen.kill()`` (works the same on Windows and Linux: no
fork, no signal handling).

Usage: ``python guarantees_worker.py sync|replicate PARENT PAGE_SIZE NAME=PATH...``
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    mode, parent_path, page_size, *children = argv
    from wmx.engine.outcome import ChildTarget
    from wmx.engine.replicate import replicate
    from wmx.engine.synchronize import synchronize
    from wmx.repository import open_repository

    engine = {"sync": synchronize, "replicate": replicate}[mode]
    targets = [ChildTarget(*child.split("=", 1)) for child in children]
    with open_repository(parent_path) as parent:
        print("started", flush=True)
        outcome = engine(parent, targets, open_repository, page_size=int(page_size))
    print("finished", outcome.status_code, flush=True)
    return outcome.status_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
