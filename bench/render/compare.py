"""Several hosts side by side: the claims per host, the ratios across hosts, and what differs.

A ratio from a TCG laptop and one from a KVM server are not the same measurement, so the
comparison says where hosts differ (CPU, accelerator, engine versions) and where a host
lacks a backend or scenario that another has (a gap, never a crash).

Host ids are data, never column names: every table is long, with a ``host_id`` column, so
a host called ``vm`` or ``claim`` cannot collide with anything. A lab of fifty hosts gets
one line per comparison (how many hosts support the claim, the median ratio, which hosts
differ) instead of fifty columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from bench.analysis.claims import CLAIMS, evaluate
from bench.analysis.dataset import Dataset, load
from bench.render import charts, compare_charts
from bench.render.report import METHODOLOGY, ReportOutcome, markdown_table, verdict_table
from bench.render.report import verdict_markdown as claims_markdown
from bench.units import accel_label, human

HOST_KEYS = ("cpu_model", "cpu_count", "mem_total_bytes", "kernel", "os")
DIFFERENCE_KEYS = ("cpu_model", "cpu_count")  # differences here change what ratios mean
COMPARISON_KEYS = ["claim", "scenario", "guest", "vm", "container"]
GAP = "gap"  # the host did not run this comparison, though another host did
NOT_MEASURED = "not-measured"
# Past a handful of hosts, per-host charts (one box or line per host) give way to one chart
# of the ratios across hosts: a dot per host, the median, the hosts that differ named.
MAX_HOSTS_PER_CHART = 5
# A host differs when its ratio is far from the other hosts' median in robust units
# (modified z-score, Iglewicz and Hoaglin) and by enough to matter on a slide.
OUTLIER_Z = 3.5
OUTLIER_MIN_FACTOR = 1.25
NAMES_SHOWN = 10  # hosts named in one warning before "and N more"


def write_comparison(
    csv_paths: list[Path], out_dir: Path, *, missing_hosts: Mapping[str, str] | None = None
) -> ReportOutcome:
    """Write compare.md, claims.csv, ratios.csv (long: one row per host and comparison)
    and charts into out_dir.

    ``missing_hosts``: hosts that were meant to be compared but gave no results (a fleet
    run's failed hosts), each with the reason; compare.md lists them.
    """
    ds = load(csv_paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    claims = evaluate_by_host(ds)
    hosts = ds.host_ids
    warnings = [*ds.warnings, *host_differences(ds), *gaps(ds)]
    if len(hosts) < 2:
        warnings.append(f"only one host ({hosts[0]}): nothing to compare across hosts")
    ratios = ratio_table(claims, hosts)
    made, notes = draw_charts(ds, claims, ratios, out_dir)
    warnings += notes
    files = [out_dir / "claims.csv", out_dir / "ratios.csv", out_dir / "compare.md"]
    claims.to_csv(files[0], index=False)
    ratios.to_csv(files[1], index=False)
    text = render(ds, claims, ratios, made, warnings, out_dir, missing_hosts or {})
    files[2].write_text(text, encoding="utf-8")
    for chart in made:
        files += [chart.png, chart.svg]
    return ReportOutcome(claims, files, warnings, across_hosts(ratios, len(hosts)), files[2])


def terminal_table(outcome: ReportOutcome) -> Table:
    """Every host's verdicts while a handful of hosts fit; past that, one line per comparison
    across hosts (``outcome.summary`` of write_comparison)."""
    if outcome.claims.host_id.nunique() <= MAX_HOSTS_PER_CHART or outcome.summary is None:
        return verdict_table(outcome.claims)
    table = Table(title=f"vmbench across {outcome.claims.host_id.nunique()} hosts")
    for column in outcome.summary.columns:
        table.add_column(column, overflow="fold")
    for row in outcome.summary.itertuples(index=False):
        table.add_row(*map(str, row))
    return table


def evaluate_by_host(ds: Dataset) -> pd.DataFrame:
    """claims.evaluate, host by host: each host's verdicts from its own rows only, so the
    cost grows with the number of hosts, not with its square."""
    per_host = [evaluate(sub) for sub in ds.by_host().values()]
    return pd.concat(per_host, ignore_index=True) if per_host else evaluate(ds)


def draw_charts(
    ds: Dataset, claims: pd.DataFrame, ratios: pd.DataFrame, out_dir: Path
) -> tuple[list[charts.Chart], list[str]]:
    """The ratio chart first; the per-host charts only while a handful of hosts fit on them."""
    hosts = ds.host_ids
    if len(hosts) <= MAX_HOSTS_PER_CHART:
        made, notes = charts.make_charts(ds, claims, out_dir)
        name = "ratios_by_host"
        chart = compare_charts.draw(lambda: compare_charts.ratios_by_host(claims), out_dir, name)
    else:
        made, notes = (
            [],
            [
                f"per-host charts are drawn for up to {MAX_HOSTS_PER_CHART} hosts; with "
                f"{len(hosts)}, see the chart of ratios across hosts, and each host's own report"
            ],
        )
        name = "ratios_across_hosts"
        chart = compare_charts.draw(
            lambda: compare_charts.ratios_across_hosts(ratios, len(hosts)), out_dir, name
        )
    if isinstance(chart, str):
        notes.append(f"chart {name} skipped: {chart}")
    else:
        made.insert(0, chart)
    return made, notes


# --- hosts ------------------------------------------------------------------------------------


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


def accel_text(ds: Dataset, host: str) -> str:
    """'qemu kvm, vagrant virtualbox': the accelerators of the VM rows, per backend."""
    per = _accels(ds, host).get(host, {})
    return ", ".join(f"{b} {a}" for b, a in per.items()) or "no VM"


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


def across_hosts(
    ratios: pd.DataFrame, total: int, show: Callable[[str], str] | None = None
) -> pd.DataFrame:
    """One line per comparison: verdicts counted over hosts, median and range of the
    ratios, and the hosts that differ (an outlying ratio, another verdict, a gap), each
    host id written by ``show`` (quoted for a terminal, a code span for markdown)."""
    show = show or _quoted
    rows = []
    for key, g in ratios.groupby(COMPARISON_KEYS, sort=False):
        combo = dict(zip(COMPARISON_KEYS, key, strict=True))
        counts = g.verdict.value_counts()
        ok = g[g.ratio.notna() & np.isfinite(g.ratio.astype(float)) & (g.ratio > 0)]
        differ = [f"{show(t.host_id)} {t.ratio:.3g}x" for t in ok[ok.outlier].itertuples()]
        judged = g[~g.verdict.isin([GAP, NOT_MEASURED])]
        if len(judged):
            usual = judged.verdict.value_counts().idxmax()
            odd = judged[judged.verdict != usual]
            differ += [f"{show(t.host_id)} {t.verdict}" for t in odd.itertuples()]
        gap_hosts = g.host_id[g.verdict == GAP].tolist()
        if gap_hosts:
            differ.append(f"gap on {host_list(gap_hosts, show)}")
        accels = judged.accel.fillna("").replace("", "unknown").value_counts()
        rows.append(
            {
                "claim": combo["claim"],
                "comparison": _comparison(combo),
                "VM accel": ", ".join(f"{_accel(a)} on {n}" for a, n in accels.items()),
                "verdicts": ", ".join(f"{n} {v}" for v, n in counts.items()) + f" (of {total})",
                "median ratio": f"{ok.ratio.median():.3g}x" if len(ok) else "",
                "range": f"{ok.ratio.min():.3g}x .. {ok.ratio.max():.3g}x" if len(ok) > 1 else "",
                "hosts that differ": "; ".join(differ),
            }
        )
    return pd.DataFrame(rows)


def _accel(accel: str) -> str:
    """'tcg (emulated)': a VM under TCG is labelled so wherever it appears."""
    return "+".join(accel_label(a) for a in accel.split(","))


def _comparison(combo: dict[str, str]) -> str:
    if not combo["vm"]:
        return ""
    return f"{combo['vm']} vs {combo['container']}, {combo['guest']} ({combo['scenario']})"


# --- markdown ---------------------------------------------------------------------------------


def render(
    ds: Dataset,
    claims: pd.DataFrame,
    ratios: pd.DataFrame,
    made: list[charts.Chart],
    warnings: list[str],
    out_dir: Path,
    missing_hosts: Mapping[str, str],
) -> str:
    hosts = ds.host_ids
    title = (
        "# vmbench comparison: " + ", ".join(code(h) for h in hosts)
        if len(hosts) <= MAX_HOSTS_PER_CHART
        else f"# vmbench comparison of {len(hosts)} hosts"
    )
    host_rows = host_table(ds).assign(host_id=lambda t: t.host_id.map(code))
    parts = [
        title,
        "",
        "From: " + ", ".join(f"`{p}`" for p in ds.sources),
        "",
        "## Hosts",
        "",
        markdown_table(host_rows),
    ]
    if missing_hosts:
        parts += ["## Hosts without results", ""]
        parts += [f"- {code(host)}: {md_text(why)}" for host, why in missing_hosts.items()]
        parts += [""]
    if warnings:
        parts += ["## Differences and gaps", "", *[f"- {md_text(w)}" for w in warnings], ""]
    parts += [
        "## Across hosts",
        "",
        f"One line per comparison; the ratio is VM / container. A host differs when its ratio "
        f"is more than {OUTLIER_Z} robust standard deviations (MAD) and {OUTLIER_MIN_FACTOR}x "
        "from the median of the hosts, or its verdict is not the most common one. Every host's "
        "verdict and ratio is in ratios.csv (one row per host and comparison).",
        "",
        markdown_table(across_hosts(ratios, len(hosts), show=code)),
    ]
    if made:
        parts += ["## Charts", ""]
        parts += [f"![{c.title}]({c.png.relative_to(out_dir)})\n" for c in made]
    parts += ["## Claims per host", "", claims_markdown(claims)]
    parts += ["## Methodology", "", *[f"- {line}" for line in METHODOLOGY]]
    return "\n".join(parts) + "\n"


def code(text: str) -> str:
    """A markdown code span of text, whatever backticks it holds: host ids shown verbatim."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_text(text: str) -> str:
    """Text with the characters markdown would act on escaped (for warnings with host ids).
    Underscores are left alone: inside words (pss_bytes) GFM does not act on them."""
    return re.sub(r"([\\`*\[\]<>|])", r"\\\1", text)


def host_list(
    hosts: list[str], show: Callable[[str], str] | None = None, shown: int = NAMES_SHOWN
) -> str:
    """'a, b, c' or 'a, b, ... and 40 more'; host ids quoted where a comma or space is in them."""
    show = show or _quoted
    names = ", ".join(show(h) for h in hosts[:shown])
    return names + (f" and {len(hosts) - shown} more" if len(hosts) > shown else "")


def _quoted(host: str) -> str:
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
