"""The ``vmbench`` command: run | report | compare | slides | doctor | guests | box | clean | fleet.

Exit codes: 0 done, 1 some trials failed, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bench import signals
from bench.backends import engine_names
from bench.results import ResultsWriteError, ResultWriter, check_run_id
from bench.run import host, liveness, scenario
from bench.run.options import hint
from bench.run.runner import Missing, PlannedTrial, RunConfig, Runner, RunStats, effective
from bench.run.trial import TrialOutcome

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
DEFAULT_SCENARIO = Path("scenarios/default.toml")

console = Console(stderr=True, soft_wrap=True)
# Not a terminal (CI logs, pipes): wide enough that tables are not squeezed to 80 columns.
out = Console(soft_wrap=True) if Console().is_terminal else Console(width=160)


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the rule for every bad input), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except (scenario.ScenarioError, UsageError, host.HostIdError) as e:
        console.print(f"vmbench: {e}", markup=False, highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("vmbench: interrupted")
        return 130
    finally:
        signals.uninstall()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        help=f"comma-separated subset of {','.join(engine_names())}",
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
        type=_run_id,
        help="continue run RUN_ID in the results folder: only the trials it has no row for",
    )
    run.add_argument(
        "--cold",
        action="store_true",
        help="root only: drop the page cache (echo 3 > /proc/sys/vm/drop_caches) before the "
        "first measured trial of each guest and backend, and label that trial cold",
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

    box = sub.add_parser(
        "box",
        help="a Vagrant box of a guest's boot disk (VirtualBox: OVF + streamOptimized VMDK)",
    )
    box.add_argument("guest", metavar="GUEST", help="busybox | debian | debian-systemd")
    box.add_argument("--provider", required=True, choices=("virtualbox", "libvirt"))
    box.add_argument("--out", required=True, type=Path, metavar="FILE.box")
    box.add_argument(
        "--boot",
        choices=("disk", "kernel"),
        default="disk",
        help="libvirt only: disk (the BIOS boot disk, default) or kernel (direct kernel boot)",
    )
    box.set_defaults(handler=cmd_box)

    clean = sub.add_parser("clean", help="remove containers and VMs that vmbench runs left behind")
    clean.add_argument(
        "--run",
        metavar="RUN_ID",
        type=_run_id,
        help="only what this run left (default: every vmbench run)",
    )
    clean.set_defaults(handler=cmd_clean)

    from bench.cli import fleet  # many hosts: bench/cli/fleet.py registers its own command

    fleet.add_parser(sub)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= scenario.MAX_REPETITIONS:
        raise argparse.ArgumentTypeError(f"expected 1 to {scenario.MAX_REPETITIONS}, got {value}")
    return value


def _run_id(text: str) -> str:
    try:
        return check_run_id(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _backend_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    known = engine_names()
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}{hint(name, known)}; expected some of {','.join(known)}"
            )
    if not names:
        raise argparse.ArgumentTypeError("expected at least one backend")
    return names


def new_run_id(host_id: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{host_id}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunPlan:
    """What ``vmbench run`` will do, every input checked before anything starts."""

    config: RunConfig
    files: list[Path]
    scenarios: list[scenario.Scenario]
    done: frozenset | set  # trials an earlier attempt finished (--resume)
    results_dir: Path
    resuming: bool
    report: bool

    @property
    def run_dir(self) -> Path:
        return self.results_dir / self.config.run_id

    @property
    def csv(self) -> Path:
        return self.run_dir / "results.csv"


def cmd_run(args: argparse.Namespace) -> int:
    plan = _plan_run(args)
    console.print(f"vmbench: run {plan.config.run_id} -> {plan.run_dir}", markup=False)
    signals.install()  # Ctrl-C and SIGTERM stop the run; a second one cannot skip cleanup
    try:
        with liveness.hold(plan.config.run_id):  # `vmbench clean` leaves a live run alone
            _open_run_dir(plan)
            stats = _measure(plan)
            _finish(plan, stats)
    except ResultsWriteError as e:
        console.print(
            f"vmbench: {e}; the rows written before are kept; free space, then: "
            f"vmbench run --resume {plan.config.run_id}",
            markup=False,
            highlight=False,
        )
        return EXIT_FAILURES
    except KeyboardInterrupt:
        where = f" --results-dir {plan.results_dir}" if plan.results_dir != Path("results") else ""
        console.print(
            f"vmbench: interrupted; finished trials are in {plan.csv}; "
            f"continue with: vmbench run --resume {plan.config.run_id}{where}",
            markup=False,
        )
        return 130
    return stats.exit_code


def _plan_run(args: argparse.Namespace) -> RunPlan:
    """The run's files, scenarios and options; bad input raises (exit 2), nothing started."""
    from bench.run.density import check_host_memory

    if args.cold and os.geteuid() != 0:
        raise UsageError("--cold needs root: it writes 3 to /proc/sys/vm/drop_caches")
    results_dir = _results_dir(args.results_dir)
    if args.resume:
        run_id, files, config_args, done = _resume(args, results_dir)
    else:
        run_id, files, done = None, args.scenarios or [DEFAULT_SCENARIO], frozenset()
        config_args = {
            "backends": args.backends,
            "repetitions": args.repetitions,
            "quick": args.quick,
            "cold": args.cold,
        }
    scenarios = load_scenarios(files)
    host_id = host.host_id()
    config = RunConfig(run_id=run_id or new_run_id(host_id), host_id=host_id, **config_args)
    # A density size this host cannot hold is bad input too.
    check_host_memory(effective(s, config) for s in scenarios)
    return RunPlan(
        config, files, scenarios, done, results_dir, bool(args.resume), not args.no_report
    )


def _open_run_dir(plan: RunPlan) -> None:
    """A new run writes its record (what --resume needs); a resumed one first removes what
    its interrupted attempt left running (this run holds the lock now)."""
    if not plan.resuming:
        _write_run_record(plan.run_dir, plan.config, plan.files, plan.scenarios)
        return
    from bench.run.cleanup import clean

    for line in clean(plan.config.run_id, own_run=plan.config.run_id).removed:
        console.print(f"vmbench: removed {line} (left by the earlier attempt)", markup=False)


def _measure(plan: RunPlan) -> RunStats:
    """Every pending trial, its rows appended to the CSV as it ends, progress on the terminal."""
    with ResultWriter(plan.csv) as writer, _progress() as progress:
        display = TrialDisplay(progress)
        runner = Runner(plan.config, writer, display.trial_done, done=plan.done)
        total = len(runner.pending(plan.scenarios))
        before = f" still to do ({len(plan.done)} done before)" if plan.resuming else ""
        display.start(total, f"vmbench: {len(plan.scenarios)} scenario(s), {total} trials{before}")
        _write_host(plan.run_dir, {"run_id": plan.config.run_id})
        try:
            return runner.run(plan.scenarios)
        except KeyboardInterrupt:
            progress.stop()
            raise


def _finish(plan: RunPlan, stats: RunStats) -> None:
    """host.json with the accelerators that ran, the summary, the report, the last line."""
    from bench.analysis.summary import summary_table

    with contextlib.suppress(ResultsWriteError):  # the rows are safe; host.json is a copy
        _write_host(plan.run_dir, {"run_id": plan.config.run_id, "accel": stats.accels})
    out.print(summary_table(plan.csv))
    not_checked: list[str] = []
    if plan.report:
        try:
            claims = _write_report([plan.csv], plan.run_dir / "report", deck=True).claims
            not_checked = list(dict.fromkeys(claims.claim[claims.verdict == "not-measured"]))
        except UsageError as e:  # e.g. every trial failed: the CSV stays, the report is skipped
            console.print(f"vmbench: no report: {e}", markup=False)
    line = _not_checked_line(not_checked, stats)
    if line:
        console.print(line, markup=False, highlight=False)
    console.print(f"vmbench: {_counts(stats)}; results: {plan.csv}", markup=False)


def _counts(stats: RunStats) -> str:
    """'8 trials ok, 0 failed, 24 not supported here (guest debian on qemu; backend docker
    skipped)': every trial of the run is in one of the three counts."""
    why = [f"guest {guest} on {backend}" for backend, guest in sorted(stats.unsupported_guests)]
    why += [f"backend {backend} skipped" for backend in sorted(stats.unavailable)]
    why += [f"guest {guest} cannot be built here" for guest in sorted(stats.guests_unavailable)]
    text = f"{stats.ok} trials ok, {stats.failed} failed"
    if stats.unsupported:
        text += f", {stats.unsupported} not supported here"
    return text + (f" ({'; '.join(why)})" if why else "")


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


RUN_RECORD = "run.json"


def _write_host(run_dir: Path, extra: dict) -> None:
    try:
        host.write(run_dir / "host.json", host.collect(extra))
    except OSError as e:
        raise ResultsWriteError(run_dir / "host.json", e) from None


def load_scenarios(files: list[Path]) -> list[scenario.Scenario]:
    """Every scenario of ``files``, and no two with one name in different files (ScenarioError)."""
    scenarios = [s for f in files for s in scenario.load(f)]
    names: dict[str, Path] = {}
    for s in scenarios:
        if s.name in names and names[s.name] != s.path:
            raise scenario.ScenarioError(
                s.path, "scenario.name", f"{s.name!r} is also the name in {names[s.name]}"
            )
        names[s.name] = s.path
    return scenarios


def _results_dir(path: Path) -> Path:
    text = str(path)
    if not text or "\0" in text or "\n" in text:
        raise UsageError(f"--results-dir {text!r}: expected a folder name")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--results-dir {text}: is a file, expected a folder")
    return path


def _write_run_record(
    run_dir: Path, config, files: list[Path], scenarios: list[scenario.Scenario]
) -> None:
    """What ``--resume`` needs to plan the same trials again: files, their hashes, options."""
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UsageError(f"{run_dir} exists already") from None
    except OSError as e:
        raise UsageError(f"cannot create {run_dir}: {e.strerror}") from None
    record = {
        "run_id": config.run_id,
        "scenarios": [str(Path(f).resolve()) for f in files],
        # Every file the plan came from (a suite and the files it includes).
        "sha256": {
            str(p.resolve()): _sha256(p) for p in {*map(Path, files), *(s.path for s in scenarios)}
        },
        "backends": list(config.backends) if config.backends else None,
        "repetitions": config.repetitions,
        "quick": config.quick,
        "cold": config.cold,
    }
    try:
        (run_dir / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    except OSError as e:
        raise UsageError(f"cannot write {run_dir / RUN_RECORD}: {e.strerror}") from None


def _resume(args: argparse.Namespace, results_dir: Path):
    """(run_id, scenario files, RunConfig options, finished trial keys) of the run to continue."""
    from bench.results import read_rows
    from bench.run.runner import finished_keys

    run_id = args.resume
    if args.scenarios or args.backends or args.repetitions or args.quick or args.cold:
        raise UsageError(
            "--resume continues a run as it was started: give no scenario files, "
            "--backends, --repetitions, --quick or --cold with it"
        )
    run_dir = results_dir / run_id
    record_file = run_dir / RUN_RECORD
    if not record_file.is_file():
        raise UsageError(f"--resume {run_id}: no {record_file} (is --results-dir right?)")
    try:
        record = json.loads(record_file.read_text())
        files = [Path(f) for f in record["scenarios"]]
        options = {
            "backends": tuple(record["backends"]) if record["backends"] else None,
            "repetitions": record["repetitions"],
            "quick": bool(record["quick"]),
            "cold": bool(record.get("cold", False)),
        }
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{record_file}: not a vmbench run record ({e})") from None
    hashes = record.get("sha256") or {}
    for name in sorted({*map(str, files), *hashes}):
        f = Path(name)
        if not f.is_file() or _sha256(f) != hashes.get(name):
            raise UsageError(
                f"--resume {run_id}: {f} changed or vanished since the run started, so the "
                "plan would not be the same; start a new run instead"
            )
    done: set = set()
    csv_path = run_dir / "results.csv"
    if csv_path.is_file():
        rows, bad = read_rows(csv_path)
        for line in bad:
            console.print(f"vmbench: {line}", markup=False, highlight=False)
        done = finished_keys(rows)
    return run_id, files, options, done


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    from bench.render.compare import terminal_table, write_comparison

    outcome = _reading(lambda: write_comparison(_existing_csvs(args.csvs), args.out))
    _print_outcome(outcome, "comparison", terminal_table(outcome))
    return EXIT_OK


def cmd_slides(args: argparse.Namespace) -> int:
    from bench.render.slides import write_deck

    csvs = _existing_csvs(args.csvs)
    deck = _reading(lambda: write_deck(csvs, args.out or csvs[0].parent / "report" / "deck.pptx"))
    out.print(f"slides: {deck}", markup=False)
    return EXIT_OK


def _reading(make):
    """Run a report-side writer; unusable input is a usage error (exit 2), not a traceback."""
    from bench.analysis.dataset import ReportInputError

    try:
        return make()
    except ReportInputError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename or ''}: {e.strerror}") from None


def _print_outcome(outcome, label: str, table=None) -> None:
    from bench.render.report import verdict_table

    for warning in outcome.warnings:
        console.print(f"vmbench: warning: {warning}", markup=False)
    out.print(table if table is not None else verdict_table(outcome.claims))
    out.print(f"{label}: {outcome.report_path}", markup=False)


def _write_report(csvs: list[Path], out_dir: Path, deck: bool = False):
    """The report (and deck) of ``csvs``; returns the report's outcome (its claims)."""
    from bench.render.report import write_report
    from bench.render.slides import write_deck

    outcome = _reading(lambda: write_report(csvs, out_dir))
    _print_outcome(outcome, "report")
    if deck:
        out.print(
            f"slides: {_reading(lambda: write_deck(csvs, out_dir / 'deck.pptx'))}", markup=False
        )
    return outcome


def _not_checked_line(claims: list[str], stats: RunStats) -> str:
    """The run's last word on its claims: which could not be checked, and what could not run
    on this host (each with its fix); the verdict table says per claim what was missing."""
    # The cause was said once when it was met; the summary repeats only what to do.
    missing = [_with_fix(name, why) for name, why in sorted(stats.unavailable.items())]
    missing += [_with_fix(f"guest {g}", why) for g, why in sorted(stats.guests_unavailable.items())]
    could_not = f"could not run here: {'; '.join(missing)}" if missing else ""
    if claims:
        line = (
            f"vmbench: claims not checked: {', '.join(claims)} (the verdicts say what each lacks)"
        )
        return f"{line}; {could_not}" if could_not else line
    return f"vmbench: {could_not}" if could_not else ""


def _with_fix(what: str, missing: Missing) -> str:
    return f"{what} (fix: {missing.fix})" if missing.fix else f"{what} ({missing.cause})"


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per engine the registry knows: name, kind, whether it can run here and why.
    Never wrapped: a fix is a command to copy."""
    from bench.backends import BackendError, engines

    width = max(map(len, engines()))  # the longest engine name sets the first column
    for name, cls in engines().items():
        where = f"{name:{width}} {cls.kind:16}"
        backend = None
        try:
            backend = cls()
            available = backend.availability()
        except BackendError as e:
            out.print(f"{where} no   {e}", markup=False, soft_wrap=True)
            continue
        finally:
            if backend is not None:
                backend.close()
        if available.usable:
            better = f"; {available.fix}" if available.fix else ""  # usable, yet could be more
            out.print(f"{where} yes  {available.reason}{better}", markup=False, soft_wrap=True)
        else:
            out.print(
                f"{where} no   {available.reason}; fix: {available.fix}",
                markup=False,
                soft_wrap=True,
            )
        for note in available.notes:
            out.print(f"{'':{width + 23}}{note}", markup=False, soft_wrap=True)  # one line each
    _doctor_guests(width)
    return EXIT_OK


def cmd_box(args: argparse.Namespace) -> int:
    """Build (cached) and copy the Vagrant box of a guest; print how to add it."""
    from bench.backends.vagrant_box import BoxError, build_box, copy_box
    from bench.guests import GUEST_BUILDERS, DebError, build_guest, split_guest_name

    if split_guest_name(args.guest)[0] not in GUEST_BUILDERS:
        raise UsageError(
            f"box: unknown guest {args.guest!r}{hint(args.guest, GUEST_BUILDERS)}; "
            f"expected one of {', '.join(GUEST_BUILDERS)}"
        )
    if args.provider == "virtualbox" and args.boot != "disk":
        raise UsageError("box: --boot kernel is libvirt only (VirtualBox cannot boot a kernel)")
    if args.out.suffix != ".box" or args.out.is_dir():
        raise UsageError(f"box: --out {args.out}: expected a file name ending in .box")
    try:
        guest = build_guest(args.guest)
        box = build_box(guest, args.provider, args.boot)
        copy_box(box, args.out)
    except (BoxError, DebError, OSError) as e:
        console.print(f"vmbench box: {e}", markup=False, highlight=False)
        return EXIT_FAILURES
    members = ", ".join(f"{name} {size}" for name, size in sorted(box.file_bytes.items()))
    out.print(f"box: {args.out} ({args.out.stat().st_size} bytes; {members})", markup=False)
    out.print(
        f"add it: VAGRANT_CHECKPOINT_DISABLE=1 vagrant box add --name vmbench-{guest.name} "
        f"{args.out.resolve().as_uri()}",
        markup=False,
    )
    return EXIT_OK


def _doctor_guests(width: int) -> None:
    """The guest that needs more than downloads to build: who builds debian for this user."""
    from bench.guests import debian

    usable, reason, fix = debian.builder_status()
    where = f"{'debian':{width}} {'guest':16}"
    if usable:
        out.print(f"{where} yes  {reason}", markup=False, soft_wrap=True)
    else:
        out.print(f"{where} no   {reason}; fix: {fix}", markup=False, soft_wrap=True)


def cmd_guests(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bench.guests import built_guests
    from bench.guests.cache import cache_root
    from bench.units import human

    found = built_guests()
    if not found:
        out.print("no guests built yet: `vmbench run` builds them on first use")
        return EXIT_OK
    table = Table(title=f"built guests in {cache_root()}")
    for column in ("guest folder", "from", "built by", "artefacts (bytes on disk)", "build_s"):
        table.add_column(column)
    for g in found:
        artefacts = ", ".join(f"{k} {human(v, 'B')}" for k, v in g["artefacts"].items())
        table.add_row(
            Path(g["folder"]).name,
            str(g.get("package", "")),
            str(g.get("builder", "")),
            artefacts,
            f"{g.get('build_s', 0):.1f}",
        )
    out.print(table)
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from bench.run.cleanup import clean

    report = clean(args.run)
    for line in report.removed:
        out.print(f"removed {line}", markup=False)
    for run_id in report.running:
        out.print(f"left alone: run {run_id} is still running", markup=False)
    for line in report.problems:
        console.print(f"vmbench clean: {line}", markup=False)
    if not report.removed and not report.problems:
        out.print("nothing to clean")
    return EXIT_FAILURES if report.problems else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
