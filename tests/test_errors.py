"""One root error: every exception class vmbench defines derives from VmbenchError, so a
caller can tell vmbench's own errors from a bug (and ``except Exception`` stays at the few
boundaries that need it, each saying why)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import bench
from bench.errors import VmbenchError


def bench_modules() -> list[str]:
    """Every module of the package (a ``__main__`` runs the command when imported: left out)."""
    return [
        info.name
        for info in pkgutil.walk_packages(bench.__path__, prefix="bench.")
        if not info.name.endswith(".__main__")
    ]


def test_every_exception_class_in_bench_derives_from_the_root():
    found = []
    for name in bench_modules():
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if (
                inspect.isclass(cls)
                and issubclass(cls, BaseException)
                and cls.__module__ == module.__name__
            ):
                found.append(cls)
    assert len(found) >= 25  # the walk reached the engines, guests, runner and readers
    assert [
        f"{c.__module__}.{c.__qualname__}" for c in found if not issubclass(c, VmbenchError)
    ] == []


def test_every_catch_all_says_why_it_is_a_boundary():
    root = Path(bench.__file__).parent
    bare = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"except Exception\b[^#]*$", line)
    ]
    assert bare == []
