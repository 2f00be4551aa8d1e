"""``vmbench report | compare | slides``: the reading side, from result CSVs only."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.common import (
    EXIT_OK,
    UsageError,
    existing_csvs,
    out,
    plain,
    print_outcome,
    print_warnings,
    reading,
    reading_files,
)

if TYPE_CHECKING:  # the command's parser loads no pandas or matplotlib
    from rich.table import Table

    from bench.analysis.model import Analysis
    from bench.render.report import ReportOutcome

FORMATS = ("md", "html")


def formats(text: str) -> tuple[str, ...]:
    """--format md,html: the report's formats, each named once (argparse type)."""
    chosen = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a comma-separated list of {', '.join(FORMATS)}"
        )
    return chosen


def _format_option(parser: argparse.ArgumentParser, page: str) -> None:
    parser.add_argument(
        "--format",
        type=formats,
        default=FORMATS,
        metavar="md,html",
        help=f"which pages to write: md (the markdown and its tables), html ({page}, one "
        "file with the charts inline and nothing to fetch); default both",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="tables, claim verdicts and charts from result CSVs")
    report.add_argument(
        "csvs",
        nargs="*",
        type=Path,
        metavar="RESULTS.csv",
        help="result CSVs, from any host (default: the newest run in results/)",
    )
    report.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default: report/ beside the first CSV)",
    )
    _format_option(report, "report.html")
    report.set_defaults(handler=cmd_report)

    compare = sub.add_parser("compare", help="several hosts' result CSVs side by side")
    compare.add_argument("csvs", nargs="+", type=Path, metavar="RESULTS.csv")
    compare.add_argument(
        "--out",
        type=Path,
        default=Path("comparison"),
        metavar="DIR",
        help="output folder (default: comparison)",
    )
    _format_option(compare, "compare.html")
    compare.set_defaults(handler=cmd_compare)

    slides = sub.add_parser("slides", help="a slide deck (pptx) of the charts and verdicts")
    slides.add_argument(
        "csvs",
        nargs="*",
        type=Path,
        metavar="RESULTS.csv",
        help="result CSVs (default: the newest run in results/)",
    )
    slides.add_argument(
        "--out",
        type=Path,
        metavar="DECK.pptx",
        help="the deck (default: report/deck.pptx beside the first CSV)",
    )
    slides.set_defaults(handler=cmd_slides)


def cmd_report(args: argparse.Namespace) -> int:
    csvs = existing_csvs(args.csvs)
    out_dir = args.out or csvs[0].parent / "report"
    write_report(csvs, out_dir, formats=args.format)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    outcome = write_comparison(existing_csvs(args.csvs), args.out, formats=args.format)
    print_outcome(outcome, "comparison", comparison_table(outcome))
    return EXIT_OK


def cmd_slides(args: argparse.Namespace) -> int:
    from bench.render.charts import draw_all
    from bench.render.outdir import staged_file
    from bench.render.report import report_warnings
    from bench.render.slides import write_deck

    csvs = existing_csvs(args.csvs)
    a = analysed(csvs)
    deck = args.out or csvs[0].parent / "report" / "deck.pptx"
    if deck.is_dir():
        raise UsageError(f"{plain(str(deck))}: is a folder: --out names the deck file (DECK.pptx)")
    # The charts are drawn into the deck's temporary work: the deck holds them, no folder stays.
    with tempfile.TemporaryDirectory(prefix="vmbench-deck-") as charts:
        drawing = reading(lambda: draw_all(a, Path(charts)))
        print_warnings(report_warnings(a, drawing))
        with reading_files(lambda: staged_file(deck)) as work:
            reading(lambda: write_deck(a, work, drawing))
    out.print(f"slides: {plain(str(deck))}", markup=False)
    return EXIT_OK


def analysed(csvs: list[Path]) -> Analysis:
    """The one analysis of ``csvs`` (bench.analysis.model.Analysis); unusable input is a
    usage error (exit 2)."""
    from bench.analysis.model import analyse

    return reading(lambda: analyse(csvs))


def write_report(
    csvs: list[Path],
    out_dir: Path,
    deck: bool = False,
    analysis: Analysis | None = None,
    formats: tuple[str, ...] = FORMATS,
) -> ReportOutcome:
    """The report (report.md, report.html and with ``deck`` the deck) of ``csvs`` from one
    analysis, each chart drawn once: the page inlines and the deck shows the report's images.
    Everything is written into a temporary folder and moved into ``out_dir`` when done
    (bench.render.outdir). Returns the report's outcome (its claims)."""
    from bench.render.charts import draw_all
    from bench.render.html import write_html_report
    from bench.render.outdir import moved, staged
    from bench.render.report import ReportOutcome, report_warnings, write_report

    a = analysis if analysis is not None else analysed(csvs)
    page = None
    with reading_files(lambda: staged(out_dir)) as work:
        drawing = reading(lambda: draw_all(a, work))
        if "md" in formats:
            outcome = reading(lambda: write_report(a, work, drawing))
        else:
            files = [p for c in drawing.charts for p in (c.png, c.svg)]
            outcome = ReportOutcome(a.claims, files, report_warnings(a, drawing), a.summary)
        if "html" in formats:
            page = reading(lambda: write_html_report(a, drawing, outcome.warnings, work))
            outcome.files.append(page)
            outcome.report_path = outcome.report_path or page
        if deck:
            from bench.render.slides import write_deck

            reading(lambda: write_deck(a, work / "deck.pptx", drawing))
    outcome.files = [moved(p, work, out_dir) for p in outcome.files]
    if outcome.report_path is not None:
        outcome.report_path = moved(outcome.report_path, work, out_dir)
    if page is not None:
        page = moved(page, work, out_dir)
    print_outcome(outcome, "report")
    if "md" in formats and "html" in formats:
        out.print(f"html: {page}", markup=False)
    if deck:
        out.print(f"slides: {plain(str(out_dir / 'deck.pptx'))}", markup=False)
    return outcome


def write_comparison(
    csvs: list[Path],
    out_dir: Path,
    missing_hosts: dict[str, str] | None = None,
    formats: tuple[str, ...] = FORMATS,
) -> ReportOutcome:
    """compare.md, compare.html and their files from one analysis of every host's CSVs, the
    charts drawn once for both, written into a temporary folder and moved into ``out_dir``
    when done."""
    from bench.render.compare import draw_comparison, write_comparison
    from bench.render.html import write_html_comparison
    from bench.render.outdir import moved, staged

    a = analysed(csvs)
    with reading_files(lambda: staged(out_dir)) as work:
        drawing = reading(lambda: draw_comparison(a, work))
        outcome = reading(
            lambda: write_comparison(
                a, work, missing_hosts=missing_hosts, drawing=drawing, markdown="md" in formats
            )
        )
        if "html" in formats:
            page = reading(
                lambda: write_html_comparison(a, drawing, outcome.warnings, work, missing_hosts)
            )
            outcome.files.append(page)
            if "md" not in formats:
                outcome.report_path = page
    outcome.files = [moved(p, work, out_dir) for p in outcome.files]
    if outcome.report_path is not None:
        outcome.report_path = moved(outcome.report_path, work, out_dir)
    return outcome


def comparison_table(outcome: ReportOutcome) -> Table:
    """The terminal's view of a comparison: every host's verdicts, or one line per comparison."""
    from bench.render.compare import MAX_HOSTS_PER_CHART
    from bench.render.terminal import across_hosts_table

    return across_hosts_table(outcome.claims, outcome.summary, MAX_HOSTS_PER_CHART)
