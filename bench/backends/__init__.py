"""The engine registry: every module of this package, or of a package inside it (``qemu/``,
``vagrant/``), that defines a Backend subclass with a ``name`` is an engine. Nothing lists
engine names by hand; adding an engine is adding a module (or a package, for a big one).

No engine imports another engine's module: what two engines share lives beside them (``base``;
``kvm``, the KVM probe every qemu-running engine uses). Modules without such a class are
helpers. ``register`` is the public hook for an
engine that lives elsewhere (a test's fake engine, a plug-in).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

from bench.backends.base import (
    KINDS,
    Availability,
    Backend,
    BackendError,
    BackendUnsupported,
    Instance,
    LaunchSpec,
    Prepared,
)
from bench.errors import VmbenchError
from bench.run.options import Option, hint

ENGINE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")

_engines: dict[str, type[Backend]] | None = None  # discovered on first use


class RegistryError(VmbenchError, TypeError):
    """An engine module declares itself wrongly (a bug in that module, not bad input)."""


def engines() -> dict[str, type[Backend]]:
    """Every engine by name, ordered from the shared kernel to the own kernel, then by name
    (the order runs, ``vmbench doctor`` and ``vmbench clean`` visit them)."""
    global _engines
    if _engines is None:
        found: dict[str, type[Backend]] = {}
        for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
            for cls in engines_in(importlib.import_module(info.name)):
                _add(found, cls)
        _engines = found
    return dict(sorted(_engines.items(), key=lambda item: (KINDS.index(item[1].kind), item[0])))


def engine_names() -> tuple[str, ...]:
    return tuple(engines())


def engines_in(module: ModuleType) -> list[type[Backend]]:
    """The engines a module defines: its own concrete Backend subclasses that have a name."""
    return [
        cls
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, Backend)
        and cls.__module__ == module.__name__
        and cls.name
        and not inspect.isabstract(cls)
    ]


def register(cls: type[Backend]) -> type[Backend]:
    """Add an engine defined outside this package (usable as a class decorator)."""
    engines()
    assert _engines is not None
    _add(_engines, cls)
    return cls


def unregister(name: str) -> None:
    """Forget an engine added with ``register`` (tests clean up with it)."""
    if _engines is not None:
        _engines.pop(name, None)


def engine(name: str) -> type[Backend]:
    """The engine called ``name``, or BackendError naming the known ones."""
    known = engines()
    if name not in known:
        raise BackendError(
            f"unknown backend {name!r}{hint(name, known)}; known: {', '.join(known)}"
        )
    return known[name]


def make_backend(name: str) -> Backend:
    return engine(name)()


def _add(found: dict[str, type[Backend]], cls: type[Backend]) -> None:
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not ENGINE_NAME_RE.match(cls.name):
        raise RegistryError(f"{where}: name {cls.name!r} is not [a-z0-9-]+")
    if cls.kind not in KINDS:
        raise RegistryError(f"{where}: kind {cls.kind!r} is not one of {', '.join(KINDS)}")
    if not all(isinstance(o, Option) for o in cls.options.values()):
        raise RegistryError(f"{where}: options must map key names to bench.run.options.Option")
    other = found.get(cls.name)
    if other is not None and other is not cls:
        raise RegistryError(f"{where}: engine name {cls.name!r} is also {other.__module__}")
    found[cls.name] = cls


__all__ = [
    "Availability",
    "Backend",
    "BackendError",
    "BackendUnsupported",
    "Instance",
    "LaunchSpec",
    "Prepared",
    "RegistryError",
    "engine",
    "engine_names",
    "engines",
    "engines_in",
    "make_backend",
    "register",
    "unregister",
]
