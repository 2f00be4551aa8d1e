"""The ``vmbench`` command: run | report | compare | slides | doctor | guests | clean.

Exit codes: 0 done, 1 some trials failed, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import host, scenario
from bench.results import ResultWriter

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
ALL_BACKENDS = ("docker", "qemu", "vagrant")
DEFAULT_SCENARIO = Path("scenarios/default.toml")

console = Console(stderr=True, soft_wrap=True)
# Not a terminal (CI logs, pipes): wide enough that tables are not squeezed to 80 columns.
out = Console(soft_wrap=True) if Console().is_terminal else Console(width=160)


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except (scenario.ScenarioError, UsageError) as e:
        console.print(f"vmbench: {e}", markup=False, highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("vmbench: interrupted")
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmbench",
        description="Start the same workload as containers and as virtual machines; "
        "measure image size, time to ready and memory.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
        help=f"comma-separated subset of {','.join(ALL_BACKENDS)}",
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
        help="the least that still yields every metric: no warmup, 2 repetitions, 1 s of memory samples",
    )
    run.add_argument(
        "--no-report",
        action="store_true",
        help="do not write the report folder at the end of the run",
    )
    run.set_defaults(handler=cmd_run)

    report = sub.add_parser("report", help="tables, claim verdicts and charts from result CSVs")
    report.add_argument(
        "csvs",
        nargs="*",
        type=Path,
        metavar="RESULTS.csv",
        help="result CSVs, from any host (default: the newest run in results/)",
    )
    report.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default: report/ beside the first CSV)",
    )
    report.set_defaults(handler=cmd_report)

    compare = sub.add_parser("compare", help="several hosts' result CSVs side by side")
    compare.add_argument("csvs", nargs="+", type=Path, metavar="RESULTS.csv")
    compare.add_argument(
        "--out",
        type=Path,
        default=Path("comparison"),
        metavar="DIR",
        help="output folder (default: comparison)",
    )
    compare.set_defaults(handler=cmd_compare)

    slides = sub.add_parser("slides", help="a slide deck (pptx) of the charts and verdicts")
    slides.add_argument(
        "csvs",
        nargs="*",
        type=Path,
        metavar="RESULTS.csv",
        help="result CSVs (default: the newest run in results/)",
    )
    slides.add_argument(
        "--out",
        type=Path,
        metavar="DECK.pptx",
        help="the deck (default: report/deck.pptx beside the first CSV)",
    )
    slides.set_defaults(handler=cmd_slides)

    doctor = sub.add_parser("doctor", help="which backends can run here, and why not")
    doctor.set_defaults(handler=cmd_doctor)

    guests = sub.add_parser("guests", help="the built guests, their artefacts and sizes")
    guests.set_defaults(handler=cmd_guests)

    clean = sub.add_parser("clean", help="remove containers and VMs that vmbench runs left behind")
    clean.add_argument(
        "--run", metavar="RUN_ID", help="only what this run left (default: every vmbench run)"
    )
    clean.set_defaults(handler=cmd_clean)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= scenario.MAX_REPETITIONS:
        raise argparse.ArgumentTypeError(f"expected 1 to {scenario.MAX_REPETITIONS}, got {value}")
    return value


def _backend_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in ALL_BACKENDS:
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}; expected some of {','.join(ALL_BACKENDS)}"
            )
    if not names:
        raise argparse.ArgumentTypeError("expected at least one backend")
    return names


def new_run_id(host_id: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{host_id}-{secrets.token_hex(2)}"


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import RunConfig, Runner, effective, plan
    from bench.summary import summary_table

    files = args.scenarios or [DEFAULT_SCENARIO]
    scenarios = [s for f in files for s in scenario.load(f)]
    host_id = host.host_id()
    config = RunConfig(
        run_id=new_run_id(host_id),
        host_id=host_id,
        backends=args.backends,
        repetitions=args.repetitions,
        quick=args.quick,
    )
    run_dir = args.results_dir / config.run_id
    total = sum(1 for s in scenarios for _ in plan(effective(s, config)))
    console.print(
        f"vmbench: run {config.run_id}: {len(scenarios)} scenario(s), {total} trials -> {run_dir}"
    )

    signal.signal(signal.SIGTERM, _raise_interrupt)
    with ResultWriter(run_dir / "results.csv") as writer, _progress() as progress:
        task = progress.add_task("starting", total=total)

        def on_trial(trial, outcome):
            label = f"{trial.scenario.name}/{trial.guest} {trial.backend} {trial.workload} #{trial.trial}"
            if outcome is not None and outcome.status != "ok":
                progress.console.print(
                    f"  {label}: {outcome.status}: {outcome.detail}", markup=False
                )
            progress.update(task, advance=1, description=label)

        runner = Runner(config, writer, on_trial)
        host.write(run_dir / "host.json", host.collect({"run_id": config.run_id}))
        try:
            stats = runner.run(scenarios)
        except KeyboardInterrupt:
            progress.stop()
            console.print(f"vmbench: interrupted; finished trials are in {run_dir / 'results.csv'}")
            return 130
    host.write(
        run_dir / "host.json", host.collect({"run_id": config.run_id, "accel": stats.accels})
    )
    for name, reason in stats.unavailable.items():
        console.print(f"vmbench: backend {name} skipped: {reason}", markup=False)
    out.print(summary_table(run_dir / "results.csv"))
    if not args.no_report:
        try:
            _write_report([run_dir / "results.csv"], run_dir / "report", deck=True)
        except UsageError as e:  # e.g. every trial failed: the CSV stays, the report is skipped
            console.print(f"vmbench: no report: {e}", markup=False)
    console.print(
        f"vmbench: {stats.ok} trials ok, {stats.failed} failed; results: {run_dir / 'results.csv'}"
    )
    return EXIT_FAILURES if stats.failed else EXIT_OK


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def newest_results(results_dir: Path = Path("results")) -> Path:
    runs = sorted(results_dir.glob("*/results.csv"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UsageError(f"no results/*/results.csv under {results_dir}: run `vmbench run` first")
    return runs[-1]


def _existing_csvs(paths: list[Path]) -> list[Path]:
    csvs = paths or [newest_results()]
    for path in csvs:
        if not path.is_file():
            raise UsageError(f"{path}: no such results CSV")
    return csvs


def cmd_report(args: argparse.Namespace) -> int:
    csvs = _existing_csvs(args.csvs)
    out_dir = args.out or csvs[0].parent / "report"
    _write_report(csvs, out_dir)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import write_comparison

    outcome = _reading(lambda: write_comparison(_existing_csvs(args.csvs), args.out))
    _print_outcome(outcome, "comparison")
    return EXIT_OK


def cmd_slides(args: argparse.Namespace) -> int:
    from bench.slides import write_deck

    csvs = _existing_csvs(args.csvs)
    deck = _reading(lambda: write_deck(csvs, args.out or csvs[0].parent / "report" / "deck.pptx"))
    out.print(f"slides: {deck}", markup=False)
    return EXIT_OK


def _reading(make):
    """Run a report-side writer; unusable input is a usage error (exit 2), not a traceback."""
    from bench.dataset import ReportInputError

    try:
        return make()
    except ReportInputError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename or ''}: {e.strerror}") from None


def _print_outcome(outcome, label: str) -> None:
    from bench.report import verdict_table

    for warning in outcome.warnings:
        console.print(f"vmbench: warning: {warning}", markup=False)
    out.print(verdict_table(outcome.claims))
    out.print(f"{label}: {outcome.report_path}", markup=False)


def _write_report(csvs: list[Path], out_dir: Path, deck: bool = False) -> None:
    from bench.report import write_report
    from bench.slides import write_deck

    _print_outcome(_reading(lambda: write_report(csvs, out_dir)), "report")
    if deck:
        out.print(
            f"slides: {_reading(lambda: write_deck(csvs, out_dir / 'deck.pptx'))}", markup=False
        )


def cmd_doctor(args: argparse.Namespace) -> int:
    from bench.backends import BackendError, make_backend

    for name in ALL_BACKENDS:
        try:
            available = make_backend(name).availability()
        except BackendError as e:
            out.print(f"{name:8} no   {e}", markup=False)
            continue
        if available.usable:
            out.print(f"{name:8} yes  {available.reason}", markup=False)
        else:
            out.print(f"{name:8} no   {available.reason}; fix: {available.fix}", markup=False)
    return EXIT_OK


def cmd_guests(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bench.guests import built_guests
    from bench.guests.cache import cache_root
    from bench.summary import human

    found = built_guests()
    if not found:
        out.print("no guests built yet: `vmbench run` builds them on first use")
        return EXIT_OK
    table = Table(title=f"built guests in {cache_root()}")
    for column in ("guest folder", "from", "artefacts (bytes on disk)", "build_s"):
        table.add_column(column)
    for g in found:
        artefacts = ", ".join(f"{k} {human(v, 'B')}" for k, v in g["artefacts"].items())
        table.add_row(
            Path(g["folder"]).name,
            str(g.get("package", "")),
            artefacts,
            f"{g.get('build_s', 0):.1f}",
        )
    out.print(table)
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from bench.cleanup import clean

    removed, problems = clean(args.run)
    for line in removed:
        out.print(f"removed {line}", markup=False)
    for line in problems:
        console.print(f"vmbench clean: {line}", markup=False)
    if not removed and not problems:
        out.print("nothing to clean")
    return EXIT_FAILURES if problems else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
