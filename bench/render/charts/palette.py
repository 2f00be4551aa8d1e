"""The charts' look: a fixed colour per backend (Okabe-Ito, readable with the common
colour-vision deficiencies), the segment styles, and the slide style every chart uses."""

from __future__ import annotations

import zlib
from contextlib import AbstractContextManager
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
BACKEND_COLOURS = {
    "docker": "#0072B2",
    "podman": "#56B4E9",
    "qemu": "#E69F00",
    "vagrant": "#009E73",
}
EXTRA_COLOURS = ["#CC79A7", "#D55E00", "#000000", "#F0E442"]
COMPONENT_STYLE: dict[
    str, Any
] = {  # size breakdown segments: colour + hatch, apart from backend colours
    "rootfs": ("#BFE1F5", ""),  # a tint of podman's sky blue: its bar's edge stays visible
    "kernel": ("#D55E00", "//"),
    "initramfs": ("#F0E442", ".."),
    "disk": ("#CC79A7", "xx"),
    "firmware vars": ("#009E73", "++"),
    "layers / other": ("#999999", "\\\\"),
}
PHASE_STYLE = {  # boot phase segments; the bar's edge carries the backend colour
    "firmware": ("#222222", "xx"),
    "bootloader": ("#777777", "\\\\"),
    "before the guest's clock starts": ("#555555", "//"),
    "kernel + init (guest uptime)": ("#BBBBBB", ""),
    "vagrant up returns after READY": ("#FFFFFF", ".."),
}
OUTCOME_COLOURS = {  # compat matrix and kernel table cells (light, so black text reads)
    "native": "#B8E3D3",
    "emulated": "#F7DBA7",
    "refused": "#F2C1A6",
    "failed": "#DDDDDD",
    "not measured": "#FFFFFF",
}
KIND_COLOURS = {  # Okabe-Ito, one per kind: the spectrum is about kinds, not engines
    "container": "#0072B2",
    "system-container": "#56B4E9",
    "microvm": "#CC79A7",
    "vm": "#E69F00",
}
SHARE_STYLE = {  # decomposition segments
    "app container": ("#0072B2", ""),
    "init's share": ("#56B4E9", ".."),
    "kernel's share": ("#E69F00", "//"),
}
HOST_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
STYLE: dict[str, Any] = {
    "figure.figsize": (13.333, 7.5),
    "font.size": 18,
    "axes.titlesize": 22,
    "axes.labelsize": 20,
    "xtick.labelsize": 17,
    "ytick.labelsize": 17,
    "legend.fontsize": 16,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",  # keep text as text: searchable, editable on slides
}

MIB = 1024**2
MAX_LEGEND_SERIES = 8  # more density lines than this: one legend entry per backend


def colour(backend: str) -> str:
    """The backend's fixed colour (unknown backends: stable by name)."""
    if backend in BACKEND_COLOURS:
        return BACKEND_COLOURS[backend]
    return EXTRA_COLOURS[zlib.crc32(backend.encode()) % len(EXTRA_COLOURS)]


def host_linestyle(index: int) -> str | tuple[int, tuple[int, int]]:
    """Solid for the first host, then a distinct dash pattern per host: never runs out."""
    if index == 0:
        return "-"
    return (0, (2 + index % 7, 1 + index // 7))


def slide_style() -> AbstractContextManager:
    """The rc settings every chart is drawn and saved with."""
    return plt.rc_context(STYLE)  # type: ignore[arg-type]  # rc names, checked when applied
