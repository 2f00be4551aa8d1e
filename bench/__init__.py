"""vmbench: how do a virtual machine and a container differ, measured on your own machine.

``bench.load(paths)`` reads result CSVs for a notebook (bench.api); importing ``bench`` itself
loads nothing else, so the command and the engines' modules start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bench.api import Results


def load(paths: str | Path | Iterable[str | Path]) -> Results:
    """Result CSVs (a path, a run folder or a list) as Results: ``.frame``, ``.summary()``,
    ``.verdicts()``, ``.figure(name)``. See bench.api."""
    from bench.api import load as load_results

    return load_results(paths)
