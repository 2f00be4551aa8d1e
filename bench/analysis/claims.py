"""The five claims (docs/architecture.md), each turned into a verdict the statistics can back.

Ratios are always VM over container, so a ratio above 1 is the side the article claims.
A verdict is `supported` only when the whole 95% interval lies on the claimed side,
`refuted` when it lies wholly on the other side, `inconclusive` otherwise, and
`not-measured` when one side (container or VM) has no data on that host.
One row per host, claim and comparison (scenario, guest, container engine, VM engine).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bench.analysis.dataset import FOREIGN_OS as FOREIGN_OS_METRIC
from bench.analysis.dataset import Dataset
from bench.analysis.pairs import Pair, Row, failure_notes, first_detail, pairs, why_missing
from bench.analysis.slopes import density_metric
from bench.analysis.stats import (
    NO_INTERVAL,
    Interval,
    SlopeFit,
    compare_slopes,
    fit_slope,
    ratio_of_medians_ci,
)
from bench.forked import forked_map
from bench.units import human

CLAIMS: dict[str, str] = {
    "size": "Containers are smaller than VMs: no kernel layer",
    "speed": "Containers start faster: a VM boots its own kernel",
    "kernel": "A container uses the host kernel; a VM runs its own",
    "density": "Containers share the host kernel, so more fit on a host",
    "compat": "A VM runs any OS/arch; a container needs a compatible kernel",
}
VERDICTS = ("supported", "refuted", "inconclusive", "not-measured")
COLUMNS = [
    "host_id",
    "claim",
    "verdict",
    "ratio",
    "ci_low",
    "ci_high",
    "n_container",
    "n_vm",
    "accel",
    "caveat",
    "scenario",
    "guest",
    "container",
    "vm",
    "metric",
    "phase",
    "evidence",
]
NUMERIC = ("ratio", "ci_low", "ci_high")
TCG_CAVEAT = (
    "VM side is software-emulated (TCG): slower than hardware virtualization (KVM) would be"
)

# PID 1 names (the guest's READY line says init=...) that are an init system, not a script.
INIT_SYSTEMS = ("systemd",)

TCG_MEMORY_CAVEAT = (
    "VM side is software-emulated (TCG): its translation cache is memory a KVM VM would not use"
)


def evaluate(ds: Dataset) -> pd.DataFrame:
    """All claims for every host in the dataset, in CLAIMS order."""
    return _judged([(ds, host, claim) for host in ds.host_ids for claim in JUDGES])


def evaluate_by_host(ds: Dataset) -> pd.DataFrame:
    """``evaluate``, host by host: each host's verdicts from its own rows only (the same
    table), so the cost grows with the number of hosts, not with its square."""
    return _judged([(part, host, claim) for host, part in ds.by_host().items() for claim in JUDGES])


Task = tuple[Dataset, str, str]  # the rows to judge, the host, the claim


def _judged(tasks: list[Task]) -> pd.DataFrame:
    """The verdicts of every task, in order: each claim of each host is independent (a long
    run's bootstraps take seconds), so they are judged side by side (bench.forked)."""
    return _table([row for rows in forked_map(_judge, tasks) for row in rows])


def _judge(task: Task) -> list[Row]:
    ds, host, claim = task
    rows, missing = JUDGES[claim](ds, host)
    missing = missing or "no container and VM measured in the same scenario and phase"
    return rows or [_not_measured(ds, host, claim, missing)]


def _table(out: list[Row]) -> pd.DataFrame:
    """The claims table; ratio and interval stay float when no row has one (a host with
    containers only), so np.isfinite and comparisons work on them."""
    return pd.DataFrame(out, columns=COLUMNS).astype(dict.fromkeys(NUMERIC, float))


def verdict_from(ci: Interval, threshold: float = 1.0) -> str:
    """Supported only when the whole interval is above the threshold."""
    if not ci.defined:
        return "inconclusive"
    if ci.low > threshold:
        return "supported"
    if ci.high < threshold:
        return "refuted"
    return "inconclusive"


# --- speed and size: ratio of medians ------------------------------------------------------


def _speed(ds: Dataset, host: str) -> tuple[list[Row], str]:
    out = []
    for pair in pairs(ds, host, "ready_s"):
        pair = replace(pair, rows=pair.rows[pair.rows.instances == 1])
        phase = pair.shared_phase()
        if phase is None:
            continue
        c, v = pair.values(pair.container, phase), pair.values(pair.vm, phase)
        ev = f"median {pair.vm} {human(np.median(v), 's')}"
        ev += f" vs {pair.container} {human(np.median(c), 's')}"
        caveats = [TCG_CAVEAT] if "tcg" in pair.accel else []
        caveats += _init_caveat(ds, pair, "start (see the decomposition)")
        record = _ratio_record(ds, pair, "speed", phase, ev, caveats, min_n=2)
        record["_n"] = min(len(c), len(v))
        out.append(record)
    return _drop_subsumed(out), why_missing(ds, host, "ready_s")


def _init_caveat(ds: Dataset, pair: Pair, what: str) -> list[str]:
    """Say so when one side booted an init system and the other did not: then the ratio holds
    the init's share too (its start in a time, its memory in a footprint; the decomposition
    splits the time). The init comes from the READY lines (``guest_init`` of ``ready_s`` rows),
    so a memory pair finds it through the same host, engines and guests."""
    m = ds.measured
    ready = m[(m.host_id == pair.host) & (m.metric == "ready_s")]
    ready = ready[ready.guest.isin(pair.guest.split(","))]

    def inits(backend: str) -> set[str]:
        return set(ready.loc[ready.backend == backend, "guest_init"]) - {"", "?"}

    vm, container = inits(pair.vm), inits(pair.container)
    if vm == container or not (vm | container) & set(INIT_SYSTEMS):
        return []
    return [
        f"PID 1 differs: {'/'.join(sorted(vm))} in the VM, {'/'.join(sorted(container))} in "
        f"the container: the ratio includes the init system's {what}"
    ]


def vm_init_where_it_differs(caveats: pd.Series) -> pd.Series:
    """Per claim row, the VM's PID 1 where _init_caveat said it differs (else NaN): read back
    here, beside the sentence it comes from."""
    return caveats.str.extract(r"PID 1 differs: (\S+) in the VM", expand=False)


def _drop_subsumed(records: list[Row]) -> list[Row]:
    """Leave out a comparison with too few trials for an interval when the same guest and
    engines were compared with enough trials in another scenario (e.g. the one ready time a
    density or compat scenario also records): it would only add an 'inconclusive' line."""
    counted = [(r, int(str(r["_n"]))) for r in records]
    enough = {(r["guest"], r["container"], r["vm"]) for r, n in counted if n >= 2}
    kept = [r for r, n in counted if n >= 2 or (r["guest"], r["container"], r["vm"]) not in enough]
    for r in kept:
        del r["_n"]
    return kept


def _size(ds: Dataset, host: str) -> tuple[list[Row], str]:
    out = []
    packed = {
        (p.scenario, p.guest, p.container, p.vm): p
        for p in pairs(ds, host, "image_compressed_bytes")
    }
    for pair in pairs(ds, host, "image_bytes"):
        pair = replace(pair, rows=pair.rows[pair.rows.phase == "build"])
        c, v = pair.values(pair.container), pair.values(pair.vm)
        ev = f"{pair.vm} {human(np.median(v), 'B')} vs {pair.container} {human(np.median(c), 'B')}"
        comp = packed.get((pair.scenario, pair.guest, pair.container, pair.vm))
        if comp is not None:
            cc, vc = np.median(comp.values(pair.container)), np.median(comp.values(pair.vm))
            ev += f"; compressed {human(vc, 'B')} vs {human(cc, 'B')}"
        out.append(_ratio_record(ds, pair, "size", "build", ev, []))
    return out, why_missing(ds, host, "image_bytes")


def _ratio_record(
    ds: Dataset,
    pair: Pair,
    claim: str,
    phase: str,
    evidence: str,
    caveats: list[str],
    min_n: int = 1,
) -> Row:
    """Ratio of VM to container medians in this phase with its CI, and the verdict."""
    c, v = pair.values(pair.container, phase), pair.values(pair.vm, phase)
    ci = ratio_of_medians_ci(v, c)
    verdict = verdict_from(ci)
    if min(len(c), len(v)) < min_n:
        verdict = "inconclusive"
        caveats = [f"too few trials for an interval (n={len(c)}/{len(v)})", *caveats]
    caveats = caveats + failure_notes(ds, pair, (phase,))
    return pair.record(claim, verdict, ci, (len(c), len(v)), caveats, phase, evidence)


# --- density: slope of host memory against instances ----------------------------------------


def _density(ds: Dataset, host: str) -> tuple[list[Row], str]:
    out = []
    metric = density_metric(ds, host)
    for pair in pairs(ds, host, metric):
        phase = pair.shared_phase()
        if phase is None:
            continue
        r = pair.rows[pair.rows.phase == phase]
        cd, vd = r[r.backend == pair.container], r[r.backend == pair.vm]
        fc, fv = fit_slope(cd.instances, cd.value), fit_slope(vd.instances, vd.value)
        if fc is None or fv is None:
            continue
        cmp = compare_slopes(vd.instances, vd.value, cd.instances, cd.value)
        caveats = []
        if math.isinf(cmp.ratio.high):
            caveats.append(f"{pair.container} slope not clearly above zero: ratio unbounded")
        if "tcg" in pair.accel:
            caveats.append(TCG_MEMORY_CAVEAT)
        caveats += failure_notes(ds, pair, (phase,))
        ev = (
            f"{metric} per extra instance: {pair.vm} {_slope_text(fv)}, {pair.container} "
            f"{_slope_text(fc)}; verdict from the slope difference CI "
            f"[{human(cmp.difference.low, 'B')}, {human(cmp.difference.high, 'B')}]"
        )
        verdict = verdict_from(cmp.difference, threshold=0.0)
        out.append(
            pair.record("density", verdict, cmp.ratio, (len(cd), len(vd)), caveats, phase, ev)
        )
    missing = why_missing(ds, host, metric)
    if not missing and not out:
        missing = f"density needs {metric} at two or more instance counts per side"
    return out, missing


def _slope_text(fit: SlopeFit) -> str:
    return f"{human(fit.slope, 'B')} [{human(fit.low, 'B')}, {human(fit.high, 'B')}]"


# --- memory of one instance: the density footprint at N = 1 ----------------------------------

FOOTPRINT = "footprint_bytes"  # dataset.footprint_rows: the instances' PSS + their shims' PSS


def memory_comparisons(ds: Dataset) -> pd.DataFrame:
    """One idle instance's footprint, VM over container, per host and guest (scenarios pooled).

    Not one of the article's claims, but the number in the memory chart's title. It counts
    the same processes as the density verdict (a container with its shim, a VM's hypervisor
    process), so a chart, a verdict and a slide never count memory differently."""
    per_host = forked_map(_memory_rows, list(ds.by_host().items()))
    return _table([row for rows in per_host for row in rows])


def _memory_rows(host_part: tuple[str, Dataset]) -> list[Row]:
    host, part = host_part
    out: list[Row] = []
    for pair in pairs(part, host, FOOTPRINT, keys=("guest",)):
        pair = replace(pair, rows=pair.rows[pair.rows.instances == 1])
        phase = pair.shared_phase()
        if phase is None:
            continue
        c, v = pair.values(pair.container, phase), pair.values(pair.vm, phase)
        ev = (
            f"PSS {pair.vm} {human(np.median(v), 'B')} vs "
            f"{pair.container} {human(np.median(c), 'B')} with its shim"
        )
        caveats = [TCG_MEMORY_CAVEAT] if "tcg" in pair.accel else []
        caveats += _init_caveat(part, pair, "memory")
        out.append(_ratio_record(part, pair, "memory", phase, ev, caveats))
    return out


# --- kernel and compat: facts --------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """A two-halved fact claim: what the container and the VM should each show."""

    metric: str
    container_ok: int  # every container row must show this
    vm_ok: int  # some VM row must show this
    vm_half_fails: str
    container_half_fails: str


FACTS = {
    "kernel": Fact(
        "kernel_matches_host",
        1,
        0,
        "the guest reports the host's kernel release; uname cannot tell the two kernels apart",
        "a container reported a kernel other than the host's (a sandboxed runtime?)",
    ),
    "compat": Fact(
        "runs_foreign_arch",
        0,
        1,
        "the VM did not run the foreign-arch guest",
        "the container ran a foreign-arch binary (binfmt_misc emulation on this host?)",
    ),
}
# The compat claim's other half: a system that is not Linux (memtest86+, detail os=...) on
# container engines against VMs. Its own row of the compat verdict, naming the system.
FOREIGN_OS = Fact(
    FOREIGN_OS_METRIC,
    0,
    1,
    "the VM did not boot the other system",
    "a container engine ran another system's boot image (the row's detail says how)",
)


def _fact(ds: Dataset, host: str, claim: str, fact: Fact | None = None) -> tuple[list[Row], str]:
    """Both halves hold: supported; neither: refuted; one: inconclusive, saying which."""
    fact = fact or FACTS[claim]
    out = []
    for pair in pairs(ds, host, fact.metric, keys=()):
        c, v = pair.values(pair.container), pair.values(pair.vm)
        c_holds, v_holds = bool(np.all(c == fact.container_ok)), bool(np.any(v == fact.vm_ok))
        caveats = []
        if c_holds and v_holds:
            verdict = "supported"
        elif not c_holds and not v_holds:
            verdict = "refuted"
        else:
            verdict = "inconclusive"
            caveats.append(fact.vm_half_fails if c_holds else fact.container_half_fails)
        caveats += failure_notes(ds, pair, ("cold", "warm"), same_guest=False)
        ev = "; ".join(
            f"{b}: {int(np.sum(x == 1))}/{len(x)} {fact.metric}=1 {first_detail(pair.rows, b)}"
            for b, x in ((pair.container, c), (pair.vm, v))
        )
        systems = foreign_systems(pair.rows)
        if systems:
            ev = f"os={','.join(systems)}: {ev}"
        out.append(pair.record(claim, verdict, NO_INTERVAL, (len(c), len(v)), caveats, "", ev))
    return out, why_missing(ds, host, fact.metric)


JUDGES: dict[str, Callable[[Dataset, str], tuple[list[Row], str]]] = {
    "size": _size,
    "speed": _speed,
    "kernel": lambda ds, host: _fact(ds, host, "kernel"),
    "density": _density,
    "compat": lambda ds, host: _compat(ds, host),
}


def _compat(ds: Dataset, host: str) -> tuple[list[Row], str]:
    """Another architecture, then another operating system: one verdict row each."""
    arch, missing = _fact(ds, host, "compat")
    other_os, os_missing = _fact(ds, host, "compat", FOREIGN_OS)
    return arch + other_os, missing or os_missing


def foreign_systems(rows: pd.DataFrame) -> list[str]:
    """The systems that are not Linux these rows name (``os=memtest86+``)."""
    return sorted(set(rows.os) - {""})


def _not_measured(ds: Dataset, host: str, claim: str, why: str) -> Row:
    vm_rows = ds.rows[(ds.rows.host_id == host) & (ds.rows.kind == "vm")]
    empty = Pair(host, "", "", "", "", vm_rows.iloc[0:0])
    row = empty.record(claim, "not-measured", NO_INTERVAL, (0, 0), [why], "", "")
    row["accel"] = ",".join(sorted(set(vm_rows.accel) - {""}))
    row["metric"] = ""
    return row
