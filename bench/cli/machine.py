"""``vmbench doctor | guests | box | clean``: what this machine can run, has built and left."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import EXIT_FAILURES, EXIT_OK, UsageError, console, out
from bench.cli.run import run_id
from bench.run.options import hint


def add_parser(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="which backends can run here, and why not")
    doctor.set_defaults(handler=cmd_doctor)

    guests = sub.add_parser("guests", help="the built guests, their artefacts and sizes")
    guests.set_defaults(handler=cmd_guests)

    box = sub.add_parser(
        "box",
        help="a Vagrant box of a guest's boot disk (VirtualBox: OVF + streamOptimized VMDK)",
    )
    box.add_argument("guest", metavar="GUEST", help="busybox | debian | debian-systemd")
    box.add_argument("--provider", required=True, choices=("virtualbox", "libvirt"))
    box.add_argument("--out", required=True, type=Path, metavar="FILE.box")
    box.add_argument(
        "--boot",
        choices=("disk", "kernel"),
        default="disk",
        help="libvirt only: disk (the BIOS boot disk, default) or kernel (direct kernel boot)",
    )
    box.set_defaults(handler=cmd_box)

    clean = sub.add_parser(
        "clean",
        help="remove containers and VMs that ended vmbench runs left behind; never a live "
        "run's, whoever runs it (root: every user's leftovers, a user: their own)",
    )
    clean.add_argument(
        "--run",
        metavar="RUN_ID",
        type=run_id,
        help="only what this run left (default: every vmbench run)",
    )
    clean.set_defaults(handler=cmd_clean)


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per engine the registry knows: name, kind, whether it can run here and why.
    Never wrapped: a fix is a command to copy."""
    from bench.backends import BackendError, engines

    width = max(map(len, engines()))  # the longest engine name sets the first column
    for name, cls in engines().items():
        where = f"{name:{width}} {cls.kind:16}"
        backend = None
        try:
            backend = cls()
            available = backend.availability()
        except BackendError as e:
            out.print(f"{where} no   {e}", markup=False, soft_wrap=True)
            continue
        finally:
            if backend is not None:
                backend.close()
        if available.usable:
            better = f"; {available.fix}" if available.fix else ""  # usable, yet could be more
            out.print(f"{where} yes  {available.reason}{better}", markup=False, soft_wrap=True)
        else:
            out.print(
                f"{where} no   {available.reason}; fix: {available.fix}",
                markup=False,
                soft_wrap=True,
            )
        for note in available.notes:
            out.print(f"{'':{width + 23}}{note}", markup=False, soft_wrap=True)  # one line each
    _doctor_guests(width)
    return EXIT_OK


def cmd_box(args: argparse.Namespace) -> int:
    """Build (cached) and copy the Vagrant box of a guest; print how to add it."""
    from bench.backends.vagrant.box import BoxError, build_box, copy_box
    from bench.guests import GUEST_BUILDERS, DebError, build_guest, split_guest_name

    if split_guest_name(args.guest)[0] not in GUEST_BUILDERS:
        raise UsageError(
            f"box: unknown guest {args.guest!r}{hint(args.guest, GUEST_BUILDERS)}; "
            f"expected one of {', '.join(GUEST_BUILDERS)}"
        )
    if args.provider == "virtualbox" and args.boot != "disk":
        raise UsageError("box: --boot kernel is libvirt only (VirtualBox cannot boot a kernel)")
    if args.out.suffix != ".box" or args.out.is_dir():
        raise UsageError(f"box: --out {args.out}: expected a file name ending in .box")
    try:
        guest = build_guest(args.guest)
        box = build_box(guest, args.provider, args.boot)
        copy_box(box, args.out)
    except (BoxError, DebError, OSError) as e:
        console.print(f"vmbench box: {e}", markup=False, highlight=False)
        return EXIT_FAILURES
    members = ", ".join(f"{name} {size}" for name, size in sorted(box.file_bytes.items()))
    out.print(f"box: {args.out} ({args.out.stat().st_size} bytes; {members})", markup=False)
    out.print(
        f"add it: VAGRANT_CHECKPOINT_DISABLE=1 vagrant box add --name vmbench-{guest.name} "
        f"{args.out.resolve().as_uri()}",
        markup=False,
    )
    return EXIT_OK


def _doctor_guests(width: int) -> None:
    """The guest that needs more than downloads to build: who builds debian for this user."""
    from bench.guests import debian

    usable, reason, fix = debian.builder_status()
    where = f"{'debian':{width}} {'guest':16}"
    if usable:
        out.print(f"{where} yes  {reason}", markup=False, soft_wrap=True)
    else:
        out.print(f"{where} no   {reason}; fix: {fix}", markup=False, soft_wrap=True)


def cmd_guests(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bench.guests import built_guests
    from bench.guests.cache import cache_root
    from bench.units import human

    found = built_guests()
    if not found:
        out.print("no guests built yet: `vmbench run` builds them on first use")
        return EXIT_OK
    table = Table(title=f"built guests in {cache_root()}")
    for column in ("guest folder", "from", "built by", "artefacts (bytes on disk)", "build_s"):
        table.add_column(column)
    for g in found:
        artefacts = ", ".join(f"{k} {human(v, 'B')}" for k, v in g["artefacts"].items())
        table.add_row(
            Path(g["folder"]).name,
            str(g.get("package", "")),
            str(g.get("builder", "")),
            artefacts,
            f"{g.get('build_s', 0):.1f}",
        )
    out.print(table)
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from bench.run.cleanup import clean

    report = clean(args.run)
    for line in report.removed:
        out.print(f"removed {line}", markup=False)
    whose = {rid: f" ({user}'s)" for rid, user in report.owners.items()}
    for live in report.running:
        out.print(f"left alone: run {live}{whose.get(live, '')} is still running", markup=False)
    for other in report.others:
        why = (
            f"is {report.owners[other]}'s"
            if other in report.owners
            else "has no owner recorded (an older vmbench made it)"
        )
        out.print(
            f"left alone: run {other} {why}; its owner's or root's `vmbench clean` removes it",
            markup=False,
        )
    for line in report.problems:
        console.print(f"vmbench clean: {line}", markup=False)
    if not report.removed and not report.problems:
        out.print("nothing to clean")
    return EXIT_FAILURES if report.problems else EXIT_OK
