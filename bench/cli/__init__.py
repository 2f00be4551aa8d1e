"""The ``vmbench`` command: run | report | compare | slides | doctor | guests | box | clean | fleet.

One module per group of commands, each adding its own subcommands: run (the running side),
reading (report, compare, slides: CSVs only), machine (doctor, guests, box, clean), fleet.
Exit codes: 0 done, 1 some trials failed, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import sys

from bench import signals
from bench.cli import fleet, machine, reading, run
from bench.cli.common import EXIT_USAGE, Parser, console
from bench.errors import InputError

COMMAND_GROUPS = (run, reading, machine, fleet)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except InputError as e:
        console.print(f"vmbench: {e}", markup=False, highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("vmbench: interrupted")
        return 130
    finally:
        signals.uninstall()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vmbench",
        description="Start the same workload as containers and as virtual machines; "
        "measure image size, time to ready and memory.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parser(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
