"""The reading side's analysis: result CSVs -> tables, statistics, verdicts. Loads no engine
and imports nothing from bench.render: views render what is computed here.

``bench.analysis.analyse(paths)`` gives the one analysis object (model.Analysis)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so that importing one module of the package (stats, dataset) does not load them all.
    if name in ("Analysis", "analyse"):
        from bench.analysis import model

        return getattr(model, name)
    raise AttributeError(f"module 'bench.analysis' has no attribute {name!r}")
