"""Typed keys of scenario files: each one's check, default and one-line help, declared once.

Scenario keys (scenario.py) and each engine's own ``[backend.X]`` keys (declared in the
engine's module, see backends/base.py) are built from the same constructors, so every key
is range-checked the same way and every error says what was expected.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Guest RAM a VM gets when its scenario says nothing; every VM engine declares MEMORY_MIB.
DEFAULT_MEMORY_MIB = 256


@dataclass(frozen=True)
class Option:
    """One allowed key: how to check a value (ValueError saying what was expected), its
    default, and a short help text for error messages and the README."""

    check: Callable[[Any], Any]
    default: Any = None
    help: str = ""
    required: bool = False


def hint(value: Any, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when ``value`` is close to one of ``choices``, else empty."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def whole_in(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    return check


def number_in(low: float, high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number from {low} to {high}, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}, got {value!r}")
        return float(value)

    return check


def text(max_len: int = 200) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or "\n" in value:
            raise ValueError(f"expected one line of text of at most {max_len} characters")
        return value

    return check


def one_of(choices: Iterable[str]) -> Callable[[Any], str]:
    allowed = tuple(choices)

    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(
                f"expected one of {', '.join(allowed)}, got {value!r}{hint(value, allowed)}"
            )
        return value

    return check


def list_of(item: Callable[[Any], Any], min_len: int = 1, max_len: int = 64) -> Callable:
    def check(value: Any) -> tuple:
        if not isinstance(value, list) or not min_len <= len(value) <= max_len:
            raise ValueError(f"expected a list of {min_len} to {max_len} items, got {value!r}")
        items = tuple(item(v) for v in value)
        if len(set(items)) != len(items):
            raise ValueError(f"expected no repeated items, got {value!r}")
        return items

    return check


def file_url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("file://") or len(value) > 1000:
        raise ValueError(
            f"expected a file:// URL of a .box file (vmbench never downloads boxes), got {value!r}"
        )
    return value


# Shared by every engine that boots a VM, so the default lives here and nowhere else.
MEMORY_MIB = Option(whole_in(32, 65536), DEFAULT_MEMORY_MIB, "guest RAM in MiB")
CPUS = Option(whole_in(1, 64), 1, "virtual CPUs")
