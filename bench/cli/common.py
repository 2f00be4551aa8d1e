"""What every command shares: exit codes, the two consoles, usage errors, reading input."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from bench.errors import InputError

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
DEFAULT_SCENARIO = Path("scenarios/default.toml")

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True) if Console().is_terminal else Console(width=160)


class UsageError(InputError):
    pass


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the rule for every bad input), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


T = TypeVar("T")


def newest_results(results_dir: Path = Path("results")) -> Path:
    runs = sorted(results_dir.glob("*/results.csv"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UsageError(f"no results/*/results.csv under {results_dir}: run `vmbench run` first")
    return runs[-1]


def existing_csvs(paths: list[Path]) -> list[Path]:
    csvs = paths or [newest_results()]
    for path in csvs:
        if not path.is_file():
            raise UsageError(f"{path}: no such results CSV")
    return csvs


def reading(make):
    """Run a report-side writer; unusable input is a usage error (exit 2), not a traceback."""
    from bench.analysis.dataset import ReportInputError

    try:
        return make()
    except ReportInputError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename or ''}: {e.strerror}") from None


def print_outcome(outcome, label: str, table=None) -> None:
    from bench.render.terminal import verdict_table

    for warning in outcome.warnings:
        console.print(f"vmbench: warning: {warning}", markup=False)
    out.print(table if table is not None else verdict_table(outcome.claims))
    out.print(f"{label}: {outcome.report_path}", markup=False)
