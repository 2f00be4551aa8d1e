"""What every command shares: exit codes, the two consoles, usage errors, reading input."""

from __future__ import annotations

import argparse
import contextlib
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
    """Run a report-side step; unusable input is a usage error (exit 2), not a traceback.

    numpy's RuntimeWarnings (a median of nothing, a spread of one value) and matplotlib's
    layout warnings stop here: the reading side says what is missing in its own warnings."""
    import warnings

    import numpy as np

    from bench.analysis.dataset import ReportInputError

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.filterwarnings(
                "ignore", category=UserWarning, module=r"matplotlib|bench\.render"
            )
            return make()
    except ReportInputError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(_os_error(e)) from None


def _os_error(e: OSError) -> str:
    return f"{plain(str(e.filename or ''))}: {e.strerror}"


@contextlib.contextmanager
def reading_files(make):
    """A reading step's output context (bench.render.outdir): a folder or file that cannot
    be made is a usage error (exit 2), not a traceback."""
    try:
        with make() as made:
            yield made
    except OSError as e:
        raise UsageError(_os_error(e)) from None


def plain(text: str) -> str:
    """Input text as the terminal may show it (bench.render.terminal.plain)."""
    from bench.render.terminal import plain

    return plain(text)


def print_warnings(warnings: list[str]) -> None:
    """Every reading command's warnings, each once, in the same words."""
    for warning in dict.fromkeys(warnings):
        console.print(f"vmbench: warning: {plain(warning)}", markup=False, highlight=False)


def print_outcome(outcome, label: str, table=None) -> None:
    from bench.render.terminal import verdict_table

    print_warnings(outcome.warnings)
    out.print(table if table is not None else verdict_table(outcome.claims))
    out.print(f"{label}: {plain(str(outcome.report_path))}", markup=False)
