"""``vmbench fleet``: the suite on every host of an Ansible inventory, then one comparison.

A thin wrapper over ``fleet/bench.yml``, which users can also run with ``ansible-playbook``:
this module refuses bad input before anything starts (inventory, scenario, options), runs
the playbook, stops the remote runs on Ctrl-C (``fleet/stop.yml``), then prints one line per
host and compares the fetched CSVs. What happens on a host is the playbook's job.

Layout of a fleet folder (DIR):
  DIR/fleet.json               how the fleet was started (for --resume)
  DIR/<host>/                  that host's results/<run_id>/ (results.csv, host.json, report/)
  DIR/<host>/fleet-host.json   the host's outcome (status ok|failed, reason, run id)
  DIR/<host>/bench.log         what `make setup` / `make bench` printed there
  DIR/compare/                 vmbench compare of every host with results
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import signals
from bench.cli import run
from bench.cli.common import (
    DEFAULT_SCENARIO,
    EXIT_USAGE,
    Parser,
    UsageError,
    console,
)
from bench.cli.fleet_outcome import COMPARE_DIR, has_results, summarize
from bench.errors import InputError, VmbenchError
from bench.run.host import valid_host_id

CHECKOUT = Path(__file__).resolve().parents[2]
PLAYBOOK = CHECKOUT / "fleet" / "bench.yml"
STOP_PLAYBOOK = CHECKOUT / "fleet" / "stop.yml"
FLEET_RECORD = "fleet.json"
# What the fleet controls itself: the hosts' results folder, and resuming is per fleet.
STOP_TIMEOUT_S = 300


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``vmbench fleet`` (cli.py calls this)."""
    fleet = sub.add_parser(
        "fleet",
        help="run the suite on every host of an Ansible inventory, fetch and compare the results",
        description="Runs fleet/bench.yml (Ansible) on every host of INVENTORY: ships `git archive "
        "HEAD` of this checkout, runs `make bench` there with host_id = the inventory hostname, "
        "fetches results/<run_id>/ into DIR/<host>/ and compares them in DIR/compare/.",
    )
    fleet.add_argument("inventory", type=Path, metavar="INVENTORY", help="an Ansible inventory")
    fleet.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help=f"scenario or suite file, committed in this checkout (default: {DEFAULT_SCENARIO})",
    )
    fleet.add_argument(
        "--bench-args",
        metavar='"..."',
        help='more `vmbench run` options for every host, e.g. "--quick --backends docker"',
    )
    fleet.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where the results go (default: results/fleet-<UTC time>)",
    )
    fleet.add_argument(
        "--forks", type=_forks, metavar="N", help="hosts at work at once (default: all)"
    )
    fleet.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue fleet folder DIR: run only the hosts with no results in it yet",
    )
    fleet.set_defaults(handler=cmd_fleet)


def _forks(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class Plan:
    """A checked fleet run: nothing here can be refused once the playbook starts."""

    inventory: Path
    hosts: list[str]
    out_dir: Path
    scenario: str  # relative to the checkout, as the hosts see it
    bench_args: str
    fleet_id: str
    commit: str


def cmd_fleet(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    pending = [h for h in plan.hosts if not has_results(plan.out_dir, h)]
    done = len(plan.hosts) - len(pending)
    if pending:
        console.print(
            f"vmbench fleet: {len(pending)} host(s) to run"
            + (f" ({done} have results already)" if done else "")
            + f": {', '.join(pending)}; commit {plan.commit[:12]}; results -> {plan.out_dir}",
            markup=False,
        )
        forks = args.forks or len(pending)
        returncode = run_playbook(plan, pending, forks)
        if returncode is None:  # interrupted: the remote runs were stopped
            return 130
    else:
        console.print(f"vmbench fleet: every host has results in {plan.out_dir}", markup=False)
    return summarize(plan.out_dir, plan.hosts, str(plan.inventory))


def make_plan(args: argparse.Namespace) -> Plan:
    """Every check that can refuse the run (exit 2), before anything starts."""
    commit = _checkout_commit()
    ansible_tool("ansible-playbook")
    hosts = inventory_hosts(args.inventory)
    if args.resume:
        return _resumed_plan(args, hosts, commit)
    out_dir = (
        args.out or Path("results") / f"fleet-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    ).resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"--out {out_dir}: exists and is not an empty folder (--resume DIR?)")
    plan = Plan(
        args.inventory.resolve(),
        hosts,
        out_dir,
        committed_scenario(args.scenario or DEFAULT_SCENARIO),
        check_bench_args(args.bench_args or ""),
        _fleet_id(),
        commit,
    )
    _write_record(plan)
    return plan


def _resumed_plan(args: argparse.Namespace, hosts: list[str], commit: str) -> Plan:
    """The plan of the fleet folder ``--resume DIR``: its scenario and bench args, this HEAD."""
    if args.out:
        raise UsageError("--resume DIR is the output folder already: give no --out with it")
    out_dir = args.resume.resolve()
    record = _read_record(out_dir)
    given = {
        "scenario": args.scenario and committed_scenario(args.scenario),
        "bench_args": args.bench_args and check_bench_args(args.bench_args),
    }
    for key, value in given.items():
        if value and value != record[key]:
            option = "--" + key.replace("_", "-")
            raise UsageError(
                f"--resume {args.resume}: it was started with {option} {record[key]!r}; "
                f"give no other {option} with --resume"
            )
    if record["commit"] != commit:
        console.print(
            f"vmbench fleet: note: the fleet started at commit {record['commit'][:12]}, "
            f"the hosts still to run get {commit[:12]}",
            markup=False,
        )
    scenario_file = committed_scenario(CHECKOUT / record["scenario"])  # still in HEAD?
    return Plan(
        args.inventory.resolve(),
        hosts,
        out_dir,
        scenario_file,
        record["bench_args"],
        _fleet_id(),
        commit,
    )


def _fleet_id() -> str:
    return f"fleet-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def _checkout_commit() -> str:
    if not PLAYBOOK.is_file():
        raise UsageError(
            f"{PLAYBOOK}: missing; vmbench fleet runs from a git checkout of vmbench "
            "(it ships `git archive HEAD` of it to every host)"
        )
    try:
        return _git("rev-parse", "--verify", "HEAD")
    except GitError as e:
        raise UsageError(f"{CHECKOUT}: not a git checkout with a commit ({e})") from None


class GitError(VmbenchError):
    """git could not say which commit this checkout is at."""


def _git(*argv: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(CHECKOUT), *argv], capture_output=True, text=True, check=False
        )
    except OSError as e:
        raise GitError(f"git: {e.strerror}") from None
    if done.returncode != 0:
        raise GitError((done.stderr.strip().splitlines() or ["failed"])[-1])
    return done.stdout.strip()


def ansible_tool(name: str) -> str:
    """``name`` from the venv vmbench runs in, else from PATH; UsageError if absent."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), _path()]))
    if not found:
        raise UsageError(
            f"{name} not found: vmbench fleet needs ansible-core; install the fleet extra "
            "(`make setup` does, or: pip install -e '.[fleet]')"
        )
    return found


def _path() -> str:
    return os.environ.get("PATH", os.defpath)


def inventory_hosts(inventory: Path) -> list[str]:
    """The inventory's host names (``ansible-inventory --list``); UsageError in one line."""
    if not inventory.exists():
        raise UsageError(f"{inventory}: no such inventory file")
    env = os.environ | {
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
    }
    done = subprocess.run(
        [ansible_tool("ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise UsageError(f"{inventory}: not a valid Ansible inventory: {_parse_error(done.stderr)}")
    try:
        groups = json.loads(done.stdout)
    except ValueError:
        raise UsageError(f"{inventory}: ansible-inventory gave no host list") from None
    hosts = sorted({h for name, g in groups.items() if name != "_meta" for h in g.get("hosts", [])})
    if not hosts:
        warning = _warnings(done.stderr)
        raise UsageError(
            f"{inventory}: the inventory names no host" + (f" ({warning[0]})" if warning else "")
        )
    for host in hosts:
        if host == COMPARE_DIR or not valid_host_id(host):
            raise UsageError(
                f"{inventory}: host {host!r}: expected a name of letters, digits, '.', '_' or "
                f"'-' (it becomes the host_id and a folder name), and not {COMPARE_DIR!r}"
            )
    return hosts


def _warnings(stderr: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
        for line in stderr.splitlines()
        if line.startswith("[WARNING]:")
    ]


def _parse_error(stderr: str) -> str:
    """Ansible's own reason, one line: the plugin the file looks written for, or the first."""
    reasons = []
    for warning in _warnings(stderr):
        match = re.match(r"Failed to parse inventory with '(\w+)' plugin: (.*)", warning)
        if match:
            reasons.append((match.group(1), match.group(2)))
    for plugin, reason in reasons:
        if plugin in ("yaml", "ini"):
            return f"{plugin}: {reason}"
    if reasons:
        return f"{reasons[0][0]}: {reasons[0][1]}"
    errors = [line for line in stderr.splitlines() if line.startswith("[ERROR]:")]
    return (errors or ["ansible-inventory failed"])[-1].removeprefix("[ERROR]:").strip()


def committed_scenario(path: Path) -> str:
    """``path`` relative to the checkout, once it (and every file it includes) is valid and
    committed as it is: the hosts get ``git archive HEAD``, not this working tree."""
    resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not resolved.is_file() and not path.is_absolute():
        resolved = (CHECKOUT / path).resolve()  # `--scenario scenarios/x.toml` from elsewhere
    from bench.cli.running import load_scenarios  # the engines' option tables

    scenarios = load_scenarios([resolved])  # ScenarioError: exit 2 with file and key
    for file in sorted({resolved, *(s.path.resolve() for s in scenarios)}):
        try:
            relative = file.relative_to(CHECKOUT)
        except ValueError:
            raise UsageError(
                f"{file}: not in this checkout ({CHECKOUT}); the hosts get `git archive HEAD` "
                "of it, so put the scenario there and commit it"
            ) from None
        try:
            _git("ls-files", "--error-unmatch", "--", str(relative))
            _git("diff", "--quiet", "HEAD", "--", str(relative))
        except GitError:
            raise UsageError(
                f"{file}: not committed as it is; the hosts get `git archive HEAD`, so commit it"
            ) from None
    return str(resolved.relative_to(CHECKOUT))


def check_bench_args(text: str) -> str:
    """``--bench-args`` checked by `vmbench run`'s own parser, re-quoted for make."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise UsageError(f"--bench-args {text!r}: {e}") from None
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            parsed = _run_parser().parse_args(["run", *words])
        except SystemExit:
            reason = errors.getvalue().strip().removeprefix("vmbench run: ").split(" (see")[0]
            raise UsageError(f"--bench-args {text!r}: {reason}") from None
    if parsed.scenarios:
        raise UsageError(f"--bench-args {text!r}: scenario files go in --scenario")
    # From the parsed namespace, so an abbreviation argparse accepts (--results-d) is caught;
    # against the parser's own defaults, so they are written in one place.
    defaults = _run_parser().parse_args(["run"])
    for option, dest in (("--results-dir", "results_dir"), ("--resume", "resume")):
        if getattr(parsed, dest) != getattr(defaults, dest):
            raise UsageError(f"--bench-args: {option} is not allowed; the fleet sets it itself")
    return shlex.join(words)


def _read_record(out_dir: Path) -> dict:
    path = out_dir / FLEET_RECORD
    try:
        record = json.loads(path.read_text())
        for key in ("scenario", "bench_args", "commit"):
            if not isinstance(record[key], str):
                raise TypeError(key)
    except FileNotFoundError:
        raise UsageError(f"--resume {out_dir}: no {FLEET_RECORD} (not a fleet folder)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: not a vmbench fleet record ({e})") from None
    return record


def _write_record(plan: Plan) -> None:
    record = {
        "inventory": str(plan.inventory),
        "scenario": plan.scenario,
        "bench_args": plan.bench_args,
        "commit": plan.commit,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        (plan.out_dir / FLEET_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    except OSError as e:
        raise UsageError(f"--out {plan.out_dir}: {e.strerror}") from None


def playbook_vars(plan: Plan, compare: bool = False) -> dict:
    return {
        "vmbench_out": str(plan.out_dir),
        "vmbench_scenario": plan.scenario,
        "vmbench_bench_args": plan.bench_args,
        "vmbench_fleet_id": plan.fleet_id,
        "vmbench_compare": compare,
    }


def ansible_argv(plan: Plan, playbook: Path, hosts: list[str], forks: int) -> list[str]:
    argv = [ansible_tool("ansible-playbook"), "-i", str(plan.inventory), str(playbook)]
    argv += ["--forks", str(forks), "-e", json.dumps(playbook_vars(plan))]
    if set(hosts) != set(plan.hosts):  # the playbook's controller plays run on localhost
        argv += ["--limit", ",".join([*hosts, "localhost"])]
    return argv


def run_playbook(plan: Plan, hosts: list[str], forks: int) -> int | None:
    """ansible-playbook's exit code; None if interrupted (remote runs stopped by then)."""
    env = os.environ.copy()
    env.setdefault("ANSIBLE_DISPLAY_SKIPPED_HOSTS", "false")
    signals.install()  # Ctrl-C/SIGTERM: KeyboardInterrupt once, then notes only
    # Its own process group: a Ctrl-C reaches this process, which stops the playbook once.
    proc = subprocess.Popen(ansible_argv(plan, PLAYBOOK, hosts, forks), env=env, process_group=0)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        with signals.shielded():
            _stop(proc)
            stop_remote_runs(plan, hosts, env)
        console.print(
            f"vmbench fleet: interrupted; the remote runs were stopped; results fetched so far "
            f"are in {plan.out_dir}; continue with: vmbench fleet {plan.inventory} "
            f"--resume {plan.out_dir}",
            markup=False,
        )
        return None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_remote_runs(plan: Plan, hosts: list[str], env: dict[str, str]) -> None:
    """fleet/stop.yml: SIGTERM each host's run (vmbench removes what it started), then remove
    the work folder the fleet made there."""
    console.print("vmbench fleet: stopping the remote runs (fleet/stop.yml)", markup=False)
    argv = ansible_argv(plan, STOP_PLAYBOOK, hosts, len(hosts))
    try:
        subprocess.run(argv, env=env, timeout=STOP_TIMEOUT_S, check=False, process_group=0)
    except subprocess.TimeoutExpired:
        console.print(
            f"vmbench fleet: fleet/stop.yml did not finish within {STOP_TIMEOUT_S} s", markup=False
        )


def _run_parser() -> argparse.ArgumentParser:
    """``vmbench run``'s own parser, to check --bench-args exactly as the hosts will read them."""
    parser = Parser(prog="vmbench")
    run.add_parser(parser.add_subparsers(dest="command"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.cli.fleet DIR HOST...``: what fleet/bench.yml runs at its end when
    started with ansible-playbook directly (vmbench fleet does the same in-process)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m bench.cli.fleet DIR HOST...", file=sys.stderr)
        return EXIT_USAGE
    try:
        return summarize(Path(args[0]), args[1:])
    except InputError as e:
        console.print(f"vmbench fleet: {e}", markup=False, highlight=False)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
