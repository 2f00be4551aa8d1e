"""Declared facts: every key=value word a run writes in ``detail`` is declared once in the
results contract (results.DETAIL_KEYS) with its type, parsed once by the dataset into typed
columns, and the committed real runs use no key the contract does not know."""

from __future__ import annotations

import csv
import re

import pytest
from helpers.reports import REAL_RUN, SPECTRUM_RUN, row, write_csv

from bench.analysis.dataset import FACT_COLUMNS, load
from bench.results import DETAIL_KEYS, detail_reason, detail_word, parse_detail

WORD = re.compile(r"(?:^|\s)([a-z][a-z_]*)=")


EMULATION_RUN = REAL_RUN.parents[1] / "emulation-run" / "results.csv"


@pytest.mark.parametrize(
    "csv_path", [REAL_RUN, SPECTRUM_RUN, EMULATION_RUN], ids=["default", "spectrum", "emulation"]
)
def test_every_key_a_real_run_wrote_is_declared(csv_path) -> None:
    with open(csv_path, newline="", encoding="utf-8") as f:
        keys = {key for r in csv.DictReader(f) for key in WORD.findall(r["detail"])}
    assert {"guest_kernel", "workload"} <= keys  # the scan finds words at all
    assert keys - set(DETAIL_KEYS) == set()


def test_parse_detail_types_values_and_ignores_the_rest() -> None:
    facts = parse_detail(
        "workload=idle boot=disk: memory_mib=256 virtual_bytes=303038464; "
        "memory_mib=512 colour=red median of 21 samples (expected arch=aarch64)"
    )
    assert facts == {
        "workload": "idle",
        "boot": "disk",  # the clause's colon is not part of the value
        "memory_mib": 256,  # typed, and the first word of a key wins
        "virtual_bytes": 303038464,
        "arch": "aarch64",
    }
    assert "colour" not in facts  # not declared: not a fact
    assert parse_detail("memory_mib=lots") == {}  # not an int: left out, never guessed


def test_detail_reason_drops_the_leading_facts_only() -> None:
    assert detail_reason("workload=ready boot=bios qemu not usable: x=1") == "qemu not usable: x=1"
    assert detail_reason("workload=ready") == ""


def test_detail_word_refuses_an_undeclared_key() -> None:
    assert detail_word("shim", "conmon") == "shim=conmon"
    with pytest.raises(KeyError):
        detail_word("shimm", "conmon")


def test_the_dataset_parses_facts_into_typed_columns(tmp_path) -> None:
    rows = [
        row("h", "docker", "shim_pss_bytes", 6e6, detail="workload=idle shim=conmon median"),
        row("h", "qemu", "pss_bytes", 2e8, detail="workload=idle boot=bios memory_mib=256"),
    ]
    ds = load([write_csv(tmp_path / "results.csv", rows)])
    shim = ds.rows[ds.rows.metric == "shim_pss_bytes"].iloc[0]
    pss = ds.rows[(ds.rows.metric == "pss_bytes")].iloc[0]
    assert (shim.shim, shim.workload, shim.boot) == ("conmon", "idle", "")
    assert (pss.boot, pss.shim, pss.facts["memory_mib"]) == ("bios", "", 256)
    assert set(FACT_COLUMNS) <= set(ds.rows.columns)


def test_a_real_run_reads_its_kernels_from_the_columns() -> None:
    ds = load([REAL_RUN])
    kernel = ds.measured[ds.measured.metric == "kernel_matches_host"]
    assert len(kernel) and (kernel.guest_kernel != "").all() and (kernel.host_kernel != "").all()
    assert set(kernel.loc[kernel.kind == "container", "guest_kernel"]) == set(kernel.host_kernel)
