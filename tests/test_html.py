"""report.html and compare.html as files: self-contained, accessible markup, escaped data, one
analysis shared with report.md and the deck; and bench.load, the notebooks' API, showing the
report's numbers. (tests/test_html_browser.py opens the pages in a real browser.)"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from helpers.counting import count_work
from helpers.pages import HOSTILE_HOST, IMG, SCRIPT, hostile_run, lab, read_page
from helpers.reports import REAL_RUN
from matplotlib.figure import Figure

import bench
from bench.analysis.summary import SUMMARY_KEYS
from bench.cli import main
from bench.cli.reading import write_comparison, write_report
from bench.render.markdown import ratio_text

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "explore.ipynb"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report"
    write_report([REAL_RUN], out)
    return out


def fetches(page: str) -> list[str]:
    """Whatever in the page would make a browser fetch something (a link is not fetched):
    elements that load, src attributes other than data: URLs, CSS imports and external urls."""

    found: list[str] = []

    class Loads(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:
            loading = ("script", "link", "img", "iframe", "object", "embed", "audio", "video")
            if tag in loading:
                found.append(tag)
            found.extend(
                f"{tag} {k}={v}" for k, v in attrs if k == "src" and not v.startswith("data:")
            )

    Loads().feed(page)
    return found + re.findall(r"@import|url\((?!#)", page, re.I)


def test_report_html_holds_every_section_in_order_with_its_charts_inline(report_dir: Path):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert fetches(page) == []
    assert "<script" not in page.lower()
    parsed = read_page(report_dir / "report.html")
    levels = [level for level, _ in parsed.headings]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))  # never skipped
    h2 = [text for level, text in parsed.headings if level == 2]
    order = ["Verdicts", "Charts", "Summary", "Warnings", "Hosts", "Method"]
    assert [h for h in h2 if h in order] == order
    for section in ("Memory of one idle instance", "Published figures"):
        assert section in h2
    assert "Isolation spectrum" in h2
    # Every chart report.md links is inline SVG with its title, as text, and a label.
    markdown = (report_dir / "report.md").read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\.png\)", markdown)
    assert len(linked) >= 7
    for name in linked:
        match = re.search(rf'<figure id="chart-{name}">\s*<svg class="chart"[^>]*>', page)
        assert match, name
        assert 'role="img"' in match.group(0) and 'aria-label="' in match.group(0)
        assert f'<title id="chart-{name}-title">' in page
    assert page.count('<svg class="chart"') == len(linked)
    assert "<text" in page  # chart text kept as text: searchable
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the charts' ids do not clash
    assert 'th scope="col"' in page and "<th>" not in page


def test_the_page_says_what_report_md_says(report_dir: Path) -> None:
    """The verdict and summary tables are the same analysis: the verdicts of claims.csv, the
    summary's counts of summary.csv, row for row."""
    tables = read_page(report_dir / "report.html").tables
    verdict_rows = tables[0][1:]
    claims_csv = pd.read_csv(report_dir / "claims.csv")
    assert [(r[0], r[2], r[3]) for r in verdict_rows] == [
        (c.host_id, c.verdict, ratio_text(c)) for _, c in claims_csv.iterrows()
    ]
    summary_csv = pd.read_csv(report_dir / "summary.csv")
    summary = next(t for t in tables if t[0][:2] == ["host_id", "scenario"])
    n = summary[0].index("n")
    assert [int(r[n]) for r in summary[1:]] == summary_csv.n.tolist()


def test_api_returns_the_reports_numbers(report_dir: Path) -> None:
    results = bench.load(REAL_RUN)
    verdicts, summary = results.verdicts(), results.summary()
    claims_csv = pd.read_csv(report_dir / "claims.csv")
    assert verdicts.verdict.tolist() == claims_csv.verdict.tolist()
    assert verdicts.ratio.to_numpy() == pytest.approx(claims_csv.ratio.to_numpy(), nan_ok=True)
    summary_csv = pd.read_csv(report_dir / "summary.csv")
    assert summary.n.tolist() == summary_csv.n.tolist()
    assert summary["median"].to_numpy() == pytest.approx(summary_csv["median"].to_numpy())
    # The frame is the rows the summary counted: one row per measured value.
    frame = results.frame
    warm = frame[(frame.metric == "ready_s") & (frame.status == "ok") & (frame.phase == "warm")]
    counted = summary[(summary.metric == "ready_s") & (summary.phase == "warm")]
    medians = warm.groupby(list(SUMMARY_KEYS)).value.median()
    assert len(counted) >= 8
    for _, s in counted.iterrows():
        assert medians[tuple(s[k] for k in SUMMARY_KEYS)] == pytest.approx(s["median"])
    assert frame.value.dtype == "float64" and frame.instances.dtype == "int64"
    assert str(frame.started_at.dtype).startswith("datetime64")
    assert "facts" not in frame


def test_api_draws_any_report_chart_and_names_what_it_cannot(report_dir: Path) -> None:
    results = bench.load(REAL_RUN.parent)  # a run's folder works too
    figure = results.figure("ready_time")
    assert isinstance(figure, Figure)
    title = figure.get_suptitle().replace("\n", " ")
    assert title in (report_dir / "report.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="decomposition cannot be drawn"):
        results.figure("decomposition")  # the default suite has no system container
    with pytest.raises(ValueError, match="no chart 'nope'"):
        results.figure("nope")


def test_import_bench_is_light_and_the_api_loads_no_engine(tmp_path: Path) -> None:
    code = (
        "import json, sys, bench\n"
        "light = 'pandas' not in sys.modules\n"
        f"r = bench.load({str(REAL_RUN)!r}); r.figure('memory'); r.frame\n"
        "print(json.dumps({'light': light, 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["light"]
    engines = ("bench.backends", "bench.guests", "bench.run", "docker", "vagrant")
    assert "bench.analysis.model" in result["modules"]
    assert [m for m in result["modules"] if m.startswith(engines)] == []


def test_report_and_compare_evaluate_once_for_md_html_and_deck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, saved = count_work(monkeypatch)
    outcome = write_report([REAL_RUN], tmp_path / "r", deck=True)
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "report.md").is_file()
    assert calls == {"load": 1, "claims": 1}
    assert len(saved) == len(set(saved)) == 2 * sum(p.suffix == ".png" for p in outcome.files)
    calls.clear()
    saved.clear()
    csvs = lab(tmp_path / "lab", 2)
    outcome = write_comparison(csvs, tmp_path / "c")
    assert (tmp_path / "c" / "compare.html").is_file() and (tmp_path / "c" / "compare.md").is_file()
    assert calls == {"load": 1, "claims": 1}
    assert len(saved) == len(set(saved)) == 2 * sum(p.suffix == ".png" for p in outcome.files)


def test_host_ids_details_and_file_names_are_escaped(tmp_path: Path) -> None:
    hostile = hostile_run(tmp_path / "in")
    write_report([hostile], tmp_path / "r")
    write_comparison([hostile, *lab(tmp_path / "lab", 1)], tmp_path / "c")
    escaped_script = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for page_path in (tmp_path / "r" / "report.html", tmp_path / "c" / "compare.html"):
        page = page_path.read_text(encoding="utf-8")
        assert SCRIPT not in page and "<img" not in page and "<script" not in page.lower()
        assert escaped_script in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert fetches(page) == []
    report = read_page(tmp_path / "r" / "report.html")
    assert HOSTILE_HOST in [text for level, text in report.headings if level == 3]
    cells = [c for t in report.tables for row in t for c in row]
    assert HOSTILE_HOST in cells  # the verdict table's host, as text
    assert any(SCRIPT in c and IMG in c for c in cells)  # the failed trial's reason, as text


def test_format_chooses_the_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(REAL_RUN), "--out", str(tmp_path / "h"), "--format", "html"]) == 0
    assert (tmp_path / "h" / "report.html").is_file()
    assert not (tmp_path / "h" / "report.md").exists()
    assert f"report: {tmp_path / 'h' / 'report.html'}" in capsys.readouterr().out
    assert main(["report", str(REAL_RUN), "--out", str(tmp_path / "m"), "--format", "md"]) == 0
    assert (tmp_path / "m" / "report.md").is_file()
    assert not (tmp_path / "m" / "report.html").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(REAL_RUN), "--format", "md,pdf"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'md,pdf': expected a comma-separated list of md, html" in err[0]


def test_example_notebook_runs(tmp_path: Path) -> None:
    """examples/explore.ipynb, executed as a reader runs it: every cell, none raises, and the
    figure it asks for is the report's."""
    import nbclient  # the dev extra's: a missing one is a failure, not a skip
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    text = json.dumps([o.get("data", {}).get("text/plain", "") for o in outputs])
    assert "supported" in text and "float64" in text  # the verdicts and the frame were shown
    assert any("Figure" in str(o.get("data", {}).get("text/plain", "")) for o in outputs)
