"""Remove what ended vmbench runs left behind (after a crash or kill -9), and only that.

Generic over backends: every engine the registry knows is visited, and each one finds its own
leftovers of a run in ``Backend.cleanup_run`` (docker and podman: containers by the run label;
qemu: the pid files the run wrote, checked against the command line, and qemu processes named
after the run; vagrant: machines, domains and boxes with the run's prefix), says which runs
left something in ``leftover_run_ids`` and whose they were in ``run_owners``.

On a machine many users share, whoever runs ``vmbench clean``:
- a live run (bench.run.liveness: its records, or the owner words on its things, name a
  process that still runs) is never touched;
- a regular user removes only the leftovers of their own runs; root removes everyone's and
  says whose they were;
- shared objects (``cleanup_all``: the libvirt pool, boxes) go only when no run on the
  machine is alive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bench.backends import BackendError, engine_names, make_backend
from bench.run import liveness


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # could not be checked or removed
    running: list[str] = field(default_factory=list)  # live runs, left alone on purpose
    others: list[str] = field(default_factory=list)  # leftovers not provably this user's
    owners: dict[str, str] = field(default_factory=dict)  # run id -> user, where known
    cleaned: set[str] = field(default_factory=set)  # runs whose leftovers were removed
    listed: set[str] = field(default_factory=set)  # runs an engine still has things of


def clean(run_id: str | None = None, own_run: str | None = None) -> CleanReport:
    """Remove what ended runs left behind (all of them, or ``run_id``'s).

    Runs that are still going, anyone's, are never touched; ``own_run`` is the calling run
    itself (``--resume`` cleaning up after its earlier attempt).
    """
    report = CleanReport()
    alive = liveness.alive_runs() - {own_run}
    if run_id is not None and run_id in alive:
        report.problems.append(f"run {run_id} is still running: not touched")
        return report
    live = set(alive)
    others: set[str] = set()
    visited = []
    for name in engine_names():
        backend = _usable(name, report)
        if backend is None:
            continue
        try:
            live |= _clean_backend(backend, run_id, own_run, alive, others, report)
            visited.append(backend)
        except (BackendError, OSError) as e:
            report.problems.append(f"{name}: {e}")
            backend.close()
        except Exception as e:  # an engine fault: say which backend, keep cleaning the others
            report.problems.append(f"{name}: {type(e).__name__}: {e}")
            backend.close()
    for backend in visited:
        try:
            # Shared objects only when no run anywhere lives, and none of another user's
            # leftovers (left alone above) still needs them.
            if run_id is None and not live and not others:
                report.removed += backend.cleanup_all()
        except (BackendError, OSError) as e:
            report.problems.append(f"{backend.name}: {e}")
        except Exception as e:  # an engine fault: say which backend, clean the others
            report.problems.append(f"{backend.name}: {type(e).__name__}: {e}")
        finally:
            backend.close()
    for rid in live:
        owner = liveness.owner_of(rid)
        if owner is not None:
            report.owners.setdefault(rid, owner.user)
    report.running = sorted(live)
    report.others = sorted(others - live)
    _forget_dead_records(run_id, report)
    return report


def _usable(name: str, report: CleanReport):
    try:
        backend = make_backend(name)
        available = backend.availability()
    except BackendError as e:
        report.problems.append(f"{name}: not checked: {e}")
        return None
    if available.usable:
        return backend
    # An engine that never ran for this user (not installed, ...) left nothing; one that is
    # down (a Docker daemon that does not answer) may have: say so instead of "nothing to clean".
    if not available.never_ran:
        report.problems.append(f"{name}: not checked: {available.reason}; fix: {available.fix}")
    backend.close()
    return None


def _clean_backend(
    backend,
    run_id: str | None,
    own_run: str | None,
    alive: set[str],
    others: set[str],
    report: CleanReport,
) -> set[str]:
    """Remove this backend's leftovers of ended runs this user may remove; the live runs
    found on its things (their owner words name a running process)."""
    uid = os.geteuid()
    owners = backend.run_owners()
    listed = {run_id} if run_id else backend.leftover_run_ids()
    report.listed |= listed | set(owners)
    live: set[str] = set()
    for rid in sorted(listed):
        words = owners.get(rid)
        owner = liveness.Owner.parse(words) or liveness.owner_of(rid)
        if owner is not None:
            report.owners.setdefault(rid, owner.user)
        if rid != own_run and (rid in alive or liveness.is_alive(rid, words)):
            live.add(rid)
            continue
        # A regular user's: only what provably is theirs. Things with no owner recorded were
        # made by an older vmbench, or are another user's that carry no words (a volume).
        if uid != 0 and (owner is None or owner.uid != uid):
            others.add(rid)
            continue
        whose = ""  # root says whose, where it is not its own
        if uid == 0 and owner is None:
            whose = " (owner not recorded)"
        elif uid == 0 and owner is not None and owner.uid != 0:
            whose = f" ({owner.user}'s run)"
        report.removed += [line + whose for line in backend.cleanup_run(rid)]
        report.cleaned.add(rid)
    return live


def _forget_dead_records(run_id: str | None, report: CleanReport) -> None:
    """The records a killed run left (it never removed them), once nothing of it is left
    that they could still tell the owner of: this user's, or anyone's for root."""
    uid = os.geteuid()
    if report.problems:  # an engine not looked at may still hold things of these runs
        return
    for rid in [run_id] if run_id else sorted(liveness.recorded_runs()):
        if rid in report.listed and rid not in report.cleaned:
            continue
        owner = liveness.owner_of(rid)
        if owner is None or owner.uid == uid or uid == 0:
            liveness.forget_dead(rid)
