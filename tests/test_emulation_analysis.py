"""The reading side of what emulation adds: the VM memory split's medians, the ratios without
the translation cache, the cpu factor, the published figures and the 10x host check, on CSVs
with known answers (written by the real ResultWriter)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers.reports import row, write_csv

from bench.analysis import emulation, published
from bench.analysis.dataset import load

MIB = 1024**2


def idle_trial(host: str, backend: str, trial: int, accel: str, parts: tuple[float, ...]):
    """One idle trial of a VM: pss_bytes and (given) its three parts, in MiB."""
    ram, cache, vmm = parts
    kw = {"trial": trial, "accel": accel}
    return [
        row(host, backend, "pss_bytes", (ram + cache + vmm) * MIB, **kw),
        row(host, backend, "vm_ram_pss_bytes", ram * MIB, **kw),
        row(host, backend, "tcg_cache_pss_bytes", cache * MIB, **kw),
        row(host, backend, "vmm_pss_bytes", vmm * MIB, **kw),
    ]


def container_trial(host: str, trial: int, pss_mib: float = 2.0, shim_mib: float = 8.0):
    return [
        row(host, "docker", "pss_bytes", pss_mib * MIB, trial=trial),
        row(host, "docker", "shim_pss_bytes", shim_mib * MIB, trial=trial),
    ]


def cpu_rows(host: str, backend: str, values: list[float], accel: str):
    return [
        row(host, backend, "cpu_work_s", v, trial=k, accel=accel, detail="workload=cpu")
        for k, v in enumerate(values)
    ]


@pytest.fixture
def tcg_host(tmp_path: Path):
    """A TCG host: qemu 200 MiB of which 40 MiB translation cache; docker 10 MiB with shim;
    the cpu work 16x slower in the VM."""
    rows = []
    for k in range(5):
        rows += idle_trial("lab", "qemu", k, "tcg", (110 + k, 40, 50 - k))
        rows += container_trial("lab", k)
    rows += cpu_rows("lab", "docker", [0.20, 0.21, 0.19, 0.20], "none")
    rows += cpu_rows("lab", "qemu", [3.2, 3.3, 3.1, 3.2], "tcg")
    return load([write_csv(tmp_path / "r.csv", rows)])


def test_the_split_medians_and_the_cache_share(tcg_host):
    [split] = emulation.memory_split(tcg_host).to_dict("records")
    assert split["backend"] == "qemu" and split["accel"] == "tcg" and split["n"] == 5
    assert split["tcg_cache_pss_bytes"] == 40 * MIB
    assert split["pss_bytes"] == 200 * MIB
    assert split["tcg_share"] == pytest.approx(0.2)


def test_without_the_cache_the_memory_ratio_drops_by_the_cache(tcg_host):
    [ratio] = emulation.without_cache_ratios(tcg_host).to_dict("records")
    assert ratio["claim"] == "memory" and ratio["label"] == "without the translation cache"
    # footprint: qemu 200 MiB -> 160 MiB without its cache; docker 2 + 8 MiB
    assert ratio["ratio"] == pytest.approx(16.0)


def test_a_kvm_vm_gets_no_second_ratio(tmp_path):
    rows = []
    for k in range(3):
        rows += idle_trial("lab", "qemu", k, "kvm", (110, 0, 50))
        rows += container_trial("lab", k)
    ds = load([write_csv(tmp_path / "r.csv", rows)])
    assert emulation.without_cache_ratios(ds).empty


def test_a_tcg_trial_without_its_cache_row_is_left_out_not_counted_whole(tmp_path):
    rows = idle_trial("lab", "qemu", 0, "tcg", (110, 40, 50)) + container_trial("lab", 0)
    rows += [row("lab", "qemu", "pss_bytes", 300 * MIB, trial=1, accel="tcg")]  # no split
    rows += container_trial("lab", 1)
    adjusted = emulation.without_translation_cache(load([write_csv(tmp_path / "r.csv", rows)]))
    foot = adjusted.measured[
        (adjusted.measured.metric == "footprint_bytes") & (adjusted.measured.backend == "qemu")
    ]
    assert list(foot.value) == [160 * MIB]


def test_the_cpu_factor_with_its_interval_and_the_cache_share(tcg_host):
    [f] = emulation.cpu_factors(tcg_host).to_dict("records")
    assert (f["container"], f["vm"], f["accel"]) == ("docker", "qemu", "tcg")
    assert f["factor"] == pytest.approx(3.2 / 0.2)
    assert f["ci_low"] <= f["factor"] <= f["ci_high"] and f["ci_low"] > 10
    assert f["tcg_share"] == pytest.approx(0.2)
    sentence = emulation.factor_sentence(emulation.cpu_factors(tcg_host).iloc[0])
    assert "16x" in sentence and "emulated (TCG)" in sentence and "20%" in sentence


def test_one_trial_a_side_gives_a_factor_without_an_interval(tmp_path):
    rows = cpu_rows("lab", "docker", [0.2], "none") + cpu_rows("lab", "qemu", [3.0], "tcg")
    [f] = emulation.cpu_factors(load([write_csv(tmp_path / "r.csv", rows)])).to_dict("records")
    assert f["factor"] == pytest.approx(15.0) and math.isnan(f["ci_low"])


# --- published figures --------------------------------------------------------------------------


def test_the_shipped_figures_parse_and_every_one_has_a_source():
    figures = published.load()
    assert len(figures) >= 10
    for f in figures:
        assert f.source.strip() and f.url.startswith("https://") and f.conditions and f.measured
        assert f.si_value > 0
    ids = {f.id for f in figures}
    assert {"firecracker-boot", "firecracker-memory", "qemu-qboot-pvh", "qemu-pss-1"} <= ids
    sides = {(f.side, f.metric) for f in figures}
    assert ("container", "ready_s") in sides and ("vm", "ready_s") in sides
    assert next(f for f in figures if f.id == "qemu-pss-1").si_value == 105.8 * MIB
    assert next(f for f in figures if f.id == "firecracker-boot").text() == "≤ 125 ms"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ('source = ""', "figure[0].source: expected text"),
        ('unit = "GB"', "figure[0].unit: expected one of"),
        ("value = -1", "figure[0].value: expected a positive number"),
        ('colour = "red"', "figure[0].colour: unknown key"),
    ],
)
def test_a_bad_figure_is_one_line_naming_the_key(tmp_path, change, says):
    good = (
        '[[figure]]\nid = "x"\nsource = "s"\nurl = "https://e"\nconditions = "c"\n'
        'measured = "m"\nside = "vm"\naccel = "kvm"\nmetric = "ready_s"\nvalue = 1\n'
        'unit = "s"\nbound = ""\n'
    )
    key = change.split(" = ")[0]
    text = (
        "\n".join(line for line in good.splitlines() if not line.startswith(f"{key} ="))
        + f"\n{change}\n"
    )
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(published.PublishedError) as e:
        published.load(path)
    assert str(e.value).startswith(f"{path}: {says}")
    assert "\n" not in str(e.value)


def test_a_kvm_figure_ten_times_outside_the_published_range_is_suspect(tmp_path):
    rows = [row("lab", "qemu", "ready_s", 3.0, trial=k, accel="kvm") for k in range(3)]
    rows += [row("lab", "docker", "ready_s", 0.3, trial=k) for k in range(3)]
    ds = load([write_csv(tmp_path / "r.csv", rows)])
    [note] = emulation.suspect_notes(emulation.host_figures(ds), published.load())
    assert "qemu, KVM ready_s" in note and "suspect the host before the technology" in note


def test_a_tcg_figure_is_compared_with_nothing_of_kvm(tmp_path):
    rows = [row("lab", "qemu", "ready_s", 30.0, trial=k, accel="tcg") for k in range(3)]
    ds = load([write_csv(tmp_path / "r.csv", rows)])
    assert emulation.suspect_notes(emulation.host_figures(ds), published.load()) == []


# --- the report's two sections --------------------------------------------------------------


def test_the_sections_render_the_factor_the_split_and_the_reference_table(tcg_host):
    from bench.analysis.model import Analysis
    from bench.render.emulation import emulation_markdown, published_markdown

    a = Analysis(tcg_host)
    text = "\n".join(emulation_markdown(a))
    assert text.startswith("## What emulation adds")
    assert "16x \\[95% CI" in text and "20% of this VM's memory" in text  # [ escaped: md_text
    assert "| 16x" in text and "without the translation cache" in text
    table = "\n".join(published_markdown(a))
    assert table.startswith("## Published figures")
    header = next(line for line in table.splitlines() if line.startswith("| source"))
    assert header == "| source | conditions | measured | container figure | VM figure |"
    assert table.count("stefano-garzarella.github.io") >= 4 and "≤ 125 ms" in table
    assert "this host (`lab`)" in table and "qemu, emulated (TCG) 200.0 MiB" in table


# --- on a real run (tests/data/emulation-run) ------------------------------------------------

REAL = Path(__file__).parent / "data" / "emulation-run" / "results.csv"


def test_on_the_real_run_every_vm_trial_splits_into_its_pss():
    """Each VM trial's three parts sum to its pss_bytes within 2 % (medians of the same ticks),
    on every VM engine and instance count the run had."""
    ds = load([REAL])
    m = ds.measured
    vms = m[m.kind.isin(["vm", "microvm"]) & (m.metric.isin([*emulation.PARTS, "pss_bytes"]))]
    wide = vms.pivot_table(
        index=["backend", "instances", "trial"], columns="metric", values="value"
    )
    assert set(wide.reset_index().backend) == {"qemu", "qemu-microvm", "vagrant"}
    parts = wide[list(emulation.PARTS)].sum(axis=1)
    assert ((parts - wide.pss_bytes).abs() <= 0.02 * wide.pss_bytes).all()
    assert (wide.tcg_cache_pss_bytes > 0).all()


def test_on_the_real_run_the_ratios_without_the_cache_are_smaller_and_the_factor_large():
    from bench.analysis.claims import evaluate, memory_comparisons

    ds = load([REAL])
    without = emulation.without_cache_ratios(ds)
    memory = memory_comparisons(ds)
    density = evaluate(ds).query("claim == 'density'")
    for claim, full in (("memory", memory), ("density", density)):
        for _, w in without[without.claim == claim].iterrows():
            [whole] = full.loc[full.vm == w.vm, "ratio"]
            assert 0.6 * whole < w.ratio < whole  # the cache is a fifth of a TCG VM here
    assert set(without.claim) == {"memory", "density"}
    factors = emulation.cpu_factors(ds)
    assert set(factors.vm) == {"qemu", "qemu-microvm", "vagrant"}
    assert (factors.ci_low > 5).all() and factors.tcg_share.between(0.1, 0.4).all()


def test_tcg_vms_without_their_cache_measured_get_no_second_ratio():
    """The committed default-suite run predates the split: no ratio 'without the translation
    cache' (the density judge must not fall back to MemAvailable, which holds the cache)."""
    from helpers.reports import REAL_RUN

    assert emulation.without_cache_ratios(load([REAL_RUN])).empty


def test_the_memory_and_density_charts_stack_the_parts_and_title_both_ratios():
    import matplotlib.pyplot as plt

    from bench.analysis.model import analyse
    from bench.render.charts.distributions import memory
    from bench.render.charts.growth import density

    a = analyse([REAL])
    fig, title = memory(a)
    hatched = [p for p in fig.axes[0].patches if p.get_hatch() == "xx"]
    assert len(hatched) == 3  # qemu, qemu-microvm, vagrant: each its translation cache
    whole, without = _title_ratios(title)
    assert whole == _times(a.memory.ratio) and without == _times(a.memory.ratio_without_cache)
    plt.close(fig)
    fig, title = density(a)
    density_rows = a.claims[a.claims.claim == "density"]
    whole, without = _title_ratios(title)
    assert whole == _times(density_rows.ratio)
    assert without == _times(density_rows.ratio_without_cache)
    assert any(p.get_hatch() == "xx" for p in fig.axes[0].patches)
    plt.close(fig)


def _title_ratios(title: str) -> tuple[str, str]:
    """The two ratios of a memory or density title: the measured one, the one without."""
    import re

    found = re.search(r"(\S+x) the memory.*; (\S+x) without the translation cache$", title)
    assert found, title
    return found[1], found[2]


def _times(values) -> str:
    from bench.render.charts.titles import _times as times

    return times(values)


def test_the_deck_shows_the_factor_the_split_and_the_citations_every_word_in_place(tmp_path):
    """LibreOffice draws the deck of the real emulation run: the 'What emulation adds' and
    'Published figures' slides, every word on its page; the memory slide's verdict lines carry
    the ratio without the translation cache."""
    from helpers.rendering import assert_pages_drawn, assert_words_placed, render, slide_text
    from pptx import Presentation

    from bench.analysis.model import analyse
    from bench.render.slides import write_deck

    deck = write_deck(analyse([REAL]), tmp_path / "deck" / "deck.pptx")
    texts = [slide_text(s) for s in Presentation(str(deck)).slides]
    [adds] = [t for t in texts if t.startswith("What emulation adds")]
    assert "the same CPU work takes" in adds and "translation cache" in adds
    cited = [t for t in texts if t.startswith("Published figures (citations")]
    assert cited and "≤ 125 ms" in cited[0] and "105.8 MiB" in cited[0]
    first = analyse([REAL]).memory.ratio_without_cache.iloc[0]
    assert any(f"{first:.3g}x without the translation cache" in t for t in texts)
    assert any("Stefano Garzarella" in t and "191.7 ms" in t for t in texts)
    rendered = render(deck, tmp_path / "rendered")
    assert_pages_drawn(rendered)
    assert_words_placed(rendered)
