"""``vmbench report | compare | slides``: the reading side, from result CSVs only."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import EXIT_OK, existing_csvs, out, print_outcome, reading


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
    from bench.render.compare import terminal_table, write_comparison

    outcome = reading(lambda: write_comparison(existing_csvs(args.csvs), args.out))
    print_outcome(outcome, "comparison", terminal_table(outcome))
    return EXIT_OK


def cmd_slides(args: argparse.Namespace) -> int:
    from bench.render.slides import write_deck

    csvs = existing_csvs(args.csvs)
    deck = reading(lambda: write_deck(csvs, args.out or csvs[0].parent / "report" / "deck.pptx"))
    out.print(f"slides: {deck}", markup=False)
    return EXIT_OK


def write_report(csvs: list[Path], out_dir: Path, deck: bool = False):
    """The report (and deck) of ``csvs``; returns the report's outcome (its claims)."""
    from bench.render.report import write_report
    from bench.render.slides import write_deck

    outcome = reading(lambda: write_report(csvs, out_dir))
    print_outcome(outcome, "report")
    if deck:
        out.print(
            f"slides: {reading(lambda: write_deck(csvs, out_dir / 'deck.pptx'))}", markup=False
        )
    return outcome
