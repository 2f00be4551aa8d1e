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
    run.set_defaults(handler=cmd_run)


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
