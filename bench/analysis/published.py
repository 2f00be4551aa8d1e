"""Published figures (bench/analysis/published.toml): what others measured, with the source,
the conditions and what exactly was measured, read and checked so the report can cite them
beside this host's numbers. They never enter this host's data: no row, no median, no ratio.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bench.errors import VmbenchError
from bench.results import METRIC_UNITS
from bench.units import human

DATA = Path(__file__).with_name("published.toml")
# The units a figure may be stated in, as its source states it, and their SI factor.
UNITS = {"s": 1.0, "ms": 1e-3, "B": 1.0, "KiB": 1024.0, "MiB": 1024.0**2}
SIDES = ("container", "vm")
ACCELS = ("kvm", "none")
BOUNDS = ("", "at most")
TEXT_KEYS = ("id", "source", "url", "conditions", "measured")
KEYS = (*TEXT_KEYS, "side", "accel", "metric", "value", "unit", "bound")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class PublishedError(VmbenchError, ValueError):
    """The data file is not what this module reads: one line naming the file and the key."""


@dataclass(frozen=True)
class Figure:
    """One published figure, its value as its source states it (``value`` in ``unit``)."""

    id: str
    source: str
    url: str
    conditions: str
    measured: str
    side: str  # container | vm
    accel: str  # kvm | none
    metric: str  # this project's metric it corresponds to
    value: float
    unit: str
    bound: str  # "" or "at most"

    @property
    def si_value(self) -> float:
        """The figure in the metric's SI unit (seconds, bytes)."""
        return self.value * UNITS[self.unit]

    def text(self) -> str:
        """'≤ 125 ms', '105.8 MiB': as the source states it."""
        number = f"{self.value:,.1f}".rstrip("0").rstrip(".") + f" {self.unit}"
        return f"≤ {number}" if self.bound == "at most" else number


def load(path: Path = DATA) -> list[Figure]:
    """Every figure of the file, checked (PublishedError names the file, entry and key)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise PublishedError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise PublishedError(f"{path}: is not valid TOML: {e}") from None
    entries = data.get("figure")
    if set(data) != {"figure"} or not isinstance(entries, list) or not entries:
        raise PublishedError(f"{path}: expected [[figure]] tables and nothing else")
    figures = [_figure(path, k, entry) for k, entry in enumerate(entries)]
    ids = [f.id for f in figures]
    for k, figure_id in enumerate(ids):
        if figure_id in ids[:k]:
            raise PublishedError(f"{path}: figure[{k}].id: {figure_id!r} appears twice")
    return figures


def _figure(path: Path, k: int, entry: object) -> Figure:
    where = f"{path}: figure[{k}]"
    if not isinstance(entry, dict):
        raise PublishedError(f"{where}: expected a table")
    for key in entry:
        if key not in KEYS:
            raise PublishedError(f"{where}.{key}: unknown key; allowed: {', '.join(KEYS)}")
    for key in KEYS:
        if key not in entry:
            raise PublishedError(f"{where}.{key}: is required")
    for key in (*TEXT_KEYS, "side", "accel", "metric", "unit", "bound"):
        if not isinstance(entry[key], str):
            raise PublishedError(f"{where}.{key}: expected text, got {entry[key]!r}")
    for key in TEXT_KEYS:
        if not entry[key].strip():
            raise PublishedError(f"{where}.{key}: expected text, got nothing")
    choices = {
        "side": SIDES,
        "accel": ACCELS,
        "unit": tuple(UNITS),
        "bound": BOUNDS,
        "metric": tuple(METRIC_UNITS),
    }
    for key, allowed in choices.items():
        if entry[key] not in allowed:
            raise PublishedError(f"{where}.{key}: expected one of {', '.join(allowed)}")
    value = entry["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise PublishedError(f"{where}.value: expected a positive number, got {value!r}")
    if not math.isfinite(value):
        raise PublishedError(f"{where}.value: expected a finite number, got {value!r}")
    if not ID_RE.match(entry["id"]):
        raise PublishedError(f"{where}.id: expected lower-case letters, digits and '-'")
    return Figure(**{**entry, "value": float(value)})


@dataclass(frozen=True)
class Range:
    """The published figures for one metric and accelerator: lowest and highest, in SI units.
    ``low`` is None when every figure is an upper bound (nothing says how low it may go)."""

    metric: str
    accel: str
    side: str
    low: float | None
    high: float
    figures: tuple[Figure, ...]

    def text(self) -> str:
        unit = METRIC_UNITS.get(self.metric, "")
        if self.low is None:
            return f"≤ {human(self.high, unit)}"
        if self.low == self.high:
            return human(self.high, unit)
        return f"{human(self.low, unit)} .. {human(self.high, unit)}"

    def factor_outside(self, value: float) -> float:
        """How many times ``value`` lies above the highest or below the lowest figure (1.0 or
        less: within the range)."""
        if value > self.high:
            return value / self.high
        if self.low is not None and 0 < value < self.low:
            return self.low / value
        return 1.0


def ranges(figures: list[Figure]) -> dict[tuple[str, str, str], Range]:
    """(metric, accel, side) -> the range of the figures published for it."""
    grouped: dict[tuple[str, str, str], list[Figure]] = {}
    for f in figures:
        grouped.setdefault((f.metric, f.accel, f.side), []).append(f)
    out = {}
    for (metric, accel, side), group in grouped.items():
        measured = [f.si_value for f in group if f.bound != "at most"]
        out[(metric, accel, side)] = Range(
            metric,
            accel,
            side,
            min(measured) if measured else None,
            max(f.si_value for f in group),
            tuple(group),
        )
    return out
