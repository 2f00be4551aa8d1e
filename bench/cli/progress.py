"""Progress of a run: the bar on a terminal, one line per trial anywhere else (a log, a pipe,
CI, a fleet host's bench.log), and one line for each trial that did not end ok."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bench.run.runner import PlannedTrial, RunStats
from bench.run.trial import TrialOutcome


class TrialDisplay:
    """The progress bar (on a terminal) or a progress line per trial (``lines``), and a line
    for each trial that did not end ok: one per backend that cannot run here (skipped) or
    stopped working, one per guest a backend cannot run (it runs the others), one per other
    outcome. Called after each trial's rows are written, never while a trial measures."""

    def __init__(self, progress: Progress, lines: bool = False) -> None:
        self.progress = progress
        self.lines = lines
        self.task: TaskID | None = None
        self.told: set[object] = set()  # backends, (backend, guest) pairs and lines said once
        self.started_s = self.last_s = time.monotonic()
        self.done = 0
        self.took_s: dict[str, list[float]] = {}  # backend -> its trials' times

    def start(self, total: int, line: str) -> None:
        self.task = self.progress.add_task("starting", total=total)
        self.progress.console.print(line, markup=False)
        self.started_s = self.last_s = time.monotonic()

    def trial_done(self, trial: PlannedTrial, outcome: TrialOutcome, stats: RunStats) -> None:
        now = time.monotonic()
        took_s, self.last_s = now - self.last_s, now
        self.done += 1
        self.took_s.setdefault(trial.backend, []).append(took_s)
        label = (
            f"{trial.scenario.name}/{trial.guest} {trial.backend} {trial.workload} #{trial.trial}"
        )
        line = self._line(trial, label, outcome, stats)
        if line:
            self.progress.console.print(line, markup=False)
        if self.lines:
            self.progress.console.print(
                progress_line(
                    self.done,
                    stats,
                    label,
                    outcome.status,
                    took_s,
                    self._left_s(stats),
                    now - self.started_s,
                ),
                markup=False,
                highlight=False,
            )
        assert self.task is not None
        self.progress.update(self.task, advance=1, description=label, total=stats.planned)

    def _left_s(self, stats: RunStats) -> float:
        """Each engine's trials to do times its mean trial time so far (all engines' mean
        for one not seen yet)."""
        every = [t for times in self.took_s.values() for t in times]
        overall = sum(every) / len(every) if every else 0.0
        left = 0.0
        for backend, n in stats.to_do.items():
            times = self.took_s.get(backend)
            left += n * (sum(times) / len(times) if times else overall)
        return left

    def _line(self, trial: PlannedTrial, label: str, outcome: TrialOutcome, stats: RunStats) -> str:
        backend, pair = trial.backend, (trial.backend, trial.guest)
        if outcome.status == "unsupported" and trial.guest in stats.guests_unavailable:
            return self._once(
                f"guest {trial.guest}",
                f"vmbench: guest {trial.guest} skipped: {stats.guests_unavailable[trial.guest]}; "
                "its trials are written as unsupported",
            )
        down = stats.down.get(backend) if outcome.status == "failed" else None
        if down:
            return self._once(
                backend,
                f"vmbench: backend {backend} stopped working: {down}; its remaining "
                "trials are written as failed, the other backends go on",
            )
        if outcome.status == "unsupported" and backend in stats.unavailable:
            return self._once(
                backend, f"vmbench: backend {backend} skipped: {stats.unavailable[backend]}"
            )
        if outcome.status == "unsupported" and pair in stats.unsupported_guests:
            return self._once(
                pair,
                f"vmbench: guest {trial.guest} is not supported on {backend}: "
                f"{stats.unsupported_guests[pair]}",
            )
        if outcome.status == "unsupported":  # one trial (a density size that will not fit)
            return self._once((*pair, outcome.detail), f"  {label}: unsupported: {outcome.detail}")
        if outcome.status != "ok":
            return f"  {label}: {outcome.status}: {outcome.detail}"
        return ""

    def _once(self, key: object, line: str) -> str:
        """``line`` the first time ``key`` comes, then nothing."""
        if key in self.told:
            return ""
        self.told.add(key)
        return line


def progress_line(
    done: int,
    stats: RunStats,
    label: str,
    status: str,
    took_s: float,
    left_s: float,
    elapsed_s: float,
) -> str:
    """'vmbench: 37/121 busybox/busybox docker ready #3: ok in 1.2 s; elapsed 4:12, about 9:30
    left'."""
    return (
        f"vmbench: {done}/{max(stats.planned, done)} {label}: {status} in {took_s:.1f} s; "
        f"elapsed {clock(elapsed_s)}, about {clock(left_s)} left"
    )


def clock(seconds: float) -> str:
    """'4:12', '1:02:03'."""
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def progress_bar(console: Console) -> Progress:
    """The bar on a terminal; elsewhere nothing (the progress lines say it instead)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
