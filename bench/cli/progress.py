"""Progress of a run: the bar on a terminal, and one line for each trial that did not end ok."""

from __future__ import annotations

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
    """The progress bar, and a line for each trial that did not end ok: one per backend that
    cannot run here (skipped) or stopped working, one per guest a backend cannot run (it runs
    the others), one per other outcome. Called after each trial's rows are written, never
    while a trial measures."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.told: set[object] = set()  # backends, (backend, guest) pairs and lines said once

    def start(self, total: int, line: str) -> None:
        self.task = self.progress.add_task("starting", total=total)
        self.progress.console.print(line, markup=False)

    def trial_done(self, trial: PlannedTrial, outcome: TrialOutcome, stats: RunStats) -> None:
        label = (
            f"{trial.scenario.name}/{trial.guest} {trial.backend} {trial.workload} #{trial.trial}"
        )
        line = self._line(trial, label, outcome, stats)
        if line:
            self.progress.console.print(line, markup=False)
        assert self.task is not None
        self.progress.update(self.task, advance=1, description=label)

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


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
