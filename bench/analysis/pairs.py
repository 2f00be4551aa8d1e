"""Comparisons: every container engine and VM engine measured together on a host, and what
bears on a comparison (failed trials, why a side is missing). The claims judge these pairs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis.dataset import FOREIGN_OS, TRIAL_KEYS, Dataset
from bench.analysis.stats import Interval
from bench.results import detail_reason

Row = dict[str, object]


@dataclass(frozen=True, eq=False)
class Pair:
    """One container engine and one VM engine measured together on a host."""

    host: str
    scenario: str
    guest: str
    container: str
    vm: str
    rows: pd.DataFrame  # the rows of both engines, one metric

    def values(self, backend: str, phase: str | None = None) -> np.ndarray:
        r = self.rows[self.rows.backend == backend]
        if phase is not None:
            r = r[r.phase == phase]
        return r.value.to_numpy(dtype=float)

    @property
    def accel(self) -> str:
        """The accelerators of the VM rows compared (kvm, tcg, ...)."""
        return ",".join(sorted(set(self.rows.loc[self.rows.backend == self.vm, "accel"]) - {""}))

    def shared_phase(self) -> str | None:
        """Warm if both sides have warm runs, else cold: never compare warm with cold."""
        for phase in ("warm", "cold"):
            have = set(self.rows.loc[self.rows.phase == phase, "backend"])
            if {self.container, self.vm} <= have:
                return phase
        return None

    def record(
        self,
        claim: str,
        verdict: str,
        ci: Interval,
        n: tuple[int, int],
        caveats: list[str],
        phase: str,
        evidence: str,
    ) -> Row:
        return {
            "host_id": self.host,
            "claim": claim,
            "verdict": verdict,
            "ratio": ci.estimate,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "n_container": n[0],
            "n_vm": n[1],
            "accel": self.accel,
            "caveat": "; ".join(caveats),
            "scenario": self.scenario,
            "guest": self.guest,
            "container": self.container,
            "vm": self.vm,
            "metric": ",".join(sorted(self.rows.metric.unique())),
            "phase": phase,
            "evidence": evidence,
        }


def pairs(
    ds: Dataset, host: str, metric: str, keys: tuple[str, ...] = ("scenario", "guest")
) -> Iterator[Pair]:
    """Every container/VM pair measured with this metric in the same scenario and guest, and
    with the same readiness: a time to "SSH reachable" (a user's own Vagrant box, detail
    ``readiness=ssh-reachable``) or to another system's banner (memtest86+, ``marker=banner``)
    is never compared with a time to the READY marker.

    Fewer keys pool more: ("guest",) pools a guest's scenarios, () pools everything per host
    (facts); the pair then names the scenarios and guests it pooled."""
    m = ds.measured
    data = m[(m.host_id == host) & (m.metric == metric) & (m.kind != "")]
    if metric != FOREIGN_OS:  # another system is only the compat fact's, never a ratio's
        data = data[~ds.measured_not_linux.loc[data.index]]
    ssh, banner = data.readiness == "ssh-reachable", data.marker == "banner"
    data = data.assign(readiness=np.select([ssh, banner], ["ssh-reachable", "banner"], "marker"))
    groups = data.groupby([*keys, "readiness"]) if keys else [((), data)]
    for _key, g in groups:
        for c in sorted(g.loc[g.kind == "container", "backend"].unique()):
            for v in sorted(g.loc[g.kind == "vm", "backend"].unique()):
                rows = g[g.backend.isin([c, v])]
                s = ",".join(sorted(rows.scenario.unique()))
                gu = ",".join(sorted(rows.guest.unique()))
                yield Pair(host, s, gu, c, v, rows)


def failure_notes(
    ds: Dataset, pair: Pair, phases: tuple[str, ...], same_guest: bool = True
) -> list[str]:
    """'qemu: 2 timeout trial(s), e.g. ...' for failures that bear on this comparison."""
    f = ds.failures
    sel = (
        (f.host_id == pair.host) & f.backend.isin([pair.container, pair.vm]) & f.phase.isin(phases)
    )
    if same_guest:  # a pair that pooled scenarios or guests names them joined by commas
        sel &= f.scenario.isin(pair.scenario.split(",")) & f.guest.isin(pair.guest.split(","))
    notes = []
    for backend, g in f[sel].groupby("backend"):
        counts = ", ".join(f"{n} {status}" for status, n in g.status.value_counts().items() if n)
        notes.append(f"{backend}: {counts} trial(s), e.g. {g.detail.iloc[0][:80]!r}")
    return notes


def why_missing(ds: Dataset, host: str, metric: str) -> str:
    m = ds.measured
    data = m[(m.host_id == host) & (m.metric == metric)]
    kinds = set(data.kind)
    if {"container", "vm"} <= kinds:
        return ""
    have = ", ".join(sorted(data.backend.unique())) or "none"
    missing_kinds = [k for k in ("container", "vm") if k not in kinds]
    lacking = [{"container": "container", "vm": "VM"}[k] for k in missing_kinds]
    why = f"no {' or '.join(lacking)} rows with {metric} (measured: {have})"
    trials = ds.failures[ds.failures.host_id == host].drop_duplicates(TRIAL_KEYS)
    failed = trials[trials.status != "unsupported"]
    if len(failed):
        counts = failed.groupby("backend").size()
        why += "; failed trials: " + ", ".join(f"{b} {n}" for b, n in counts.items())
    # An engine that cannot run a guest here did not fail; only the missing side's matter.
    unsupported = trials[(trials.status == "unsupported") & trials.kind.isin(missing_kinds)]
    if len(unsupported):
        reasons = unsupported.assign(reason=unsupported.detail.map(reason))
        why += "; not supported here: " + "; ".join(
            f"{backend} on {', '.join(sorted(g.guest.unique()))} ({reason})"
            for (backend, reason), g in reasons.groupby(["backend", "reason"])
        )
    return why


def reason(detail: str) -> str:
    """A trial row's reason without the words every row of it carries (workload=, boot=)."""
    return textwrap.shorten(detail_reason(detail), 100, placeholder=" …")


def first_detail(g: pd.DataFrame, backend: str) -> str:
    """An example of the evidence, cut at a word: "(guest_kernel=6.1.0-56-cloud-amd64 ...)"."""
    details = g.loc[g.backend == backend, "detail"]
    if not len(details) or not details.iloc[0]:
        return ""
    words = [w for w in str(details.iloc[0]).split() if not w.startswith("workload=")]
    return f"({textwrap.shorten(' '.join(words), 120, placeholder=' …')})"
