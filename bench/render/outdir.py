"""Output folders that hold what the command just wrote, and nothing half-made.

A command writes into a temporary folder beside its output folder; only when everything is
written are vmbench's own earlier files there removed (it knows their names: ``OWN_FILES``)
and the new ones moved in. Files of anyone else in the folder are never touched, and a
command that fails leaves the folder as it was (and creates none).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.render.charts import BUILDERS, SECTION_BUILDERS

# Charts drawn only by a comparison.
COMPARISON_CHARTS = ("ratios_by_host", "ratios_across_hosts")
CHART_NAMES = (*BUILDERS, *SECTION_BUILDERS, *COMPARISON_CHARTS)
OWN_FILES = frozenset(
    {
        "report.md",
        "report.html",
        "compare.md",
        "compare.html",
        "deck.pptx",
        "summary.csv",
        "claims.csv",
        "spectrum.csv",
        "decomposition.csv",
        "ratios.csv",
        *(f"{name}.{ext}" for name in CHART_NAMES for ext in ("png", "svg")),
    }
)


def _created_from(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what mkdir would create)."""
    first = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        first = folder
    return first


@contextlib.contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to write into; on success its files replace
    vmbench's own earlier files in ``out_dir``, on failure it is removed with any folder
    made for it, and ``out_dir`` is left as it was."""
    out_dir = Path(out_dir)
    made = _created_from(out_dir.parent)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        yield work
        publish(work, out_dir)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(work: Path, out_dir: Path) -> None:
    """Remove vmbench's own earlier files from ``out_dir``, then move ``work``'s files in."""
    out_dir.mkdir(exist_ok=True)
    for old in out_dir.iterdir():
        if old.name in OWN_FILES and (old.is_symlink() or old.is_file()):
            old.unlink()
    _move_into(work, out_dir)


def _move_into(work: Path, out_dir: Path) -> None:
    for new in sorted(work.iterdir()):
        target = out_dir / new.name
        if new.is_dir() and not new.is_symlink() and target.is_dir():
            _move_into(new, target)  # a folder of files: merged, others' files kept
        else:
            os.replace(new, target)


def moved(path: Path, work: Path, out_dir: Path) -> Path:
    """Where ``path``, written under ``work``, is once published into ``out_dir``."""
    try:
        return Path(out_dir) / Path(path).relative_to(work)
    except ValueError:
        return Path(path)


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write into, renamed onto ``path`` on success;
    on failure removed with any folder made for it."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder, not a file name", str(path))
    made = _created_from(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
