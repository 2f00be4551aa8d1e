"""The HTML pages' fixtures: a real run's report, a lab of hosts, hostile host ids and details,
and a small reader of the pages' tables (the standard library's HTML parser)."""

from __future__ import annotations

import csv
import json
import sys
from html.parser import HTMLParser
from pathlib import Path

from helpers.reports import REAL_RUN

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE_HOST = f"{SCRIPT}{IMG}"


def lab(out_root: Path, hosts: int) -> list[Path]:
    """``hosts`` copies of the real run as hosts lab-00.. (benchmarks/reading_scale.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from reading_scale import build_host
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return [build_host(REAL_RUN, i, out_root) for i in range(hosts)]


def hostile_run(out_root: Path, host_id: str = HOSTILE_HOST) -> Path:
    """The real run as host ``host_id``, in a folder named by markup, one ready_s trial failed
    with markup in its detail, and markup in host.json."""
    folder = out_root / IMG.replace("/", "")
    folder.mkdir(parents=True)
    with open(REAL_RUN, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = list(reader.fieldnames or []), list(reader)
    failed = next(r for r in rows if r["metric"] == "ready_s" and r["backend"] == "qemu")
    failed.update(status="failed", value="", detail=f"{failed['detail']} {SCRIPT} {IMG}")
    for r in rows:
        r["host_id"] = host_id
    out = folder / "results.csv"
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    meta = json.loads((REAL_RUN.parent / "host.json").read_text())
    meta.update(hostname=host_id, cpu_model=f"CPU {IMG}")
    (folder / "host.json").write_text(json.dumps(meta))
    return out


class _Tables(HTMLParser):
    """Every <table>'s rows as lists of cell text, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.headings: list[tuple[int, str]] = []
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._heading = [tag]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self._heading:
            self.headings.append((int(tag[1]), "".join(self._heading[1:]).strip()))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


def read_page(path: Path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser
