"""Several hosts side by side, computed: which hosts differ in what decides a ratio (CPU,
accelerator, engine versions), what some hosts measured and others lack (a gap, never a
crash), and each host's ratio per comparison with the hosts whose ratio lies far from the rest.

Host ids are data, never column names: every table is long, with a ``host_id`` column, so a
host called ``vm`` or ``claim`` cannot collide with anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.claims import CLAIMS
from bench.analysis.dataset import Dataset
from bench.units import human

HOST_KEYS = ("cpu_model", "cpu_count", "mem_total_bytes", "kernel", "os")
DIFFERENCE_KEYS = ("cpu_model", "cpu_count")  # differences here change what ratios mean
COMPARISON_KEYS = ["claim", "scenario", "guest", "vm", "container"]
GAP = "gap"  # the host did not run this comparison, though another host did
NOT_MEASURED = "not-measured"
# A host differs when its ratio is far from the other hosts' median in robust units
# (modified z-score, Iglewicz and Hoaglin) and by enough to matter on a slide.
OUTLIER_Z = 3.5
OUTLIER_MIN_FACTOR = 1.25
NAMES_SHOWN = 10  # hosts named in one warning before "and N more"


@dataclass
class Hosts:
    """What the hosts of one analysis are, and how their results compare."""

    table: pd.DataFrame  # one row per host: the metadata that decides comparability
    warnings: list[str]  # where hosts differ, and the gaps
    ratios: pd.DataFrame  # long: one row per host and comparison (ratio_table)

    @property
    def count(self) -> int:
        return len(self.table)


def compare_hosts(ds: Dataset, claims: pd.DataFrame) -> Hosts:
    """The hosts of ``ds`` side by side, from each host's verdicts (``claims``)."""
    hosts = ds.host_ids
    warnings = [*host_differences(ds), *gaps(ds)]
    if len(hosts) < 2:
        warnings.append(f"only one host ({hosts[0]}): nothing to compare across hosts")
    return Hosts(host_table(ds), warnings, ratio_table(claims, hosts))


def host_table(ds: Dataset) -> pd.DataFrame:
    """One row per host: the metadata that decides whether numbers are comparable."""
    accels = _accels(ds)
    rows = []
    for host in ds.host_ids:
        meta = ds.hosts.get(host, {})
        row: dict[str, Any] = {"host_id": host}
        row |= {key: _show(meta.get(key)) for key in HOST_KEYS}
        if isinstance(meta.get("mem_total_bytes"), int | float):
            row["mem_total_bytes"] = human(meta["mem_total_bytes"], "B")
        row["accel"] = ", ".join(f"{b} {a}" for b, a in accels.get(host, {}).items()) or "no VM"
        for engine, version in sorted(engine_versions(meta).items()):
            row[f"{engine} version"] = version
        rows.append(row)
    return pd.DataFrame(rows).fillna("unknown")


def _accels(ds: Dataset, host: str | None = None) -> dict[str, dict[str, str]]:
    """host -> VM backend -> 'kvm' or 'kvm+tcg', the foreign-arch test left out."""
    r = _native(ds)
    r = r[r.kind == "vm"]
    if host is not None:
        r = r[r.host_id == host]
    per = r.groupby(["host_id", "backend"]).accel.agg(lambda a: "+".join(sorted(set(a) - {""})))
    out: dict[str, dict[str, str]] = {}
    for (h, backend), accel in per.items():
        out.setdefault(h, {})[backend] = accel
    return out


def engine_versions(meta: dict[str, Any]) -> dict[str, str]:
    versions = meta.get("versions")
    if not isinstance(versions, dict):
        return {}
    return {k: str(v) for k, v in versions.items() if v}


def host_differences(ds: Dataset) -> list[str]:
    """Warnings where hosts differ in CPU, accelerator or engine versions."""
    hosts = ds.host_ids
    if len(hosts) < 2:
        return []
    warnings = []
    for key in DIFFERENCE_KEYS:
        values = {h: _show(ds.hosts.get(h, {}).get(key)) for h in hosts}
        if len(set(values.values())) > 1:
            warnings.append(f"hosts differ in {key}: {_grouped(values)}")
    accels = _accels(ds)
    for backend in sorted(ds.rows.loc[ds.rows.kind == "vm", "backend"].unique()):
        values = {h: accels[h][backend] for h in hosts if backend in accels.get(h, {})}
        if len(set(values.values())) > 1:
            warnings.append(
                f"{backend} runs with different accelerators: {_grouped(values)}; "
                "VM ratios are not comparable across these hosts"
            )
    engines = sorted({e for h in hosts for e in engine_versions(ds.hosts.get(h, {}))})
    for engine in engines:
        values = {h: engine_versions(ds.hosts.get(h, {})).get(engine, "absent") for h in hosts}
        if len(set(values.values())) > 1:
            warnings.append(f"{engine} versions differ: {_grouped(values)}")
    return warnings


def gaps(ds: Dataset) -> list[str]:
    """A warning per (scenario, guest, backend) that some hosts measured and others lack."""
    measured = ds.measured[["host_id", "scenario", "guest", "backend"]].drop_duplicates()
    hosts = ds.host_ids
    warnings = []
    for (scenario, guest, backend), g in measured.groupby(["scenario", "guest", "backend"]):
        lacking = sorted(set(hosts) - set(g.host_id))
        if lacking:
            warnings.append(
                f"no measurements for {backend} ({scenario}/{guest}) on {len(lacking)} of "
                f"{len(hosts)} hosts: {host_list(lacking)}; shown as gaps"
            )
    return warnings


# --- ratios -----------------------------------------------------------------------------------


def ratio_table(claims: pd.DataFrame, hosts: list[str]) -> pd.DataFrame:
    """Long: one row per host and comparison (claim, scenario, guest, VM and container
    engine), with that host's verdict and ratio, ``gap`` where the host did not run it,
    ``not-measured`` where it measured neither side, and whether its ratio is an outlier."""
    keys = COMPARISON_KEYS
    measured = claims[claims.verdict != NOT_MEASURED].drop_duplicates([*keys, "host_id"])
    combos = measured[keys].drop_duplicates()
    for claim in CLAIMS:  # a claim measured on no host still gets its line
        if claim not in set(combos.claim):
            combos = pd.concat([combos, pd.DataFrame([{"claim": claim}])], ignore_index=True)
    combos = combos.fillna("")
    grid = combos.merge(pd.DataFrame({"host_id": hosts}), how="cross")
    values = ["verdict", "ratio", "ci_low", "ci_high", "n_container", "n_vm", "accel"]
    table = grid.merge(measured[[*keys, "host_id", *values]], on=[*keys, "host_id"], how="left")
    unmeasured = set(zip(claims.host_id, claims.claim, strict=True)) - set(
        zip(measured.host_id, measured.claim, strict=True)
    )
    missing = table.verdict.isna()
    table.loc[missing, "verdict"] = [
        NOT_MEASURED if (h, c) in unmeasured or not s else GAP
        for h, c, s in zip(
            table.host_id[missing], table.claim[missing], table.scenario[missing], strict=True
        )
    ]
    order = {claim: i for i, claim in enumerate(CLAIMS)}
    table = table.assign(_o=table.claim.map(order)).sort_values(["_o", *keys[1:], "host_id"])
    table = table.astype({"n_container": "Int64", "n_vm": "Int64"})
    table["outlier"] = _outliers(table)
    columns = ["host_id", *keys, *values, "outlier"]
    return table[columns].reset_index(drop=True)


def _outliers(table: pd.DataFrame) -> pd.Series:
    """True for a host whose ratio lies far from the other hosts' median for its comparison:
    modified z-score of log(ratio) above OUTLIER_Z and at least OUTLIER_MIN_FACTOR away."""
    out = pd.Series(False, index=table.index)
    ok = table.ratio.notna() & np.isfinite(table.ratio.astype(float)) & (table.ratio > 0)
    for _, g in table[ok].groupby(COMPARISON_KEYS):
        if len(g) < 3:
            continue
        logs = np.log(g.ratio.to_numpy(dtype=float))
        deviation = np.abs(logs - np.median(logs))
        mad = np.median(deviation)
        z = 0.6745 * deviation / mad if mad > 0 else np.where(deviation > 0, np.inf, 0.0)
        out[g.index] = (z > OUTLIER_Z) & (deviation > np.log(OUTLIER_MIN_FACTOR))
    return out


def host_list(
    hosts: list[str], show: Callable[[str], str] | None = None, shown: int = NAMES_SHOWN
) -> str:
    """'a, b, c' or 'a, b, ... and 40 more'; host ids quoted where a comma or space is in them."""
    show = show or quoted
    names = ", ".join(show(h) for h in hosts[:shown])
    return names + (f" and {len(hosts) - shown} more" if len(hosts) > shown else "")


def quoted(host: str) -> str:
    return host if re.fullmatch(r"[\w.-]+", host) else repr(host)


def _grouped(values: dict[str, str]) -> str:
    """ "'X' on a, b; 'Y' on c": hosts grouped by their value."""
    by_value: dict[str, list[str]] = {}
    for host, value in values.items():
        by_value.setdefault(value, []).append(host)
    return "; ".join(f"{value!r} on {host_list(hs)}" for value, hs in by_value.items())


def _native(ds: Dataset) -> pd.DataFrame:
    """Rows other than the foreign-arch test, which runs under TCG by necessity everywhere."""
    return ds.rows[ds.rows.metric != "runs_foreign_arch"]


def _show(value: object) -> str:
    return "unknown" if value is None or value == "" else str(value)
