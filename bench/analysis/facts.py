"""The two fact claims as tables: which kernel each guest reported, and which guest
architectures each engine ran (the kernel table and the compat matrix draw these)."""

from __future__ import annotations

import pandas as pd

from bench.analysis.dataset import Dataset, in_order

KERNEL_COLUMNS = [
    "host_id",
    "backend",
    "accel",
    "kind",
    "guest_kernel",
    "host_kernel",
    "guests",
    "same",
]
COMPAT_COLUMNS = [
    "host_id",
    "arch",
    "native",
    "other_os",
    "engine",
    "boot",
    "kind",
    "accel",
    "ran",
    "user_mode",
    "exec_format_error",
    "outcome",
]


def kernel_table(ds: Dataset) -> pd.DataFrame:
    """A row per host, engine and kernel (its guests listed): shared kernels first."""
    k = ds.measured[ds.measured.metric == "kernel_matches_host"]
    if k.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    k = k.assign(
        guest_kernel=k.guest_kernel.replace("", "not recorded"),
        host_kernel=k.host_kernel.replace("", "not recorded"),
    )
    keys = ["host_id", "backend", "accel", "guest_kernel", "host_kernel"]
    records = []
    for _, first in in_order(k.drop_duplicates(keys), by_guest=False).iterrows():
        g = k[(k[keys] == first[keys]).all(axis=1)]
        records.append(
            {key: first[key] for key in keys}
            | {
                "kind": first.kind,
                "guests": sorted(g.guest.unique()),
                "same": bool((g.value == 1).all()),
            }
        )
    return pd.DataFrame(records, columns=KERNEL_COLUMNS)


FOREIGN = ("runs_foreign_arch", "runs_foreign_os")  # another architecture, another OS


def compat_outcomes(ds: Dataset) -> pd.DataFrame:
    """One row per (host, guest architecture or OS, engine and boot mode): did it run, how.

    ``outcome``: native (the host's kernel, or a VM on an accelerator), emulated (TCG, a
    container under qemu-user, or a container engine that ran another system's image) or
    refused (exec format error, or it did not run)."""
    m = ds.measured
    foreign = m[m.metric.isin(FOREIGN)]
    if foreign.empty:
        return pd.DataFrame(columns=COMPAT_COLUMNS)
    native = m[(m.metric == "kernel_matches_host") & m.scenario.isin(set(foreign.scenario))]
    native = native[~native.guest.isin(set(foreign.guest))]
    candidates = in_order(pd.concat([native, foreign]))
    # The first row of each engine and guest stands for its trials (the table keeps the first).
    candidates = candidates.assign(_boot=candidates.boot.replace("kernel", "")).drop_duplicates(
        ["host_id", "metric", "guest", "os", "guest_arch", "host_arch", "backend", "_boot"]
    )
    host_arches = {host: _host_arch(foreign, host) for host in candidates.host_id.unique()}
    rows = []
    for _, r in candidates.iterrows():
        is_native, other_os = r.metric not in FOREIGN, r.metric == "runs_foreign_os"
        host_arch = r.host_arch or host_arches[r.host_id]
        if is_native:
            arch = f"{host_arch} guest (the host's)"
        elif other_os:
            arch = f"another OS: {r.os or r.guest}"
        else:
            arch = f"{r.guest_arch or r.guest} guest"
        ran = is_native or r.value == 1
        user_mode = not is_native and not other_os and ran and "user-mode emulation" in r.detail
        refused = "exec format error" in r.detail and not ran
        shared = r.kind in ("container", "system-container")
        if not ran:
            outcome = "refused"
        elif shared and (is_native or other_os):  # the host's kernel; or ran another's image
            outcome = "native" if is_native else "emulated"
        elif is_native or other_os:  # a VM of the host's architecture
            outcome = "emulated" if r.accel == "tcg" else "native"
        else:  # another architecture ran: qemu-user or an emulated VM
            outcome = "emulated"
        rows.append(
            {
                "host_id": r.host_id,
                "arch": arch,
                "native": is_native,
                "other_os": other_os,
                "engine": r.backend,
                "boot": r.boot,
                "kind": r.kind,
                "accel": r.accel,
                "ran": ran,
                "user_mode": user_mode,
                "exec_format_error": refused,
                "outcome": outcome,
            }
        )
    table = pd.DataFrame(rows, columns=COMPAT_COLUMNS)
    # A direct kernel boot and no boot word are one engine (the charts' rule).
    table["boot"] = table.boot.replace("kernel", "")
    return table.drop_duplicates(["host_id", "arch", "engine", "boot"]).reset_index(drop=True)


def _host_arch(foreign: pd.DataFrame, host: str) -> str:
    arches = [a for a in foreign.loc[foreign.host_id == host, "host_arch"] if a]
    return arches[0] if arches else "native"
