"""``vmbench report | compare | slides``: the reading side, from result CSVs only."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.common import EXIT_OK, existing_csvs, out, print_outcome, reading

if TYPE_CHECKING:  # the command's parser loads no pandas or matplotlib
    from rich.table import Table

    from bench.analysis.model import Analysis
    from bench.render.report import ReportOutcome


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
    write_report(csvs, out_dir)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    outcome = write_comparison(existing_csvs(args.csvs), args.out)
    print_outcome(outcome, "comparison", comparison_table(outcome))
    return EXIT_OK


def cmd_slides(args: argparse.Namespace) -> int:
    from bench.render.slides import write_deck

    csvs = existing_csvs(args.csvs)
    a = analysed(csvs)
    deck = reading(lambda: write_deck(a, args.out or csvs[0].parent / "report" / "deck.pptx"))
    out.print(f"slides: {deck}", markup=False)
    return EXIT_OK


def analysed(csvs: list[Path]) -> Analysis:
    """The one analysis of ``csvs`` (bench.analysis.model.Analysis); unusable input is a
    usage error (exit 2)."""
    from bench.analysis.model import analyse

    return reading(lambda: analyse(csvs))


def write_report(
    csvs: list[Path], out_dir: Path, deck: bool = False, analysis: Analysis | None = None
) -> ReportOutcome:
    """The report (and deck) of ``csvs`` from one analysis, each chart drawn once: the deck
    shows the report's images. Returns the report's outcome (its claims)."""
    from bench.render.charts import draw_all
    from bench.render.report import write_report

    a = analysis if analysis is not None else analysed(csvs)
    drawing = reading(lambda: draw_all(a, out_dir))
    outcome = reading(lambda: write_report(a, out_dir, drawing))
    print_outcome(outcome, "report")
    if deck:
        from bench.render.slides import write_deck

        deck_path = reading(lambda: write_deck(a, out_dir / "deck.pptx", drawing))
        out.print(f"slides: {deck_path}", markup=False)
    return outcome


def write_comparison(
    csvs: list[Path], out_dir: Path, missing_hosts: dict[str, str] | None = None
) -> ReportOutcome:
    """compare.md and its files from one analysis of every host's CSVs."""
    from bench.render.compare import write_comparison

    a = analysed(csvs)
    return reading(lambda: write_comparison(a, out_dir, missing_hosts=missing_hosts))


def comparison_table(outcome: ReportOutcome) -> Table:
    """The terminal's view of a comparison: every host's verdicts, or one line per comparison."""
    from bench.render.compare import MAX_HOSTS_PER_CHART
    from bench.render.terminal import across_hosts_table

    return across_hosts_table(outcome.claims, outcome.summary, MAX_HOSTS_PER_CHART)
