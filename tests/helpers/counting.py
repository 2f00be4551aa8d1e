"""Counting the reading side's work: how often the CSVs are read and the claims evaluated,
and which chart files are saved, to prove that every view renders one analysis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from bench import forked
from bench.analysis import claims, model


def count_work(
    monkeypatch: pytest.MonkeyPatch, memory: bool = False
) -> tuple[dict[str, int], list[str]]:
    """(calls, saved): calls counts 'load' and 'claims' (and 'memory', the memory
    comparisons, with ``memory``); saved names every figure file written. Charts are drawn
    in this process, where the calls are counted."""
    calls: dict[str, int] = {}

    def counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(claims, "evaluate_by_host", counted("claims", claims.evaluate_by_host))
    if memory:
        monkeypatch.setattr(
            claims, "memory_comparisons", counted("memory", claims.memory_comparisons)
        )
    monkeypatch.setattr(model, "load", counted("load", model.load))
    saved: list[str] = []
    savefig = Figure.savefig

    def recording_savefig(self: Figure, fname: Any, *args: Any, **kwargs: Any) -> Any:
        saved.append(Path(fname).name)
        return savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    monkeypatch.setattr(forked, "PROCESSES", 1)
    return calls, saved
