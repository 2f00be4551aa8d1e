"""What emulation adds, from the CSVs: a VM's memory by what holds it, the memory and density
ratios without the translation cache, the emulator's slowdown (cpu_work_s), and where this
host's figures lie against the published ones for the same accelerator.

"Without the translation cache" is a subtraction on this host (each TCG VM trial's footprint
less its own ``tcg_cache_pss_bytes``), never a KVM measurement: a KVM VM also differs in how
its guest touches RAM and in what its VMM keeps. Published figures are compared with this
host's only for the same accelerator, so a TCG number meets nothing of KVM's here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from bench.analysis import published
from bench.analysis.claims import FOOTPRINT, JUDGES, memory_comparisons
from bench.analysis.dataset import TRIAL_KEYS, Dataset, prefer_warm
from bench.analysis.stats import ratio_of_medians_ci
from bench.forked import forked_map
from bench.results import METRIC_UNITS
from bench.units import engine_label, human

WITHOUT_CACHE = "without the translation cache"
SUSPECT = "suspect the host before the technology"
PARTS = ("vm_ram_pss_bytes", "tcg_cache_pss_bytes", "vmm_pss_bytes")
VM_KINDS = ("vm", "microvm")
SPLIT_COLUMNS = [
    "host_id",
    "guest",
    "backend",
    "accel",
    "boot",
    "kind",
    "instances",
    "phase",
    "n",
    *PARTS,
    "pss_bytes",
    "tcg_share",
]
FACTOR_COLUMNS = [
    "host_id",
    "guest",
    "container",
    "vm",
    "accel",
    "phase",
    "n_container",
    "n_vm",
    "container_s",
    "vm_s",
    "factor",
    "ci_low",
    "ci_high",
    "tcg_share",
]


# --- a VM's memory by what holds it ----------------------------------------------------------


def memory_split(ds: Dataset) -> pd.DataFrame:
    """Per host, guest, VM engine, accelerator and instance count: the median of each part, of
    pss_bytes, and of each trial's translation-cache share of its pss_bytes (warm trials,
    else cold). Only trials with all three parts and pss_bytes count; grouped as the memory
    chart's bars are (``measured_groups``: a direct kernel boot has no boot word)."""
    m = ds.measured_groups
    rows = m[m.kind.isin(VM_KINDS) & m.metric.isin([*PARTS, "pss_bytes"])]
    if rows.empty:
        return pd.DataFrame(columns=SPLIT_COLUMNS)
    wide = rows.pivot_table(index=[*TRIAL_KEYS, "kind", "boot"], columns="metric", values="value")
    wide = wide.dropna(subset=[c for c in (*PARTS, "pss_bytes") if c in wide]).reset_index()
    if not set(PARTS) <= set(wide.columns) or wide.empty:
        return pd.DataFrame(columns=SPLIT_COLUMNS)
    wide["tcg_share"] = wide.tcg_cache_pss_bytes / wide.pss_bytes
    out = []
    keys = ["host_id", "guest", "backend", "accel", "boot", "kind", "instances"]
    for key, g in wide.groupby(keys, sort=True):
        g, phase = prefer_warm(g)
        medians = {c: float(np.median(g[c])) for c in (*PARTS, "pss_bytes", "tcg_share")}
        out.append(dict(zip(keys, key, strict=True)) | {"phase": phase, "n": len(g)} | medians)
    return pd.DataFrame(out, columns=SPLIT_COLUMNS)


def without_translation_cache(ds: Dataset) -> Dataset:
    """The dataset with every TCG VM trial's footprint_bytes less that trial's translation
    cache; TCG VM trials without a tcg_cache_pss_bytes row are left out of the footprint (their
    cache is not known). Containers and non-TCG VMs are as measured (a KVM VM has no cache)."""
    rows = ds.rows
    ok = rows[(rows.status == "ok") & rows.value.notna()]
    cache = ok[ok.metric == "tcg_cache_pss_bytes"].set_index(TRIAL_KEYS)["value"]
    cache = cache[~cache.index.duplicated()]
    foot = (rows.metric == "footprint_bytes") & rows.kind.isin(VM_KINDS) & (rows.accel == "tcg")
    index = pd.MultiIndex.from_frame(rows.loc[foot, TRIAL_KEYS])
    less = pd.Series(cache.reindex(index).to_numpy(), index=rows.index[foot])
    # Two new columns, the rest shared with ``rows`` (a long run's rows are hundreds of MB).
    adjusted = rows.assign(
        value=rows.value.where(~foot, rows.value - less.reindex(rows.index)),
        detail=rows.detail.where(
            ~foot, f"derived: footprint_bytes - tcg_cache_pss_bytes ({WITHOUT_CACHE})"
        ),
    )
    unknown = less[less.isna()].index
    return replace(ds, rows=adjusted.drop(index=unknown).reset_index(drop=True))


def without_cache_ratios(ds: Dataset) -> pd.DataFrame:
    """The memory and density comparisons of TCG VMs again, without the translation cache:
    the claims' own computations on ``without_translation_cache(ds)``. Columns as the claims
    table's, ``claim`` memory or density, and ``label`` = WITHOUT_CACHE."""
    adjusted = without_translation_cache(ds)
    memory = memory_comparisons(adjusted)
    density = forked_map(_density_table, list(adjusted.by_host().items()))
    out = pd.concat([memory, *density], ignore_index=True) if density else memory
    if out.empty:
        return out.assign(label=pd.Series(dtype=str))
    # A TCG VM whose cache was never measured has no footprint left here: the density judge
    # would fall back to MemAvailable, which holds the cache; such a row is no ratio without it.
    out = out[out.accel.fillna("").str.contains("tcg") & (out.metric == FOOTPRINT)]
    return out.assign(label=WITHOUT_CACHE).reset_index(drop=True)


def _density_table(host_part: tuple[str, Dataset]) -> pd.DataFrame:
    host, part = host_part
    return pd.DataFrame(JUDGES["density"](part, host)[0])


RATIO_KEYS = ["host_id", "claim", "scenario", "guest", "container", "vm"]
WITHOUT_COLUMNS = {
    "ratio": "ratio_without_cache",
    "ci_low": "ci_low_without_cache",
    "ci_high": "ci_high_without_cache",
}


def attach_without_cache(rows: pd.DataFrame, without: pd.DataFrame) -> pd.DataFrame:
    """Claims (or memory comparisons) with the matching ratio without the translation cache
    beside their own (ratio_without_cache, ci_low_/ci_high_without_cache; NaN where the VM
    ran no TCG or its cache was not measured)."""
    if rows.empty:
        return rows.assign(**{c: pd.Series(dtype=float) for c in WITHOUT_COLUMNS.values()})
    extra = without.reindex(columns=[*RATIO_KEYS, *WITHOUT_COLUMNS]).rename(columns=WITHOUT_COLUMNS)
    extra = extra.drop_duplicates(RATIO_KEYS)
    merged = rows.merge(extra, on=RATIO_KEYS, how="left")
    return merged.astype(dict.fromkeys(WITHOUT_COLUMNS.values(), float))


# --- the emulator's slowdown -------------------------------------------------------------------


def cpu_factors(ds: Dataset, split: pd.DataFrame | None = None) -> pd.DataFrame:
    """cpu_work_s, VM over container, per host and guest and each container / VM engine pair
    (warm trials where both sides have them, else cold), with its 95% CI, beside the
    translation cache's median share of that VM engine's memory on the same host and guest
    (NaN where its memory was not split)."""
    m = ds.measured
    work = m[(m.metric == "cpu_work_s") & (m.instances == 1)]
    split = memory_split(ds) if split is None else split
    split = split[split.instances == 1]
    out = []
    for (host, guest), g in work.groupby(["host_id", "guest"], sort=True):
        containers = sorted(g.loc[g.kind == "container", "backend"].unique())
        vms = sorted(g.loc[g.kind.isin(VM_KINDS), "backend"].unique())
        for c in containers:
            for v in vms:
                pair = g[g.backend.isin([c, v])]
                phase = _shared_phase(pair, c, v)
                if phase is None:
                    continue
                pair = pair[pair.phase == phase]
                cs = pair.loc[pair.backend == c, "value"].to_numpy(dtype=float)
                vs = pair.loc[pair.backend == v, "value"].to_numpy(dtype=float)
                ci = ratio_of_medians_ci(vs, cs)
                if min(len(cs), len(vs)) < 2:  # one trial is no exact value: no interval
                    ci = replace(ci, low=float("nan"), high=float("nan"))
                accel = ",".join(sorted(set(pair.loc[pair.backend == v, "accel"]) - {""}))
                share = split[(split.host_id == host) & (split.guest == guest)]
                share = share.loc[share.backend == v, "tcg_share"]
                out.append(
                    {
                        "host_id": host,
                        "guest": guest,
                        "container": c,
                        "vm": v,
                        "accel": accel,
                        "phase": phase,
                        "n_container": len(cs),
                        "n_vm": len(vs),
                        "container_s": float(np.median(cs)),
                        "vm_s": float(np.median(vs)),
                        "factor": ci.estimate,
                        "ci_low": ci.low,
                        "ci_high": ci.high,
                        "tcg_share": float(share.median()) if len(share) else float("nan"),
                    }
                )
    return pd.DataFrame(out, columns=FACTOR_COLUMNS)


def _shared_phase(rows: pd.DataFrame, container: str, vm: str) -> str | None:
    for phase in ("warm", "cold"):
        if {container, vm} <= set(rows.loc[rows.phase == phase, "backend"]):
            return phase
    return None


def factor_sentence(r: pd.Series) -> str:
    """One line of the report: the factor with its CI, next to the cache's share of memory."""
    ci = "" if pd.isna(r.ci_low) else f" [95% CI {r.ci_low:.3g}, {r.ci_high:.3g}]"
    share = (
        f"; the translation cache is {r.tcg_share:.0%} of this VM's memory (PSS)"
        if not pd.isna(r.tcg_share)
        else "; this VM's memory was not split by what holds it"
    )
    return (
        f"{r.host_id}, {r.guest}: the same CPU work takes {r.factor:.3g}x{ci} as long in "
        f"{engine_label(r.vm, r.accel)} ({human(r.vm_s, 's')}) as in {r.container} "
        f"({human(r.container_s, 's')}), n={r.n_container}/{r.n_vm}{share}"
    )


# --- this host against the published figures ---------------------------------------------------

# This host's figures compared with the published ones: (metric, instances).
COMPARED = ("ready_s", "pss_bytes", "vmm_pss_bytes", "footprint_bytes")


def host_figures(ds: Dataset) -> pd.DataFrame:
    """This host's median per host, engine, kind, accelerator and metric that has published
    figures (one instance; warm trials, else cold): what the reference table sets beside them."""
    m = ds.measured
    rows = m[m.metric.isin(COMPARED) & (m.instances == 1) & (m.kind != "")]
    out = []
    for key, g in rows.groupby(["host_id", "backend", "kind", "accel", "metric"], sort=True):
        g, phase = prefer_warm(g)
        out.append(
            dict(zip(["host_id", "backend", "kind", "accel", "metric"], key, strict=True))
            | {"phase": phase, "n": len(g), "median": float(np.median(g.value))}
        )
    return pd.DataFrame(
        out, columns=["host_id", "backend", "kind", "accel", "metric", "phase", "n", "median"]
    )


def suspect_notes(
    figures_here: pd.DataFrame, figures: list[published.Figure], limit: float = 10.0
) -> list[str]:
    """A note per figure of this host (``host_figures``) lying more than ``limit`` times
    outside the published range for the same accelerator (a TCG figure has none to lie
    outside)."""
    ranges = published.ranges(figures)
    notes = []
    for _, r in figures_here.iterrows():
        side = "container" if r.kind == "container" else "vm"
        found = ranges.get((r.metric, r.accel, side))
        if found is None:
            continue
        factor = found.factor_outside(r["median"])
        if factor > limit:
            unit = METRIC_UNITS.get(r.metric, "")
            notes.append(
                f"{r.host_id}: {engine_label(r.backend, r.accel)} {r.metric} "
                f"{human(r['median'], unit)} lies {factor:.0f}x outside the published "
                f"{found.text()} for {r.accel} ({', '.join(f.id for f in found.figures)}): "
                f"{SUSPECT}"
            )
    return notes
