"""Chart titles that state the finding: the ratio (range) of the claim's rows, and what
holds for all of them (TCG, an init system on one side only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.claims import vm_init_where_it_differs
from bench.analysis.emulation import WITHOUT_CACHE


def _times(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())

    def one(x: float) -> str:
        return f"{x:.0f}" if x >= 10 else f"{x:.1f}"

    return f"{one(lo)}x" if one(lo) == one(hi) else f"{one(lo)}–{one(hi)}x"


def claim_title(claims: pd.DataFrame, claim: str, supported: str, refuted: str, other: str) -> str:
    """A title stating what the claim's rows found: {r} is the ratio (range) in the text."""
    rows = claims[(claims.claim == claim) & np.isfinite(claims.ratio)]  # claims._table: float
    rows = rows[rows.ratio > 0]
    if rows.empty:
        return other
    verdicts = set(rows.verdict)
    if verdicts == {"supported"}:
        title = supported.format(r=_times(rows.ratio))
    elif verdicts == {"refuted"}:
        title = refuted.format(r=_times(1 / rows.ratio))
    else:
        k = int((rows.verdict == "supported").sum())
        title = f"{other}: claim supported in {k} of {len(rows)} comparisons"
    return title + _init_note(rows) + _tcg_note(rows) + _without_cache_note(claim, rows)


def _without_cache_note(claim: str, rows: pd.DataFrame) -> str:
    """A memory or density title of TCG VMs never states the ratio the emulator inflates
    alone: the ratio without the translation cache beside it, or that it was not measured."""
    tcg = rows.caveat.str.contains("TCG")
    if claim not in ("memory", "density") or not tcg.any():
        return ""
    without = rows.get("ratio_without_cache", pd.Series(dtype=float)).dropna()
    if without.empty or not np.isfinite(without).all():
        return "; its translation cache not measured apart"
    return f"; {_times(without)} {WITHOUT_CACHE}"


def _tcg_note(rows: pd.DataFrame) -> str:
    tcg = rows.caveat.str.contains("TCG")
    if len(rows) and tcg.all():
        return ", VM under TCG emulation"
    if tcg.any():
        return ", some VMs under TCG emulation"
    return ""


def _init_note(rows: pd.DataFrame) -> str:
    """A ratio that holds an init system on one side only (claims._init_caveat) says so."""
    differs = vm_init_where_it_differs(rows.caveat).dropna()
    if differs.empty:
        return ""
    inits = "/".join(sorted(set(differs)))
    return f", {len(differs)} of {len(rows)} with {inits} as PID 1 in the VM only"


def fact_title(claims: pd.DataFrame, claim: str, supported: str, other: str) -> str:
    """A fact claim's title: the finding when every comparison supports it."""
    rows = claims[claims.claim == claim]
    return supported if len(rows) and set(rows.verdict) == {"supported"} else other
