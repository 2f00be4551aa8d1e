"""What each host of a fleet run gave (results, a recorded failure, or nothing), one line
each, and the comparison of the hosts with results.

The playbook (fleet/bench.yml) records a host's outcome in ``<out>/<host>/fleet-host.json``;
this module reads it back. A failure it can explain (a remote Python that cannot run Ansible's
modules) is named with its fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.cli.common import EXIT_FAILURES, EXIT_OK, console, print_outcome

HOST_RECORD = "fleet-host.json"
COMPARE_DIR = "compare"


@dataclass(frozen=True)
class HostOutcome:
    """What one host gave: results (``ok``), a recorded failure, or nothing at all."""

    host: str
    status: str  # ok | failed | missing
    reason: str = ""
    run_id: str = ""
    summary: str = ""  # the run's last "vmbench: N trials ok, M failed" line
    bench_exit: int | None = None
    setup_s: float | None = None
    run_s: float | None = None

    @property
    def line(self) -> str:
        if self.status != "ok":
            return f"{self.host}: FAILED: {self.reason}"
        took = ", ".join(
            f"{what} {seconds:.0f} s"
            for what, seconds in (("set-up", self.setup_s), ("suite", self.run_s))
            if seconds is not None
        )
        note = f", make bench exited {self.bench_exit}" if self.bench_exit else ""
        return f"{self.host}: run {self.run_id} ({took}){note}: {self.summary}"


def has_results(out_dir: Path, host: str) -> bool:
    return (out_dir / host / "results.csv").is_file()


def host_outcome(out_dir: Path, host: str) -> HostOutcome:
    path = out_dir / host / HOST_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    if has_results(out_dir, host):
        return HostOutcome(
            host,
            "ok",
            run_id=str(record.get("run_id", "")),
            summary=str(record.get("summary", "")).removeprefix("vmbench: ").split("; results:")[0],
            bench_exit=_number(record.get("bench_exit"), int),
            setup_s=_number(record.get("setup_s"), float),
            run_s=_number(record.get("run_s"), float),
        )
    if record.get("status") == "failed":
        return HostOutcome(host, "failed", reason=failure_reason(record))
    return HostOutcome(
        host, "missing", reason="no results and no record (the playbook stopped before it)"
    )


# What Ansible says when the remote Python printed no module result: ansible-core 2.19+, and
# the words of 2.16-2.18. Seen with a pyenv shim that interpreter discovery picked.
BROKEN_INTERPRETER = ("Module result deserialization failed", "MODULE FAILURE")
INTERPRETER_FIX = "ansible_python_interpreter=/usr/bin/python3"


def failure_reason(record: dict) -> str:
    """A host's recorded failure in one line; a remote Python that cannot run Ansible's
    modules is named, with what it printed and the inventory line that fixes it."""
    reason = str(record.get("reason") or "no reason given").strip()
    if not reason.startswith(BROKEN_INTERPRETER):
        return reason
    interpreter = str(record.get("interpreter") or "").strip() or "that interpreter discovery found"
    printed = next(
        (
            line.strip()
            for line in str(record.get("module_stderr") or "").splitlines()
            if line.strip()
        ),
        "",
    )
    printed = "".join(c for c in printed if c.isprintable())
    said = f"it printed {printed!r}; " if printed else ""
    return (
        f"the remote Python {interpreter} cannot run Ansible's modules ({said}Ansible: {reason}); "
        f"fix: set {INTERPRETER_FIX} for this host in the inventory"
    )


def _number(value, kind: type):
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def summarize(out_dir: Path, hosts: list[str], inventory: str = "INVENTORY") -> int:
    """Compare the hosts with results, print one line per host; the fleet's exit code."""
    from bench.cli.reading import comparison_table, write_comparison

    outcomes = [host_outcome(out_dir, h) for h in hosts]
    good = [o for o in outcomes if o.status == "ok"]
    missing = {o.host: o.reason for o in outcomes if o.status != "ok"}
    compared = bool(good)
    if good:
        csvs = [out_dir / o.host / "results.csv" for o in good]
        try:
            outcome = write_comparison(csvs, out_dir / COMPARE_DIR, missing_hosts=missing)
            print_outcome(outcome, "comparison", comparison_table(outcome))
        except Exception as e:  # the fetched results are safe; the lines below still count
            compared = False
            console.print(
                f"vmbench fleet: the comparison failed ({type(e).__name__}: {e}); the results "
                f"are in {out_dir}/*/results.csv",
                markup=False,
                highlight=False,
            )
    for each in outcomes:
        console.print(f"vmbench fleet: {each.line}", markup=False, highlight=False)
    console.print(
        f"vmbench fleet: {len(good)} of {len(hosts)} host(s) gave results in {out_dir}"
        + (
            f"; again for the others: vmbench fleet {inventory} --resume {out_dir}"
            if missing
            else ""
        ),
        markup=False,
    )
    failed = missing or not compared or any(o.bench_exit for o in good)
    return EXIT_FAILURES if failed else EXIT_OK
