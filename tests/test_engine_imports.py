"""No engine imports another engine's module: what two engines share lives beside them
(``base``, ``kvm``, ``cgroups``). An engine's home is its module or package in
bench/backends; the rule is read from every import statement there, function-level ones
included."""

from __future__ import annotations

import ast
from pathlib import Path

from bench import backends

ROOT = Path(backends.__file__).parent


def homes() -> dict[str, list[Path]]:
    """Each engine's home (``docker``, ``qemu``, ...) and its source files."""
    found: dict[str, list[Path]] = {}
    for cls in backends.engines().values():
        home = cls.__module__.split(".")[2]
        path = ROOT / home
        found[home] = sorted(path.rglob("*.py")) if path.is_dir() else [ROOT / f"{home}.py"]
    return found


def imported_homes(path: Path, names: set[str]) -> set[str]:
    """The engine homes ``path`` imports, whichever way it spells it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[:2] == ["bench", "backends"] and len(parts) > 2 and parts[2] in names:
                found.add(parts[2])
    return found


def test_engines_live_in_their_own_homes():
    assert {"docker", "podman", "qemu", "vagrant"} <= set(homes())
    assert all(path.is_file() for paths in homes().values() for path in paths)


def test_no_engine_imports_another_engines_module():
    all_homes = homes()
    crossing = [
        f"{path.relative_to(ROOT)} imports {other}"
        for home, paths in all_homes.items()
        for path in paths
        for other in imported_homes(path, set(all_homes)) - {home}
    ]
    assert crossing == []


def test_the_rule_is_read_from_every_spelling(tmp_path):
    """The check itself finds a crossing however it is written (so an empty list means
    something)."""
    source = tmp_path / "x.py"
    source.write_text(
        "import bench.backends.qemu.argv\n"
        "from bench.backends import vagrant\n"
        "def f():\n    from bench.backends.docker import DockerBackend\n"
        "from bench.backends.kvm import kvm_works\n"
    )
    assert imported_homes(source, {"qemu", "vagrant", "docker", "podman"}) == {
        "qemu",
        "vagrant",
        "docker",
    }
