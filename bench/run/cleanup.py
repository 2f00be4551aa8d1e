"""Remove what vmbench runs left behind (after a crash or kill -9), and only that.

Generic over backends: every engine the registry knows is visited, and each one finds its own leftovers of a run in ``Backend.cleanup_run``
(docker: containers by the run label; qemu: the pid files the run wrote, checked against the
command line, and qemu processes named after the run; vagrant: machines, domains and boxes
with the run's prefix) and says which runs left something in ``leftover_run_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.backends import BackendError, engine_names, make_backend
from bench.run import liveness


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # could not be checked or removed
    running: list[str] = field(default_factory=list)  # live runs, left alone on purpose


def clean(run_id: str | None = None, own_run: str | None = None) -> CleanReport:
    """Remove what ended runs left behind (all of them, or ``run_id``'s).

    Runs that are still going (their liveness lock is held) are never touched; ``own_run``
    is the calling run itself (``--resume`` cleaning up after its earlier attempt).
    """
    report = CleanReport()
    removed, problems = report.removed, report.problems
    alive = liveness.alive_runs() - {own_run}
    if run_id is not None and run_id in alive:
        report.problems.append(f"run {run_id} is still running (its lock is held): not touched")
        return report
    report.running = sorted(alive)
    for name in engine_names():
        try:
            backend = make_backend(name)
            available = backend.availability()
        except BackendError as e:
            problems.append(f"{name}: not checked: {e}")
            continue
        if not available.usable:
            # An engine that never ran for this user (not installed, ...) left nothing; one
            # that is down (a Docker daemon that does not answer) may have: say so instead of
            # "nothing to clean".
            if not available.never_ran:
                problems.append(f"{name}: not checked: {available.reason}; fix: {available.fix}")
            backend.close()
            continue
        try:
            run_ids = [run_id] if run_id else sorted(backend.leftover_run_ids() - alive)
            for rid in run_ids:
                removed += backend.cleanup_run(rid)
            if run_id is None and not alive:  # shared artefacts (boxes, pool) only when idle
                removed += backend.cleanup_all()
        except (BackendError, OSError) as e:
            problems.append(f"{name}: {e}")
        except Exception as e:  # an engine fault: say which backend, keep cleaning the others
            problems.append(f"{name}: {type(e).__name__}: {e}")
        finally:
            backend.close()
    return report
