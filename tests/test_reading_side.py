"""The reading side's shape: one analysis, each chart drawn once, no engine loaded, no cycle.

`vmbench report` on a CSV must work on a laptop without Docker's SDK or python-vagrant, and
the report, deck and comparison must show one evaluation of the CSVs (docs/architecture.md).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.counting import count_work
from helpers.reports import REAL_RUN, SPECTRUM_RUN

from bench import forked
from bench.analysis import claims, model
from bench.cli.reading import write_report
from bench.render import charts

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
READING = ("analysis", "render")
ENGINE_PREFIXES = ("bench.backends", "bench.guests", "bench.run.runner", "bench.run.trial")
ENGINE_SDKS = ("docker", "vagrant")

LOADED = """
import json, sys
from bench.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*argv: str) -> list[str]:
    """The modules a fresh ``vmbench ARGV`` process has loaded when it is done."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stderr[-2000:]
    return result["modules"]


def engines_in(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(ENGINE_PREFIXES) or m.split(".")[0] in ENGINE_SDKS]


def test_report_loads_no_engine_guest_runner_or_engine_sdk(tmp_path: Path) -> None:
    modules = loaded_by("report", str(REAL_RUN), "--out", str(tmp_path / "report"))
    assert (tmp_path / "report" / "report.md").is_file()
    assert "bench.analysis.model" in modules  # the check can see what was loaded
    assert engines_in(modules) == []


def test_slides_and_compare_load_no_engine_either(tmp_path: Path) -> None:
    deck = tmp_path / "deck.pptx"
    modules = loaded_by("slides", str(REAL_RUN), "--out", str(deck))
    assert deck.is_file() and engines_in(modules) == []
    modules = loaded_by("compare", str(REAL_RUN), str(SPECTRUM_RUN), "--out", str(tmp_path / "c"))
    assert (tmp_path / "c" / "compare.md").is_file() and engines_in(modules) == []


def test_report_and_deck_evaluate_once_and_draw_each_chart_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end of a run writes the report and the deck: one evaluation of the claims and of
    the memory comparisons, every chart saved once as PNG and once as SVG, the deck showing
    the report's own images (no second folder of charts)."""
    calls, saved = count_work(monkeypatch, memory=True)
    out = tmp_path / "report"
    outcome = write_report([REAL_RUN], out, deck=True)
    assert calls == {"load": 1, "claims": 1, "memory": 1}
    pngs = sorted(p.name for p in outcome.files if p.suffix == ".png")
    assert len(pngs) >= 7 and len(saved) == 2 * len(pngs) == len(set(saved))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no <stem>-charts
    assert sorted(p.name for p in out.glob("*.png")) == pngs and (out / "deck.pptx").is_file()


def svg_texts(path: Path) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text(encoding="utf-8"))


def test_charts_drawn_in_processes_are_the_charts_drawn_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forked processes draw the same charts, with the same titles, texts and notes, and
    evaluate nothing again (the claims are computed once, before the fork)."""
    monkeypatch.setattr(forked, "PROCESSES", 1)
    here = charts.draw_all(model.analyse([SPECTRUM_RUN, REAL_RUN]), tmp_path / "here")
    calls = tmp_path / "calls"  # a file: the forked processes' calls count too
    evaluate = claims.evaluate_by_host

    def counted(ds):
        with open(calls, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return evaluate(ds)

    monkeypatch.setattr(claims, "evaluate_by_host", counted)
    monkeypatch.setattr(forked, "PROCESSES", 3)
    there = charts.draw_all(model.analyse([SPECTRUM_RUN, REAL_RUN]), tmp_path / "forked")
    assert calls.read_text().split() == [str(os.getpid())]  # once, before the fork
    assert there.notes == here.notes
    assert [(c.name, c.title, c.crowded) for c in there.charts] == [
        (c.name, c.title, c.crowded) for c in here.charts
    ]
    assert {"spectrum", "decomposition", "compat_matrix"} <= {c.name for c in here.charts}
    for mine, theirs in zip(here.charts, there.charts, strict=True):
        assert theirs.png.stat().st_size > 0
        assert svg_texts(theirs.svg) == svg_texts(mine.svg), mine.name


# --- the import graph ----------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every bench module a file imports, at module level or inside a function."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    modules = {module_name(p) for p in BENCH.rglob("*.py")}
    return {name for name in found if name in modules}


def reading_files() -> list[Path]:
    return sorted(p for side in READING for p in (BENCH / side).rglob("*.py"))


def test_the_reading_side_imports_nothing_of_the_running_side() -> None:
    running = ("bench.run", "bench.backends", "bench.guests", "bench.cli")
    for path in reading_files():
        wrong = sorted(m for m in imports(path) if m.startswith(running))
        assert wrong == [], f"{path.relative_to(ROOT)} imports {wrong}"


def test_analysis_imports_nothing_of_render() -> None:
    for path in sorted((BENCH / "analysis").rglob("*.py")):
        wrong = sorted(m for m in imports(path) if m.startswith("bench.render"))
        assert wrong == [], f"{path.relative_to(ROOT)} imports {wrong}"


def test_no_import_cycle_on_the_reading_side() -> None:
    files = [*reading_files(), *(BENCH / "results").rglob("*.py"), BENCH / "units.py"]
    graph = {module_name(p): imports(p) for p in files}
    for module in graph:  # a package's own __init__ is not an edge back to it
        graph[module] = {m for m in graph[module] if not module.startswith(f"{m}.") and m != module}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path, target])
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_reading_or_contract_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in [*reading_files(), *(BENCH / "results").rglob("*.py")]
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
