"""Result CSVs (and the host.json beside each) -> one typed pandas table.

The reading side sees only files, so a CSV copied from another host reports the same way.
Bad lines are skipped by ``results.read_rows`` and every one becomes a warning naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import VmbenchError
from bench.results import (
    COLUMNS,
    DETAIL_KEYS,
    KINDS,
    METRIC_UNITS,
    OPTIONAL_COLUMNS,
    ResultsFile,
    ResultsSchemaError,
    parse_detail,
    read_results,
)

# The declared facts every row of a kind has, as typed columns (results.DETAIL_KEYS); "" where
# a row does not say. The rest of a row's declared facts are in its ``facts`` column (a dict).
FACT_COLUMNS = tuple(name for name, key in DETAIL_KEYS.items() if key.column)

# Which side of the comparison a backend is on, for CSVs without a ``kind`` column. Unknown
# engines are reported but kept out of the claims: we cannot tell which side they are on.
CONTAINER_BACKENDS = ("docker", "podman", "nerdctl", "lxc")
VM_BACKENDS = ("qemu", "vagrant", "firecracker", "cloud-hypervisor", "virtualbox", "libvirt")


class ReportInputError(VmbenchError, ValueError):
    """Input a report cannot be made from (missing file, no usable rows): CLI exit code 2."""


def kind_of(backend: str) -> str:
    """'container', 'vm' or '' for a backend name: the kind of a row from a CSV that predates
    the ``kind`` column (newer CSVs carry each engine's own declaration)."""
    if backend in CONTAINER_BACKENDS:
        return "container"
    if backend in VM_BACKENDS:
        return "vm"
    return ""


@dataclass
class Dataset:
    """Every good row of the given CSVs, plus host metadata and what went wrong reading."""

    rows: pd.DataFrame
    hosts: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    # Computed once: the claims ask for these many times per host.
    @cached_property
    def measured(self) -> pd.DataFrame:
        """Numbers that count: status ok, a value, and not warmup."""
        r = self.rows
        return r[(r.status == "ok") & r.value.notna() & (r.phase != "warmup")]

    @cached_property
    def measured_groups(self) -> pd.DataFrame:
        """``measured`` with a direct kernel boot and no boot word in one group: both are
        labelled the same (``qemu``), and rows from before boot modes were recorded booted so.
        Without another system's rows (memtest86+): the compat matrix shows those, the charts
        of the ratio claims never set them beside a Linux guest."""
        m = self.measured
        if self.measured_not_linux.any():
            m = m[~self.measured_not_linux]
        return m.assign(boot=m.boot.replace("kernel", ""))

    @cached_property
    def measured_not_linux(self) -> pd.Series:
        """``not_linux(measured)``, found once: every comparison leaves these rows out."""
        return not_linux(self.measured)

    @property
    def multi_host(self) -> bool:
        return self.rows.host_id.nunique() > 1

    @cached_property
    def failures(self) -> pd.DataFrame:
        """Trials that produced no number (failed, timeout, ...), warmup excluded."""
        r = self.rows
        return r[(r.status != "ok") & (r.phase != "warmup")]

    @property
    def host_ids(self) -> list[str]:
        return sorted(self.rows.host_id.unique())

    def by_host(self) -> dict[str, Dataset]:
        """One Dataset per host (sorted), so per-host work costs its own rows, not the whole
        lab's; split once, and a one-host dataset is its own part."""
        return self._by_host

    @cached_property
    def _by_host(self) -> dict[str, Dataset]:
        if not self.multi_host:
            return {host: self for host in self.host_ids}
        return {
            host: Dataset(rows, {host: self.hosts.get(host, {})}, [], self.sources)
            for host, rows in self.rows.groupby("host_id", sort=True)
        }


def load(csv_paths: list[Path]) -> Dataset:
    """Read CSVs into a Dataset; raise ReportInputError when nothing usable is left."""
    frames: list[pd.DataFrame] = []
    hosts: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    paths = [Path(p) for p in csv_paths]
    if not paths:
        raise ReportInputError("no results CSV given")
    read: list[ResultsFile] = []
    for path in paths:
        if not path.is_file():
            raise ReportInputError(f"{path}: no such results file")
        try:
            results = read_results(path)
        except ResultsSchemaError as e:
            raise ReportInputError(str(e)) from None
        read.append(results)
        warnings.extend(str(b) for b in results.bad)
        if not len(results):
            warnings.append(f"{path}: no usable rows")
            continue
        frame = pd.DataFrame(results.columns, columns=list(COLUMNS))
        frame["source"] = str(path)
        frames.append(frame)
        meta = _read_host_json(path.parent / "host.json", warnings)
        for host_id in frame.host_id.unique():
            merged = hosts.setdefault(host_id, {})
            for key, value in meta.items():
                merged.setdefault(key, value)
    warnings[:0] = column_warnings(read)
    if not frames:
        raise ReportInputError("no usable rows in " + ", ".join(str(p) for p in paths))
    rows = with_facts(_typed(pd.concat(frames, ignore_index=True), warnings))
    rows = pd.concat([rows, footprint_rows(rows)], ignore_index=True)
    rows["boot"] = trial_boot(rows)
    rows = rows.astype(dict.fromkeys(CATEGORICAL, "category"))
    for host_id in rows.host_id.unique():
        hosts.setdefault(host_id, {})
    return Dataset(rows=rows, hosts=hosts, warnings=warnings, sources=paths)


def column_warnings(read: list[ResultsFile]) -> list[str]:
    """One warning per optional column some CSVs lack and per unknown column some CSVs have,
    naming those files: CSVs from older and newer versions are read, and the reader says so."""
    warnings = []
    for column, optional in OPTIONAL_COLUMNS.items():
        lacking = [r.path for r in read if column in r.missing]
        if lacking:
            warnings.append(
                f"no column {column!r} in {_files(lacking, len(read))} (an older vmbench CSV?): "
                f"read as {optional.filled_with}"
            )
    unknown = dict.fromkeys(c for r in read for c in r.unknown)
    for column in unknown:
        having = [r.path for r in read if column in r.unknown]
        warnings.append(
            f"column {column!r} in {_files(having, len(read))} is not in this vmbench's schema "
            "(a newer vmbench CSV?): ignored"
        )
    return warnings


def _files(paths: list[Path], total: int, shown: int = 3) -> str:
    """'a.csv', or '3 of 50 CSVs (a.csv, b.csv, c.csv, ...)' when there are many."""
    names = ", ".join(str(p) for p in paths[:shown]) + (", ..." if len(paths) > shown else "")
    return names if total == 1 else f"{len(paths)} of {total} CSVs ({names})"


# One trial's identity: every schema column before the measured metric, plus the file.
TRIAL_KEYS = ["source", *COLUMNS[: COLUMNS.index("metric")]]


def footprint_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``footprint_bytes`` per trial: the instances' PSS plus their container shims' PSS.

    What one more instance costs the host, counted from its own processes. On a shared host
    this is steadier than the change in MemAvailable, which every other program moves too.
    """
    ok = rows[(rows.status == "ok") & rows.value.notna()]
    pss = ok[ok.metric == "pss_bytes"].set_index(TRIAL_KEYS)
    if pss.empty:
        return rows.iloc[0:0]
    shim = ok[ok.metric == "shim_pss_bytes"].set_index(TRIAL_KEYS)["value"]
    shim = shim[~shim.index.duplicated()]
    out = pss[~pss.index.duplicated()].copy()
    out["value"] = out["value"] + shim.reindex(out.index).fillna(0.0)
    out["metric"] = "footprint_bytes"
    out["unit"] = "B"
    out["detail"] = "derived: pss_bytes + shim_pss_bytes"
    return out.reset_index()[rows.columns]


def with_facts(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with each detail parsed once (results.parse_detail): ``facts`` (the declared
    facts as a dict) and a typed column per FACT_COLUMNS key ("" where a row does not say)."""
    codes, details = pd.factorize(rows.detail, use_na_sentinel=False)  # few distinct details
    parsed = [parse_detail(d) for d in details]
    facts = [parsed[i] for i in codes]
    columns = {name: [f.get(name, "") for f in facts] for name in FACT_COLUMNS}
    return rows.assign(facts=facts, **columns)


def trial_boot(rows: pd.DataFrame) -> pd.Series:
    """Each row's boot mode: its ``boot=`` fact (kernel, bios, uefi, disk), else that of a
    row of its trial, else empty (a container, an older CSV). One engine booted two ways is
    two groups in every chart and table, never one, and a row that names no boot mode
    itself (a footprint derived from PSS, a Vagrant memory row) still has its trial's."""
    words = rows["boot"].astype(str)
    named = rows.assign(boot=words)[words != ""].drop_duplicates(TRIAL_KEYS)
    per_trial = named.set_index(TRIAL_KEYS).boot
    found = per_trial.reindex(pd.MultiIndex.from_frame(rows[TRIAL_KEYS])).fillna("")
    return words.where(words != "", found.to_numpy()).rename("boot")


# The columns that name a trial's group, held as categories: a long run's rows are hundreds
# of thousands, and a category is one byte a row where a text is eight, and compares at once.
# The analysis only selects and groups by these; a column it rewrites (``boot``, the facts'
# "" -> "not recorded") stays text: a category cannot take a value it does not have.
CATEGORICAL = [
    *("source", "run_id", "host_id", "scenario", "guest", "backend", "accel", "phase"),
    *("metric", "unit", "status", "kind"),
]

FOREIGN_OS = "runs_foreign_os"  # the metric of a guest that is another system (not Linux)


def not_linux(m: pd.DataFrame) -> pd.Series:
    """Rows of a guest that is another system (it has runs_foreign_os rows on that host): its
    image that no container can run, its time to a banner, are no size, speed or memory
    comparison with a container."""
    os_rows = m[m.metric == FOREIGN_OS]
    others = set(zip(os_rows.host_id, os_rows.guest, strict=True))
    found = pd.Series(False, index=m.index, dtype=bool)
    maybe = m.guest.isin({guest for _, guest in others})  # few rows: look at those only
    if maybe.any():
        pairs = zip(m.host_id[maybe], m.guest[maybe], strict=True)
        found[maybe] = [pair in others for pair in pairs]
    return found


KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}


def in_order(df: pd.DataFrame, by_guest: bool = True) -> pd.DataFrame:
    """Hosts, then guests, containers before VMs: the same order in every chart and table (a
    table that lists an engine's guests in one row: hosts, then kinds)."""
    # As text: a category's map would sort by the categories' (alphabetical) order.
    key = df.kind.astype(object).map(KIND_ORDER).fillna(len(KIND_ORDER))
    by = ["host_id", *(["guest"] if by_guest else []), "_k", "backend", "accel"]
    return df.assign(_k=key).sort_values(by).drop(columns="_k")


def prefer_warm(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The warm rows and "warm", or the cold ones and "cold" where none is warm (an engine
    measured once after its build): one group's numbers never mix the two."""
    phase = "warm" if (rows.phase == "warm").any() else "cold"
    return rows[rows.phase == phase], phase


def _typed(rows: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    before = len(rows)
    rows = rows.drop_duplicates(subset=list(COLUMNS)).reset_index(drop=True)
    if len(rows) < before:
        warnings.append(f"{before - len(rows)} duplicate rows ignored (same file given twice?)")
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    rows["instances"] = rows["instances"].astype(int)
    rows["trial"] = rows["trial"].astype(int)
    # A CSV names each row's kind (the engine's own declaration); an older one does not.
    rows["kind"] = rows["kind"].where(rows["kind"] != "", rows["backend"].map(kind_of))
    for backend in sorted(rows.loc[rows.kind == "", "backend"].unique()):
        warnings.append(
            f"backend {backend!r} is neither a known container nor VM engine; "
            "shown in the summary, left out of the claims"
        )
    for kind in sorted(set(rows.kind) - {"", *KINDS}):
        warnings.append(
            f"kind {kind!r} is not one of {', '.join(KINDS)}; "
            "shown in the summary, left out of the claims"
        )
    for metric in sorted(set(rows.metric) - set(METRIC_UNITS)):
        warnings.append(f"metric {metric!r} is not in the schema; shown in the summary only")
    return rows


def _read_host_json(path: Path, warnings: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warnings.append(f"{path}: unreadable host metadata ({exc})")
        return {}
    if not isinstance(data, dict):
        warnings.append(f"{path}: host metadata is not a JSON object")
        return {}
    return data
