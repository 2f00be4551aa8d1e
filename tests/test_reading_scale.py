"""What keeps a long run's CSV and a lab's two hundred hosts readable: the reader holds each
distinct text once, the dataset keeps its group columns as categories, and a category's
unused values never reach a table, a note or a chart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from helpers.reports import REAL_RUN, full_host, row, write_csv

from bench.analysis import model
from bench.analysis.dataset import CATEGORICAL
from bench.results import COLUMNS, read_results


def test_the_reader_keeps_each_distinct_text_once_and_every_row_as_written() -> None:
    results = read_results(REAL_RUN)
    hosts = results.columns["host_id"]
    assert len(results) == len(hosts) > 500 and all(h is hosts[0] for h in hosts)
    details = results.columns["detail"]
    assert len({id(d) for d in details}) == len(set(details))  # one object per distinct text
    lines = REAL_RUN.read_text(encoding="utf-8").splitlines()
    assert len(results.rows) == len(lines) - 1 - len(results.bad)
    first = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    assert {c: results.rows[0][c] for c in first if c in COLUMNS} == {
        c: v for c, v in first.items() if c in COLUMNS
    }


def test_group_columns_are_categories_and_unused_ones_never_show(tmp_path: Path) -> None:
    """Two hosts, one with a qemu trial that timed out: that host's verdict notes count its
    timeout alone, not the other statuses ("0 ok"), and the size chart's panels are the
    guests that have sizes, not every guest the category knows."""
    rows = [*full_host("a"), *full_host("b")]
    rows.append(row("b", "qemu", "ready_s", None, status="timeout", trial=99))
    rows.append(row("a", "docker", "ready_s", 0.5, guest="alpine", trial=1))  # no size rows
    a = model.analyse([write_csv(tmp_path / "results.csv", rows)])
    assert all(isinstance(a.dataset.rows[c].dtype, pd.CategoricalDtype) for c in CATEGORICAL)
    caveats = " ".join(a.claims.caveat)
    assert "qemu: 1 timeout trial(s)" in caveats and " 0 " not in caveats
    assert set(a.sizes.guest) == {"busybox"}
    from bench.render.charts import draw_all

    drawn = draw_all(a, tmp_path / "charts")
    assert "size_breakdown" in {c.name for c in drawn.charts}


def test_kinds_keep_their_order_as_categories() -> None:
    """in_order puts shared kernels first (results.KINDS), not the categories' alphabet:
    "system-container" sorts after "microvm" by name, before it by kind."""
    from bench.analysis.dataset import KIND_ORDER, in_order

    kinds = list(KIND_ORDER)[::-1]
    table = pd.DataFrame(
        {"host_id": "h", "kind": kinds, "backend": [f"b{i}" for i in range(len(kinds))]}
    ).assign(accel="", kind=lambda t: t.kind.astype("category"))
    assert list(in_order(table, by_guest=False).kind) == list(KIND_ORDER)
