"""How values are written for people: numbers with their unit, accelerators with what they mean.

Bytes get binary prefixes (a MiB is what `free -m` and psutil's users expect); seconds below
one are shown in milliseconds.
"""

from __future__ import annotations

import math

BYTE_PREFIXES = ("B", "KiB", "MiB", "GiB", "TiB")


def human(value: float | None, unit: str) -> str:
    """'1.5 MiB', '230 ms', '4.41 s', '1', 'n/a' for a missing value."""
    if value is None or (isinstance(value, float | int) and math.isnan(value)):
        return "n/a"
    value = float(value)
    if unit == "B":
        return _bytes(value)
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit in ("bool", ""):
        return f"{value:g}"
    return f"{value:g} {unit}"


def _bytes(value: float) -> str:
    sign, v, step = ("-" if value < 0 else ""), abs(value), 0
    while v >= 1024 and step < len(BYTE_PREFIXES) - 1:
        v, step = v / 1024, step + 1
    return f"{sign}{v:.0f} B" if step == 0 else f"{sign}{v:.1f} {BYTE_PREFIXES[step]}"


ACCEL_LABELS = {
    "tcg": "tcg (emulated)",  # QEMU translates every guest instruction: not hardware speed
    "unknown": "unknown (not proven hardware)",
}


def accel_label(accel: str) -> str:
    """An accelerator as a reader should see it: TCG always says it is emulation."""
    return ACCEL_LABELS.get(accel, accel)


# Accelerator as shown beside an engine's name; "none" (a container) shows nothing.
ACCEL_SUFFIX = {
    "tcg": "emulated (TCG)",
    "kvm": "KVM",
    "hvf": "HVF",
    "virtualbox": "VirtualBox",
    "unknown": "accelerator unknown",
}


def engine_label(backend: str, accel: str, sep: str = ", ") -> str:
    """'docker', 'qemu, emulated (TCG)', 'qemu, KVM': how an engine ran, wherever it is named."""
    shown = [ACCEL_SUFFIX.get(a, a) for a in accel.split(",") if a not in ("none", "")]
    return f"{backend}{sep}{' + '.join(shown)}" if shown else backend
