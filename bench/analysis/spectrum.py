"""The isolation spectrum and the decomposition of a VM's start, read from the CSV alone.

Spectrum: every engine on every guest, ordered from the host's kernel to a kernel of its own
(the CSV's ``kind`` column: container, system-container, microvm, vm), with its median time
to READY and median footprint (PSS + container shim), each with a 95% CI.

Decomposition: where a guest runs as an app container (a), a system container (b, its own
init on the host's kernel) and a VM (c, its own kernel, then the same init), (c) - (b) is
what the kernel costs and (b) - (a) what the init system costs. Each share is a difference
of medians with a two-sample bootstrap CI, one line per combination of engines measured.

Times are warm trials of one instance (cold only where an engine has no warm trial; the
``phase`` column says which). The claims (claims.py) compare the container kind with the VM
kind only; the other kinds are reported here and nowhere merged into either side.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.claims import (
    FOOTPRINT,  # PSS + shim PSS per trial, as the memory claims count it
)
from bench.analysis.dataset import Dataset, prefer_warm
from bench.analysis.stats import Interval, difference_of_medians_ci, median_ci
from bench.forked import forked_map
from bench.results import KINDS, detail_reason

ENTRY_KEYS = ["host_id", "guest", "kind", "backend", "boot", "accel"]
SPECTRUM_COLUMNS = [
    *ENTRY_KEYS,
    "phase",
    "n_ready",
    "ready_s",
    "ready_s_ci_low",
    "ready_s_ci_high",
    "n_footprint",
    "footprint_bytes",
    "footprint_bytes_ci_low",
    "footprint_bytes_ci_high",
]
DECOMPOSITION_COLUMNS = [
    "host_id",
    "guest",
    "vm",
    "vm_boot",
    "accel",
    "system_container",
    "container",
    "vm_ready_s",
    "system_container_ready_s",
    "container_ready_s",
    "kernel_share_s",
    "kernel_share_ci_low",
    "kernel_share_ci_high",
    "init_share_s",
    "init_share_ci_low",
    "init_share_ci_high",
    "kernel_fraction",
    "init_fraction",
    "n_vm",
    "n_system_container",
    "n_container",
    "phases",
]
BETWEEN = ("system-container", "microvm")  # the kinds between the claims' two sides
DECOMPOSED_KINDS = ("container", "system-container", "vm")  # (a), (b), (c) of one guest


@dataclass
class Spectrum:
    """The two tables (a table without rows: not measured; the report says what is missing)."""

    spectrum: pd.DataFrame
    decomposition: pd.DataFrame
    # engines of the decomposition's kinds that could not run here, with why (unsupported rows)
    unsupported: dict[str, str] = field(default_factory=dict)


def isolation_spectrum(ds: Dataset) -> Spectrum:
    """The spectrum and the decomposition of one dataset."""
    return Spectrum(spectrum_table(ds), decomposition_table(ds), _unsupported(ds))


def _unsupported(ds: Dataset) -> dict[str, str]:
    """Engines of a decomposition kind whose every trial was ``unsupported``, and the reason
    their rows give (e.g. rootless podman-systemd on cgroup v1)."""
    f = ds.failures
    f = f[(f.status == "unsupported") & f.kind.isin(DECOMPOSED_KINDS)]
    ran = set(ds.measured.backend)
    return {b: detail_reason(g.detail.iloc[0]) for b, g in f.groupby("backend") if b not in ran}


# --- the tables -----------------------------------------------------------------------------


def single_instance_rows(ds: Dataset, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Measured rows of one instance (each with its trial's ``boot``, dataset.trial_boot)."""
    m = ds.measured
    rows = m[(m.instances == 1) & m.phase.isin(["cold", "warm"]) & m.kind.isin(KINDS)]
    return rows[rows.metric.isin(metrics)]


def spectrum_table(ds: Dataset) -> pd.DataFrame:
    """One row per host, guest and engine (and boot mode, accelerator): median ready_s and
    footprint with their CIs, shared kernel first."""
    rows = single_instance_rows(ds, ("ready_s", FOOTPRINT))
    entries = []
    for key, g in rows.groupby(ENTRY_KEYS, sort=False):
        ready, phase = prefer_warm(g[g.metric == "ready_s"])
        if ready.empty:
            continue  # an engine that never reached READY has no place on the spectrum
        foot, _ = prefer_warm(g[g.metric == FOOTPRINT])
        entries.append((key, phase, ready.value.to_numpy(float), foot.value.to_numpy(float)))
    records = forked_map(_entry, entries)  # a long run's intervals take seconds
    table = pd.DataFrame(records, columns=SPECTRUM_COLUMNS)
    order = table.kind.map({k: i for i, k in enumerate(KINDS)})
    return (
        table.assign(_order=order)
        .sort_values(["host_id", "guest", "_order", "backend", "boot", "accel"])
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def _entry(entry: tuple[tuple[Any, ...], str, np.ndarray, np.ndarray]) -> dict[str, Any]:
    key, phase, ready, foot = entry
    return (
        dict(zip(ENTRY_KEYS, key, strict=True))
        | {"phase": phase, "n_ready": len(ready), "n_footprint": len(foot)}
        | _interval("ready_s", median_ci(ready))
        | _interval("footprint_bytes", median_ci(foot))
    )


def _interval(name: str, ci: Interval) -> dict[str, float]:
    return {name: ci.estimate, f"{name}_ci_low": ci.low, f"{name}_ci_high": ci.high}


@dataclass(frozen=True)
class Side:
    """One engine's ready times on one host and guest (one decomposition term)."""

    backend: str
    boot: str
    accel: str
    phase: str
    values: np.ndarray

    @property
    def median(self) -> float:
        return float(np.median(self.values))


def decomposition_table(ds: Dataset) -> pd.DataFrame:
    """Per host and guest with all three kinds: each VM x system container x app container."""
    rows = single_instance_rows(ds, ("ready_s",))
    records = []
    for (host, guest), g in rows.groupby(["host_id", "guest"], sort=True):
        sides = {kind: _sides(g[g.kind == kind]) for kind in DECOMPOSED_KINDS}
        for vm, system, app in itertools.product(
            sides["vm"], sides["system-container"], sides["container"]
        ):
            records.append(_decompose(host, guest, vm, system, app))
    return pd.DataFrame(records, columns=DECOMPOSITION_COLUMNS)


def _sides(g: pd.DataFrame) -> list[Side]:
    found = []
    for (backend, boot, accel), e in g.groupby(["backend", "boot", "accel"], sort=True):
        chosen, phase = prefer_warm(e)
        found.append(Side(backend, boot, accel, phase, chosen.value.to_numpy(dtype=float)))
    return found


def _decompose(host: str, guest: str, vm: Side, system: Side, app: Side) -> dict:
    kernel = difference_of_medians_ci(vm.values, system.values)
    init = difference_of_medians_ci(system.values, app.values)
    return {
        "host_id": host,
        "guest": guest,
        "vm": vm.backend,
        "vm_boot": vm.boot,
        "accel": vm.accel,
        "system_container": system.backend,
        "container": app.backend,
        "vm_ready_s": vm.median,
        "system_container_ready_s": system.median,
        "container_ready_s": app.median,
        "kernel_share_s": kernel.estimate,
        "kernel_share_ci_low": kernel.low,
        "kernel_share_ci_high": kernel.high,
        "init_share_s": init.estimate,
        "init_share_ci_low": init.low,
        "init_share_ci_high": init.high,
        "kernel_fraction": kernel.estimate / vm.median if vm.median else math.nan,
        "init_fraction": init.estimate / vm.median if vm.median else math.nan,
        "n_vm": len(vm.values),
        "n_system_container": len(system.values),
        "n_container": len(app.values),
        "phases": "/".join(dict.fromkeys((vm.phase, system.phase, app.phase))),
    }
