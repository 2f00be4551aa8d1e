"""Remove what vmbench runs left behind (after a crash or kill -9), and only that.

Containers are found by the run label, qemu processes by the pid files a run writes (and
checked against their command line before they are killed).
"""

from __future__ import annotations

from bench.backends import BackendError, make_backend
from bench.backends.qemu import run_dir

BACKENDS = ("docker", "qemu", "vagrant")


def leftover_run_ids() -> set[str]:
    ids: set[str] = set()
    folder = run_dir("x").parent
    if folder.exists():
        ids.update(p.name for p in folder.iterdir() if p.is_dir())
    try:
        from bench.backends.docker import RUN_LABEL, _client

        client = _client()
        try:
            for c in client.containers.list(all=True, filters={"label": RUN_LABEL}):
                ids.add(c.labels[RUN_LABEL])
        finally:
            client.close()
    except Exception:
        pass
    return ids


def clean(run_id: str | None = None) -> tuple[list[str], list[str]]:
    """Returns (what was removed, what could not be checked or removed)."""
    removed: list[str] = []
    problems: list[str] = []
    run_ids = [run_id] if run_id else sorted(leftover_run_ids())
    for name in BACKENDS:
        backend = make_backend(name)
        available = backend.availability()
        if not available.usable:
            continue
        for rid in run_ids:
            try:
                removed += backend.cleanup_run(rid)
            except (BackendError, OSError) as e:
                problems.append(f"{name}: run {rid}: {e}")
            except Exception as e:
                problems.append(f"{name}: run {rid}: {type(e).__name__}: {e}")
        if run_id is None:
            try:
                removed += backend.cleanup_all()
            except Exception as e:
                problems.append(f"{name}: {type(e).__name__}: {e}")
        backend.close()
    return removed, problems
