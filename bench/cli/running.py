"""What ``vmbench run`` does: scenario files -> a checked plan -> the runner -> results/<run_id>/."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bench import signals
from bench.cli.common import (
    DEFAULT_SCENARIO,
    EXIT_FAILURES,
    UsageError,
    console,
    out,
    reading,
)
from bench.cli.progress import TrialDisplay, clock, progress_bar
from bench.results import ResultsWriteError, ResultWriter
from bench.run import host, liveness, scenario
from bench.run.runner import Missing, RunConfig, Runner, RunStats, effective

RUN_RECORD = "run.json"


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
    strict: bool = False  # something that could not run here makes the exit code 1
    prior_rows: list | None = None  # the rows of the attempt --resume continues

    @property
    def run_dir(self) -> Path:
        return self.results_dir / self.config.run_id

    @property
    def csv(self) -> Path:
        return self.run_dir / "results.csv"


def execute(args: argparse.Namespace) -> int:
    plan = _plan_run(args)
    console.print(f"vmbench: run {plan.config.run_id} -> {plan.run_dir}", markup=False)
    signals.install()  # Ctrl-C and SIGTERM stop the run; a second one cannot skip cleanup
    try:
        with liveness.hold(plan.config.run_id):  # `vmbench clean` leaves a live run alone
            _open_run_dir(plan)
            stats = _measure(plan)
            checked = _finish(plan, stats)
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
    # A plan that sets no container against a VM claims nothing: its trials decide alone.
    return stats.exit_code(strict=plan.strict, claims_checked=checked if compares(plan) else None)


def compares(plan: RunPlan) -> bool:
    """Whether the plan runs a guest on a container engine and on a VM engine: only such a
    run can check a claim, so only such a run fails for checking none (a one-engine
    scenario, e.g. qemu's boot modes, measures; it claims nothing)."""
    from bench.backends import engines

    kinds = {name: cls.kind for name, cls in engines().items()}
    return any(
        {"container", "vm"} <= {kinds.get(b, "") for b in effective(s, plan.config).backends}
        for s in plan.scenarios
    )


def _plan_run(args: argparse.Namespace) -> RunPlan:
    """The run's files, scenarios and options; bad input raises (exit 2), nothing started."""
    from bench.run.density import check_host_memory

    if args.cold and os.geteuid() != 0:
        raise UsageError("--cold needs root: it writes 3 to /proc/sys/vm/drop_caches")
    results_dir = _results_dir(args.results_dir)
    prior: list = []
    if args.resume:
        run_id, files, config_args, done, prior = _resume(args, results_dir)
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
    config = RunConfig(
        run_id=run_id or new_run_id(host_id),
        host_id=host_id,
        time_budget_s=args.time_budget,
        **config_args,
    )
    # A density size this host cannot hold is bad input too.
    check_host_memory(effective(s, config) for s in scenarios)
    return RunPlan(
        config,
        files,
        scenarios,
        done,
        results_dir,
        bool(args.resume),
        not args.no_report,
        strict=args.strict,
        prior_rows=prior,
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
    from bench.run.hostload import noise_lines

    with ResultWriter(plan.csv) as writer, progress_bar(console) as progress:
        display = TrialDisplay(progress, lines=not console.is_terminal)
        runner = Runner(
            plan.config, writer, display.trial_done, done=plan.done, prior_rows=plan.prior_rows
        )
        total = len(runner.pending(plan.scenarios))
        before = f" still to do ({len(plan.done)} done before)" if plan.resuming else ""
        auto = " (at least: some scenarios repeat until their answer is clear)"
        auto = auto if any(effective(s, plan.config).auto for s in plan.scenarios) else ""
        budget = plan.config.time_budget_s
        within = f", none started after {clock(budget)}" if budget else ""
        display.start(
            total,
            f"vmbench: {len(plan.scenarios)} scenario(s), {total} trials{before}{auto}{within}",
        )
        _write_host(plan.run_dir, {"run_id": plan.config.run_id})
        # Before the first trial: what on this host makes timings noisy (nothing is changed).
        for line in noise_lines(plan.config.run_id):
            console.print(f"vmbench: noise: {line}", markup=False, highlight=False)
        try:
            return runner.run(plan.scenarios)
        except KeyboardInterrupt:
            progress.stop()
            raise


def _finish(plan: RunPlan, stats: RunStats) -> int:
    """host.json with the accelerators that ran, the summary, the report, the last lines;
    returns how many claims the run could check."""
    from bench.cli.reading import analysed, write_report
    from bench.render.terminal import summary_table

    with contextlib.suppress(ResultsWriteError):  # the rows are safe; host.json is a copy
        _write_host(plan.run_dir, {"run_id": plan.config.run_id, "accel": stats.accels})
    try:  # one analysis for the summary, the report and the deck
        analysis, why = analysed([plan.csv]), None
    except UsageError as e:  # e.g. every trial failed: the CSV stays, the report is skipped
        analysis, why = None, e
    out.print(summary_table(plan.csv, None if analysis is None else analysis.summary))
    not_checked: list[str] = []
    checked = 0
    if why is not None:  # e.g. every trial failed: the CSV stays, the report is skipped
        console.print(
            f"vmbench: no report: {why}" if plan.report else f"vmbench: {why}", markup=False
        )
    else:
        try:
            if plan.report:
                report_dir = plan.run_dir / "report"
                claims = write_report([plan.csv], report_dir, deck=True, analysis=analysis).claims
            else:  # the verdicts alone: how many claims the run checked decides its exit
                done = analysis
                assert done is not None  # why is None: the analysis was made
                claims = reading(lambda: done.claims)
            checked = int((claims.verdict != "not-measured").sum())
            not_checked = list(dict.fromkeys(claims.claim[claims.verdict == "not-measured"]))
        except UsageError as e:
            console.print(f"vmbench: no report: {e}", markup=False)
    for line in _budget_lines(plan, stats):
        console.print(line, markup=False, highlight=False)
    line = _not_checked_line(not_checked, stats)
    if line:
        console.print(line, markup=False, highlight=False)
    if checked == 0 and stats.ok and compares(plan):
        console.print("vmbench: no claim could be checked with these trials", markup=False)
    if stats.could_not_run and not stats.failed and checked != 0:
        console.print(
            "vmbench: --strict: what this host cannot run makes the run exit 1"
            if plan.strict
            else "vmbench: what this host cannot run is not a failure: the run exits 0 when "
            "every other trial ended ok (--strict makes it exit 1)",
            markup=False,
        )
    console.print(f"vmbench: {_counts(stats)}; results: {plan.csv}", markup=False)
    return checked


def _budget_lines(plan: RunPlan, stats: RunStats) -> list[str]:
    """What the time budget left undone and which groups are above their target."""
    lines = []
    if stats.budget_over:
        lines.append(
            f"vmbench: the time budget ({clock(plan.config.time_budget_s or 0)}) is spent: "
            "the trial in flight finished, no other started"
        )
    if stats.above_target:
        lines.append("vmbench: groups above their target: " + "; ".join(stats.above_target))
    return lines


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
    """(run_id, scenario files, RunConfig options, finished trial keys, rows) of the run to
    continue."""
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
    rows: list[dict[str, str]] = []
    csv_path = run_dir / "results.csv"
    if csv_path.is_file():
        rows, bad = read_rows(csv_path)
        for line in bad:
            console.print(f"vmbench: {line}", markup=False, highlight=False)
        done = finished_keys(rows)
    return run_id, files, options, done, rows


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _not_checked_line(claims: list[str], stats: RunStats) -> str:
    """The run's last word on its claims: which could not be checked, and what could not run
    on this host (each with its fix); the verdict table says per claim what was missing."""
    # The cause was said once when it was met; the summary repeats only what to do.
    missing = [_with_fix(name, why) for name, why in sorted(stats.unavailable.items())]
    missing += [_with_fix(f"guest {g}", why) for g, why in sorted(stats.guests_unavailable.items())]
    missing += [
        f"guest {guest} on {backend} ({why})"
        for (backend, guest), why in sorted(stats.unsupported_guests.items())
    ]
    could_not = f"could not run here: {'; '.join(missing)}" if missing else ""
    if claims:
        line = (
            f"vmbench: claims not checked: {', '.join(claims)} (the verdicts say what each lacks)"
        )
        return f"{line}; {could_not}" if could_not else line
    return f"vmbench: {could_not}" if could_not else ""


def _with_fix(what: str, missing: Missing) -> str:
    return f"{what} (fix: {missing.fix})" if missing.fix else f"{what} ({missing.cause})"
