"""What an instance holds on disk and in memory, per engine: the bars of the size and memory
charts (their verdicts are in claims.py, from the same rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.claims import FOOTPRINT
from bench.analysis.dataset import Dataset, in_order, prefer_warm

GROUP_KEYS = ["host_id", "guest", "backend", "accel", "boot"]
MEMORY_COLUMNS = [*GROUP_KEYS, "kind", "own_bytes", "shim_bytes", "totals", "shim"]
SIZE_PARTS = [
    "image_bytes",
    "rootfs_bytes",
    "kernel_bytes",
    "initramfs_bytes",
    "disk_bytes",
    "firmware_vars_bytes",
]
ROOTFS_SLACK = 1.05


def memory_bars(ds: Dataset) -> pd.DataFrame:
    """One idle instance per engine: the median PSS of its own processes, its shim's share of
    the median footprint, every trial's footprint (``totals``) and the shim's process name
    as its rows give it (``shim=conmon``; '' for rows from before engines named it)."""
    m = ds.measured_groups
    one = m[(m.instances == 1) & m.phase.isin(["cold", "warm"])]
    totals = one[one.metric == FOOTPRINT]
    records = []
    for _, first in in_order(totals.drop_duplicates(GROUP_KEYS)).iterrows():
        g = one[(one[GROUP_KEYS] == first[GROUP_KEYS]).all(axis=1)]
        g, _phase = prefer_warm(g)
        total = g[g.metric == FOOTPRINT].value.to_numpy(dtype=float)
        own = min(float(np.median(g[g.metric == "pss_bytes"].value)), float(np.median(total)))
        names = set(g.loc[g.metric == "shim_pss_bytes", "shim"]) - {""}
        records.append(
            {key: first[key] for key in GROUP_KEYS}
            | {
                "kind": first.kind,
                "own_bytes": own,
                "shim_bytes": float(np.median(total)) - own,
                "totals": total,
                "shim": ", ".join(sorted(names)),
            }
        )
    return pd.DataFrame(records, columns=MEMORY_COLUMNS)


def size_table(ds: Dataset) -> pd.DataFrame:
    """Median bytes per engine of each part it needs to boot the guest (build rows), plus the
    compressed image and the stacked ``segments`` (name -> bytes) the size chart draws."""
    m = ds.measured_groups
    data = m[(m.phase == "build") & m.metric.isin([*SIZE_PARTS, "image_compressed_bytes"])]
    keys = ["host_id", "guest", "backend", "kind", "accel", "boot"]
    if data[data.metric.isin(SIZE_PARTS)].empty:
        return pd.DataFrame(columns=[*keys, *SIZE_PARTS, "image_compressed_bytes", "segments"])
    med = data.groupby([*keys, "metric"]).value.median()
    columns = [*SIZE_PARTS, "image_compressed_bytes"]
    table = med.unstack("metric").reindex(columns=columns).fillna(0.0).reset_index()
    table.columns.name = None
    return table.assign(segments=[segments(r) for _, r in table.iterrows()])


def segments(r: pd.Series) -> dict[str, float]:
    """Stack kernel, initramfs and disk; the rootfs only where it is not inside them. A boot
    disk has kernel and initramfs inside (no rows of their own), a UEFI VM its variable store."""
    boot = {"kernel": r.kernel_bytes, "initramfs": r.initramfs_bytes, "disk": r.disk_bytes}
    boot["firmware vars"] = r.firmware_vars_bytes
    total = r.image_bytes or sum(boot.values()) + r.rootfs_bytes
    rest = total - sum(boot.values())
    segs = {}
    # An image a few per cent below the tree's apparent bytes still holds the tree: Docker's
    # and podman's imports of the same files measure 1-3% apart (hard links, block rounding).
    if 0 < r.rootfs_bytes <= rest * ROOTFS_SLACK:
        segs["rootfs"] = min(r.rootfs_bytes, rest)
        rest -= segs["rootfs"]
    segs |= {k: v for k, v in boot.items() if v > 0}
    if rest > 0.01 * total:
        segs["layers / other"] = rest
    return segs
