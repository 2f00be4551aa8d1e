"""Several hosts side by side: the claims per host, the ratios per host, and what differs.

A ratio from a TCG laptop and one from a KVM server are not the same measurement, so the
comparison says where hosts differ (CPU, accelerator, engine versions) and where a host
lacks a backend or scenario that another has (a gap, never a crash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench import charts
from bench.claims import CLAIMS, evaluate
from bench.dataset import Dataset, load
from bench.report import METHODOLOGY, ReportOutcome, markdown_table, ratio_text
from bench.report import verdict_markdown as claims_markdown
from bench.units import human

HOST_KEYS = ("cpu_model", "cpu_count", "mem_total_bytes", "kernel", "os")
DIFFERENCE_KEYS = ("cpu_model", "cpu_count")  # differences here change what ratios mean
GAP = "gap (not run on this host)"
HOST_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def write_comparison(csv_paths: list[Path], out_dir: Path) -> ReportOutcome:
    """Write compare.md, claims.csv, ratios.csv and charts grouped by host into out_dir."""
    ds = load(csv_paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    claims = evaluate(ds)
    warnings = [*ds.warnings, *host_differences(ds), *gaps(ds)]
    if len(ds.host_ids) < 2:
        warnings.append(f"only one host ({ds.host_ids[0]}): nothing to compare across hosts")
    ratios = ratio_table(claims, ds.host_ids)
    made, notes = charts.make_charts(ds, claims, out_dir)
    with plt.rc_context(charts.STYLE):
        ratio_chart = charts.save_chart(ratios_by_host(claims), out_dir, "ratios_by_host", None)
    if isinstance(ratio_chart, str):
        notes.append(f"chart ratios_by_host skipped: {ratio_chart}")
    else:
        made.insert(0, ratio_chart)
    warnings += notes
    files = [out_dir / "claims.csv", out_dir / "ratios.csv", out_dir / "compare.md"]
    claims.to_csv(files[0], index=False)
    ratios.to_csv(files[1], index=False)
    files[2].write_text(render(ds, claims, ratios, made, warnings, out_dir), encoding="utf-8")
    for chart in made:
        files += [chart.png, chart.svg]
    return ReportOutcome(claims, files, warnings, None, files[2])


def host_table(ds: Dataset) -> pd.DataFrame:
    """One row per host: the metadata that decides whether numbers are comparable."""
    rows = []
    for host in ds.host_ids:
        meta = ds.hosts.get(host, {})
        row: dict[str, Any] = {"host": host}
        row |= {key: _show(meta.get(key)) for key in HOST_KEYS}
        if isinstance(meta.get("mem_total_bytes"), int | float):
            row["mem_total_bytes"] = human(meta["mem_total_bytes"], "B")
        row["accel"] = accel_text(ds, host)
        for engine, version in sorted(engine_versions(meta).items()):
            row[engine] = version
        rows.append(row)
    return pd.DataFrame(rows).fillna("unknown")


def accel_text(ds: Dataset, host: str) -> str:
    """'qemu kvm, vagrant virtualbox': the accelerators of the VM rows, per backend."""
    r = _native(ds)
    r = r[(r.host_id == host) & (r.kind == "vm")]
    per = r.groupby("backend").accel.agg(lambda a: "+".join(sorted(set(a) - {""})))
    return ", ".join(f"{b} {a}" for b, a in per.items()) or "no VM"


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
            warnings.append(f"hosts differ in {key}: {_listing(values)}")
    for backend in sorted(ds.rows.loc[ds.rows.kind == "vm", "backend"].unique()):
        values = {}
        native = _native(ds)
        for h in hosts:
            r = native[(native.host_id == h) & (native.backend == backend)]
            if len(r):
                values[h] = "+".join(sorted(set(r.accel)))
        if len(set(values.values())) > 1:
            warnings.append(
                f"{backend} runs with different accelerators: {_listing(values)}; "
                "VM ratios are not comparable across these hosts"
            )
    engines = sorted({e for h in hosts for e in engine_versions(ds.hosts.get(h, {}))})
    for engine in engines:
        values = {h: engine_versions(ds.hosts.get(h, {})).get(engine, "absent") for h in hosts}
        if len(set(values.values())) > 1:
            warnings.append(f"{engine} versions differ: {_listing(values)}")
    return warnings


def gaps(ds: Dataset) -> list[str]:
    """A warning per host that lacks a (scenario, guest, backend) another host measured."""
    have = {
        h: set(map(tuple, g[["scenario", "guest", "backend"]].drop_duplicates().to_numpy()))
        for h, g in ds.measured.groupby("host_id")
    }
    everything = set().union(*have.values()) if have else set()
    warnings = []
    for host in ds.host_ids:
        missing = sorted(everything - have.get(host, set()))
        if missing:
            what = ", ".join(f"{b} ({s}/{g})" for s, g, b in missing)
            warnings.append(f"{host} has no measurements for {what}: shown as gaps")
    return warnings


def ratio_table(claims: pd.DataFrame, hosts: list[str]) -> pd.DataFrame:
    """One row per claim and comparison, one column per host: verdict and ratio, or a gap."""
    measured = claims[claims.verdict != "not-measured"]
    keys = ["claim", "scenario", "guest", "vm", "container"]
    combos = measured[keys].drop_duplicates()
    combos = combos.assign(_o=combos.claim.map(list(CLAIMS).index)).sort_values(["_o", *keys])
    rows = []
    for _, combo in combos.iterrows():
        row = {k: combo[k] for k in keys}
        for host in hosts:
            mine = claims[claims.host_id == host]
            match = mine[(mine[keys] == combo[keys]).all(axis=1)]
            if len(match):
                c = match.iloc[0]
                row[host] = f"{c.verdict} {ratio_text(c)}".strip()
            elif (mine[mine.claim == combo.claim].verdict == "not-measured").any():
                row[host] = "not-measured"
            else:
                row[host] = GAP
        rows.append(row)
    for claim in CLAIMS:  # claims measured on no host still get a line
        if claim not in set(combos.claim):
            rows.append({"claim": claim} | {h: "not-measured" for h in hosts})
    return pd.DataFrame(rows, columns=[*keys, *hosts]).fillna("")


def ratios_by_host(claims: pd.DataFrame) -> charts.Built:
    """VM/container ratio with its 95% CI for each comparison, one marker shape per host."""
    r = claims[claims.ratio.notna() & np.isfinite(claims.ratio) & (claims.ratio > 0)]
    if r.empty:
        return "no ratios to compare"
    r = r.assign(label=r.claim + ": " + r.guest + " " + r.vm + "/" + r.container)
    labels = list(dict.fromkeys(r.sort_values(["claim", "label"]).label))
    hosts = sorted(r.host_id.unique())
    fig, ax = plt.subplots(layout="constrained")
    step = 0.6 / max(len(hosts), 1)
    for k, host in enumerate(hosts):
        for _, c in r[r.host_id == host].iterrows():
            y = labels.index(c.label) + (k - (len(hosts) - 1) / 2) * step
            low = c.ratio - c.ci_low if np.isfinite(c.ci_low) else 0
            high = c.ci_high - c.ratio if np.isfinite(c.ci_high) else 0
            ax.errorbar(
                c.ratio,
                y,
                xerr=[[max(low, 0)], [max(high, 0)]],
                color=charts.colour(c.vm),
                marker=HOST_MARKERS[k % len(HOST_MARKERS)],
                markersize=12,
                capsize=6,
                linewidth=2.5,
            )
        ax.plot([], [], "k" + HOST_MARKERS[k % len(HOST_MARKERS)], markersize=12, label=host)
    ax.axvline(1, color="black", linewidth=1.5, linestyle="--")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _p: f"{x:g}x"))
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("VM / container (above 1: the claim's side), 95% CI")
    fig.legend(title="host", loc="outside right upper")
    above = int((r.ci_low > 1).sum())
    title = (
        f"Every interval lies above 1 on all {len(hosts)} host(s)"
        if above == len(r)
        else f"{above} of {len(r)} intervals lie wholly above 1 across {len(hosts)} host(s)"
    )
    return fig, title


def render(
    ds: Dataset,
    claims: pd.DataFrame,
    ratios: pd.DataFrame,
    made: list[charts.Chart],
    warnings: list[str],
    out_dir: Path,
) -> str:
    parts = [
        "# vmbench comparison: " + ", ".join(ds.host_ids),
        "",
        "From: " + ", ".join(f"`{p}`" for p in ds.sources),
        "",
        "## Hosts",
        "",
        markdown_table(host_table(ds)),
    ]
    if warnings:
        parts += ["## Differences and gaps", "", *[f"- {w}" for w in warnings], ""]
    parts += ["## Ratios per host", "", markdown_table(ratios)]
    parts += ["## Claims per host", "", claims_markdown(claims)]
    if made:
        parts += ["## Charts", ""]
        parts += [f"![{c.title}]({c.png.relative_to(out_dir)})\n" for c in made]
    parts += ["## Methodology", "", *[f"- {line}" for line in METHODOLOGY]]
    return "\n".join(parts) + "\n"


def _native(ds: Dataset) -> pd.DataFrame:
    """Rows other than the foreign-arch test, which runs under TCG by necessity everywhere."""
    return ds.rows[ds.rows.metric != "runs_foreign_arch"]


def _show(value: object) -> str:
    return "unknown" if value is None or value == "" else str(value)


def _listing(values: dict[str, str]) -> str:
    return ", ".join(f"{h} {v!r}" for h, v in values.items())
