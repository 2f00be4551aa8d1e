"""The guest kernel: Debian's cloud kernel package, extracted (never installed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.guests import debs
from bench.guests.cache import cache_root, cached_build


@dataclass(frozen=True)
class KernelTree:
    package: debs.Package
    folder: Path
    vmlinuz: Path
    release: str
    build_s: float
    built_now: bool

    @property
    def modules(self) -> Path:
        return self.folder / "lib" / "modules" / self.release


def kernel_tree(arch: str) -> KernelTree:
    """The extracted kernel package for ``arch``, cached by package version."""
    package = debs.kernel_package(arch)
    folder = cache_root() / "kernels" / f"{package.name}_{package.version}_{arch}".replace(":", "%")

    def build(tmp: Path) -> dict:
        deb = debs.download(package, cache_root() / "debs")
        debs.extract(deb, tmp)
        vmlinuz = next((tmp / "boot").glob("vmlinuz-*"), None)
        if vmlinuz is None:
            raise debs.DebError(f"{deb.name} has no boot/vmlinuz-*")
        return {"package": package.spec, "release": vmlinuz.name.removeprefix("vmlinuz-")}

    entry = cached_build(folder, build)
    release = entry.meta["release"]
    return KernelTree(
        package=package,
        folder=entry.folder,
        vmlinuz=entry.folder / "boot" / f"vmlinuz-{release}",
        release=release,
        build_s=entry.build_s,
        built_now=entry.built_now,
    )
