"""One result row with sensible values, any of them changed."""

from __future__ import annotations

from bench.results import Row


def result_row(**changes) -> Row:
    values = dict(
        run_id="r1",
        host_id="h",
        scenario="s",
        guest="busybox",
        backend="docker",
        accel="none",
        instances=1,
        trial=1,
        phase="warm",
        metric="ready_s",
        value=0.25,
        unit="s",
        status="ok",
        detail="workload=ready",
        started_at="2026-01-01T00:00:00+00:00",
    )
    values.update(changes)
    return Row(**values)
