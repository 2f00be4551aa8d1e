"""``vmbench run``: its options. Light to import, so that ``vmbench --help`` and the reading
commands load no engine; the run itself is in bench.cli.running."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import DEFAULT_SCENARIO
from bench.results import check_run_id
from bench.run.options import hint


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run scenarios and write results/<run_id>/results.csv")
    run.add_argument(
        "scenarios",
        nargs="*",
        type=Path,
        metavar="SCENARIO.toml",
        help=f"scenario or suite files (default: {DEFAULT_SCENARIO})",
    )
    run.add_argument(
        "--backends",
        type=_backend_list,
        metavar="LIST",
        help="comma-separated engine names, e.g. docker,qemu (vmbench doctor lists them all)",
    )
    run.add_argument(
        "--repetitions",
        type=_positive_int,
        metavar="N",
        help="measured trials per backend, guest and workload (overrides the file)",
    )
    run.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="where the run folder is written (default: results)",
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help="the least that still yields every metric: no warmup, at most 2 repetitions, "
        "1 s of memory samples, density at its two smallest sizes",
    )
    run.add_argument(
        "--no-report",
        action="store_true",
        help="do not write the report folder at the end of the run",
    )
    run.add_argument(
        "--resume",
        metavar="RUN_ID",
        type=run_id,
        help="continue run RUN_ID in the results folder: only the trials it has no row for",
    )
    run.add_argument(
        "--cold",
        action="store_true",
        help="root only: drop the page cache (echo 3 > /proc/sys/vm/drop_caches) before the "
        "first measured trial of each guest and backend, and label that trial cold",
    )
    run.add_argument(
        "--time-budget",
        type=duration_s,
        metavar="TIME",
        help="start no trial after TIME (90s, 20m, 1h): the one in flight finishes, and the "
        'last lines say which groups are above their target; with repetitions = "auto" the '
        "budget goes to the groups whose intervals are widest",
    )
    run.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when something could not run on this host (an engine, a guest), too; "
        "without it such a run exits 0 if every trial that could run here ended ok",
    )
    run.set_defaults(handler=cmd_run)


DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600}


def duration_s(text: str) -> float:
    """'90s', '20m', '1h' (or '1.5h') -> seconds."""
    number, unit = text.strip()[:-1], text.strip()[-1:]
    try:
        value = float(number) * DURATION_UNITS_S[unit]
    except (KeyError, ValueError):
        value = -1.0
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 90s, 20m or 1h (up to a week), got {text!r}"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    from bench.run.scenario import MAX_REPETITIONS

    if not 1 <= value <= MAX_REPETITIONS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_REPETITIONS}, got {value}")
    return value


def run_id(text: str) -> str:
    try:
        return check_run_id(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _backend_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    from bench.backends import engine_names  # only when the option is given

    known = engine_names()
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}{hint(name, known)}; expected some of {','.join(known)}"
            )
    if not names:
        raise argparse.ArgumentTypeError("expected at least one backend")
    return names


def cmd_run(args: argparse.Namespace) -> int:
    from bench.cli.running import execute  # the engines, the runner: only for a run

    return execute(args)
