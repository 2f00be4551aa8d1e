"""Every chart on a real run of every kind of engine (tests/data/spectrum-run: docker, podman,
podman-systemd, qemu-microvm, qemu booted as kernel, bios and uefi), alone and read together
with the default suite of the same host (an older CSV: no kind column, no boot= words).

No text may collide, labels stay readable where one guest is measured on many engines, and
what the charts draw is what the CSV says (every bar drawn, each shim named as its rows name it).
"""

from __future__ import annotations

import csv
import functools
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers.reports import MIB, REAL_RUN, SPECTRUM_RUN
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from bench.analysis.model import Analysis, analyse
from bench.render import charts
from bench.render.charts.palette import COMPONENT_STYLE

with open(SPECTRUM_RUN, newline="", encoding="utf-8") as _f:
    RAW = list(csv.DictReader(_f))

READINGS = {"spectrum-run": [SPECTRUM_RUN], "with-the-default-suite": [REAL_RUN, SPECTRUM_RUN]}


BUILDERS: dict[str, Callable] = {
    **{name: builder for name, (builder, _claim) in charts.BUILDERS.items()},
    **charts.SECTION_BUILDERS,
}


@pytest.fixture(scope="module", params=list(READINGS))
def ds(request: pytest.FixtureRequest) -> Analysis:
    return dataset(request.param)


@functools.cache
def dataset(reading: str) -> Analysis:
    """Read and analysed once per test session: the charts never change an analysis."""
    return analyse(READINGS[reading])


@contextmanager
def drawn(ds: Analysis, name: str) -> Iterator[Figure]:
    """Chart ``name`` as the report draws it (style, title), numpy warnings as errors."""
    with warnings.catch_warnings(), charts.slide_style():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. an empty median
        built = charts.titled(BUILDERS[name](ds))
    assert not isinstance(built, str), f"{name}: {built}"
    try:
        yield built[0]
    finally:
        plt.close(built[0])


def test_the_run_has_every_kind_and_boot_mode() -> None:
    kinds = {r["backend"]: r["kind"] for r in RAW}
    assert set(kinds.values()) == {"container", "system-container", "microvm", "vm"}
    boots = {w for r in RAW if r["backend"] == "qemu" for w in r["detail"].split()}
    assert {"boot=kernel", "boot=bios", "boot=uefi"} <= boots
    assert {r["status"] for r in RAW} == {"ok", "unsupported"}


# The spectrum run measured no density and no foreign architecture: those two charts are
# drawn from the default suite's rows only, read together with it.
ABSENT = {"spectrum-run": ("density", "compat_matrix"), "with-the-default-suite": ()}


@pytest.mark.parametrize("reading", list(READINGS))
@pytest.mark.parametrize("name", list(BUILDERS))
def test_no_text_collides(reading: str, name: str) -> None:
    """Renderer extents of every drawn text: no overlap, none under a legend, none outside
    (five boot phases once made a legend wider than the page)."""
    ds = dataset(reading)
    if name in ABSENT[reading]:
        assert isinstance(BUILDERS[name](ds), str)  # skipped, saying why
        return
    with drawn(ds, name) as fig:
        assert charts.text_collisions(fig) == []


def test_size_labels_stay_readable_with_every_engine(ds: Analysis) -> None:
    """busybox on six or seven engines: its panel gets room for them, so no tick label
    shrinks to the smallest type or loses '(TCG)', and no two bars of a guest share a label
    (a CSV without boot= words and one with boot=kernel are one direct kernel boot)."""
    with drawn(ds, "size_breakdown") as fig:
        for ax in fig.axes:
            labels = [t for t in ax.get_xticklabels() if t.get_text()]
            texts = [t.get_text() for t in labels]
            assert len(texts) == len(set(texts)), texts
            assert min(t.get_fontsize() for t in labels) >= 10, ax.get_title()
            assert all("(TCG)" in t for t in texts if "emulated" in t), texts


def test_size_shows_the_same_tree_the_same_way_for_docker_and_podman(ds: Analysis) -> None:
    """Both images are the guest's tree, measured 1-3% below its apparent bytes: both bars
    are 'rootfs', not one rootfs and one 'layers / other'."""
    with drawn(ds, "size_breakdown") as fig:
        segments: dict[tuple[str, str], set] = defaultdict(set)  # (guest, engine) -> fills
        for ax in fig.axes:
            names = [t.get_text() for t in ax.get_xticklabels()]
            for bar in ax.patches:
                if bar.get_fill() and bar.get_height() > 0:
                    engine = names[round(bar.get_x() + bar.get_width() / 2)]
                    segments[(ax.get_title(), engine)].add(to_hex(bar.get_facecolor()))
    rootfs = COMPONENT_STYLE["rootfs"][0].lower()
    for guest in ("busybox", "debian-systemd"):
        assert rootfs in segments[(guest, "docker")] and rootfs in segments[(guest, "podman")]
        grey = COMPONENT_STYLE["layers / other"][0].lower()
        assert grey not in segments[(guest, "docker")], segments[(guest, "docker")]


def test_memory_draws_every_engine_and_names_each_shim() -> None:
    ds = analyse([SPECTRUM_RUN])
    with drawn(ds, "memory") as fig:
        [ax] = fig.axes
        texts = [t.get_text() for t in ax.texts]
        assert "n/a" not in " ".join(texts)
        legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    qemu = [
        float(r["value"])
        for r in RAW
        if r["backend"] == "qemu" and r["metric"] == "pss_bytes" and r["guest"] == "busybox"
    ]
    assert any(t.startswith(f"{np.median(qemu) / MIB:.1f} MiB") for t in texts), texts
    assert any(t.endswith(" conmon") for t in texts), texts
    assert any(t.endswith(" containerd-shim") for t in texts), texts
    assert "its shim (conmon, containerd-shim)" in legend


def test_kernel_table_lists_shared_kernels_first(ds: Analysis) -> None:
    """podman-systemd shares the host's kernel: its row comes before the VMs', not last."""
    with drawn(ds, "kernel_table") as fig:
        [table] = fig.axes[0].tables
        cells = table.get_celld()
        rows, last = max(r for r, _c in cells), max(c for _r, c in cells)
        same = [cells[(r, last)].get_text().get_text() for r in range(1, rows + 1)]
    assert "yes" in same and "no" in same
    assert same == sorted(same, reverse=True), same  # every 'yes' before every 'no'
