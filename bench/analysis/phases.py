"""Where a VM's time to ready goes: its boot split into phases, one row per engine, boot mode
and guest (the boot phases chart draws this table, nothing else)."""

from __future__ import annotations

import math

import pandas as pd

from bench.analysis.dataset import Dataset

OWN_KERNEL = ("microvm", "vm")  # kinds that boot a kernel of their own
KEYS = ["host_id", "backend", "boot", "accel", "guest", "phase"]
# The phases of one bar, in drawing order: seconds on the host clock, NaN where not measured.
SEGMENTS = {
    "firmware_s": "firmware",
    "bootloader_s": "bootloader",
    "before_clock_s": "before the guest's clock starts",
    "kernel_init_s": "kernel + init (guest uptime)",
    "up_after_ready_s": "vagrant up returns after READY",
}
COLUMNS = [*KEYS, "ready_s", *SEGMENTS, "share_before_kernel"]
# Per guest, each engine's boot modes from the shortest path: kernel, bios, uefi.
BOOT_RANK = {"": 0, "kernel": 0, "disk": 1, "bios": 1, "uefi": 2}


def boot_phases(ds: Dataset) -> pd.DataFrame:
    """Medians per bar: firmware and bootloader (a disk boot, host clock), what passes before
    the guest's clock starts (the hypervisor's start and the kernel's decompression), the
    guest's kernel and init (its uptime at READY), and for Vagrant the wait until `vagrant up`
    returns; ``share_before_kernel``: the part of READY that passed before the guest kernel."""
    m = ds.measured_groups
    data = m[m.kind.isin(OWN_KERNEL) & (m.instances == 1) & m.phase.isin(["cold", "warm"])]
    med = data.groupby([*KEYS, "metric"]).value.median().unstack("metric")
    if "ready_s" not in med or not (data.metric == "guest_uptime_s").any():
        return pd.DataFrame(columns=COLUMNS)
    med = med.dropna(subset=["ready_s", "guest_uptime_s"])
    order = sorted(med.index, key=lambda k: (k[0], k[4], k[1], BOOT_RANK.get(k[2], 3), k[3:]))
    records = []
    for key, r in med.loc[order].iterrows():
        ready, uptime = r.ready_s, min(r.guest_uptime_s, r.ready_s)
        up = r.get("up_returned_s", math.nan)
        firmware, bootloader = r.get("firmware_s", math.nan), r.get("bootloader_s", math.nan)
        if math.isnan(firmware) or math.isnan(bootloader):
            firmware = bootloader = math.nan
        before = 0.0 if math.isnan(firmware) else firmware + bootloader
        after = ready - before  # host clock; the guest's clock may run a bit off
        records.append(
            dict(zip(KEYS, key, strict=True))
            | {
                "ready_s": ready,
                "firmware_s": firmware,
                "bootloader_s": bootloader,
                "before_clock_s": after - min(uptime, after),
                "kernel_init_s": min(uptime, after),
                "up_after_ready_s": up - ready if not math.isnan(up) and up > ready else math.nan,
                "share_before_kernel": (ready - uptime) / ready,
            }
        )
    return pd.DataFrame(records, columns=COLUMNS)
