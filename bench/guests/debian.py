"""The debian guests: one debootstrap (minbase) tree, as a container image and as a VM disk.

``debian`` is plain minbase; ``debian-systemd`` adds systemd-sysv and boots systemd in the VM.
The tree is bootstrapped once per suite, mirror and package set (cached), trimmed of apt's
package lists and download caches, and then given the vmbench files. The VM boots that same
tree from an ext4 disk image with the Debian kernel and a small busybox initramfs that loads
the virtio modules from the same kernel package, mounts the disk and switches root.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from bench.guests import debs
from bench.guests.aptsources import debian_mirror
from bench.guests.cache import CacheEntry, cache_root, cached_build, content_key, file_lock
from bench.guests.files import FILES_DIR, file_bytes
from bench.guests.initramfs import write_initramfs
from bench.guests.kernel import KernelTree
from bench.measure import tree_allocated_bytes, tree_bytes

BOOTSTRAP_VERSION = "1"
BUILD_VERSION = "1"
VARIANT = "minbase"
# Extra packages per flavour, on top of minbase.
FLAVOURS: dict[str, tuple[str, ...]] = {"debian": (), "debian-systemd": ("systemd-sysv",)}
# Removed from the bootstrapped tree (paths relative to it): apt's package lists and its
# download caches. A running system never reads them; `apt-get update` recreates them. Docker's
# and the cloud images' Debian trees leave them out too.
TRIM_GLOBS = ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb")
# debootstrap copies these from the host; the guest gets its own.
HOST_FILES = {"etc/hostname": "vmbench\n", "etc/resolv.conf": ""}
# The disk's init per flavour (the initramfs switches root to it).
ROOT_INIT = {"debian": "/vmbench/init", "debian-systemd": "/lib/systemd/systemd"}
# The modules a virtio disk boot needs (their dependencies come from the .ko files themselves).
DISK_MODULES = ("virtio_pci", "virtio_blk")
# Loaded only when no virtio disk shows up: an IDE disk (VirtualBox's PIIX4 controller; the
# cloud kernel has no AHCI driver for SATA).
ATA_MODULES = ("ata_piix", "sd_mod")
INITRAMFS_APPLETS = (
    *("sh", "mount", "insmod", "usleep", "mkdir", "cat", "echo", "switch_root"),
    "findfs",  # a boot disk's root partition, by its label
)
DEBOOTSTRAP_TIMEOUT_S = 1800.0
# The ext4 label of the root file system (a boot disk's initramfs finds its partition by it).
ROOT_LABEL = "vmbench"


def bootstrap(arch: str, include: tuple[str, ...]) -> CacheEntry:
    """The trimmed debootstrap tree (``<folder>/tree``) for this host's suite and mirror."""
    mirror, suite = debian_mirror()
    key = content_key(
        [BOOTSTRAP_VERSION, suite, mirror, arch, VARIANT, ",".join(include), *TRIM_GLOBS]
    )
    label = "+".join(include) or VARIANT
    folder = cache_root() / "debootstrap" / f"{suite}-{arch}-{label}-{key}"

    def build(tmp: Path) -> dict:
        _need_root("debootstrap")
        tree = tmp / "tree"
        argv = [
            _tool("debootstrap"),
            f"--variant={VARIANT}",
            f"--arch={arch}",
            "--components=main",
            f"--cache-dir={_debs_cache()}",
        ]
        if include:
            argv.append(f"--include={','.join(include)}")
        argv += [suite, str(tree), mirror]
        log = folder.parent / f"{folder.name}.log"
        # The .deb cache is shared: one debootstrap at a time writes to it.
        with file_lock(cache_root() / ".debootstrap-debs.lock"), open(log, "w") as out:
            try:
                proc = subprocess.run(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=DEBOOTSTRAP_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise debs.DebError(
                    f"debootstrap took longer than {DEBOOTSTRAP_TIMEOUT_S:.0f} s; log: {log}"
                ) from None
            finally:
                # A debootstrap killed half-way leaves its /proc and /sys mounts in the tree;
                # they must go before anything removes the tree.
                unmount_under(tree)
        if proc.returncode != 0:
            last = (log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise debs.DebError(f"debootstrap {suite} from {mirror} failed: {last} (log: {log})")
        trimmed = trim(tree)
        return {
            "suite": suite,
            "mirror": mirror,
            "arch": arch,
            "variant": VARIANT,
            "include": list(include),
            "trimmed_bytes": trimmed,
            "packages": _package_count(tree),
        }

    return cached_build(folder, build)


def unmount_under(tree: Path) -> list[str]:
    """Lazily unmount every mount point at or below ``tree``, deepest first."""
    root = os.path.realpath(tree)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        point = line.split()[4].encode().decode("unicode_escape")  # \040 for spaces
        if point == root or point.startswith(root + "/"):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60, check=False)
    return points


def trim(tree: Path) -> int:
    """Remove TRIM_GLOBS and replace the host's files; returns the bytes removed."""
    removed = 0
    for pattern in TRIM_GLOBS:
        for name in glob.glob(str(tree / pattern)):
            path = Path(name)
            if path.is_dir() and not path.is_symlink():
                removed += tree_bytes(path)
                shutil.rmtree(path)
            else:
                removed += path.lstat().st_size
                path.unlink()
    for rel, text in HOST_FILES.items():
        path = tree / rel
        path.unlink(missing_ok=True)
        path.write_text(text)
    return removed


def build(name: str, arch: str, kernel: KernelTree) -> tuple[Path, dict]:
    """Cached guest folder: rootfs/ (the tree + vmbench files), disk.img and initramfs.gz."""
    include = FLAVOURS[name]
    base = bootstrap(arch, include)
    busybox = debs.candidate("busybox-static", arch)
    files = [file_bytes(n) for n in _guest_files(name)]
    key = content_key(
        [
            *(BUILD_VERSION, name, base.folder.name, kernel.package.spec, busybox.spec),
            ",".join((*DISK_MODULES, *ATA_MODULES, *INITRAMFS_APPLETS)),
            *files,
        ]
    )
    folder = cache_root() / "guests" / f"{name}-{arch}-{key}"

    def build_folder(tmp: Path) -> dict:
        _need_root("mkfs.ext4 -d of a root-owned tree")
        rootfs = tmp / "rootfs"
        # Hard links: the bootstrapped tree is never written to; only new files are added.
        _run(["cp", "-a", "--link", str(base.folder / "tree"), str(rootfs)])
        add_vmbench_files(rootfs, name)
        rootfs_bytes = tree_bytes(rootfs)
        virtual = make_disk(rootfs, tmp / "disk.img")
        make_initramfs(tmp / "initramfs-tree", tmp / "initramfs.gz", kernel, busybox)
        shutil.rmtree(tmp / "initramfs-tree")
        return {
            "package": f"debootstrap {VARIANT} {base.meta['suite']}"
            + (f" +{','.join(include)}" if include else ""),
            "suite": base.meta["suite"],
            "mirror": base.meta["mirror"],
            "arch": arch,
            "bootstrap": base.folder.name,
            "bootstrap_build_s": base.build_s if base.built_now else 0.0,
            "kernel": kernel.package.spec,
            "busybox": busybox.spec,
            "rootfs_bytes": rootfs_bytes,
            "disk_virtual_bytes": virtual,
        }

    entry = cached_build(folder, build_folder)
    meta = dict(entry.meta)
    meta["built_now"] = entry.built_now
    # A fresh guest on a fresh bootstrap took both; a fresh guest on a cached one, only its own.
    meta["build_s"] = entry.build_s + (base.build_s if base.built_now else 0.0)
    meta["boot_args"] = f"VMBENCH_ROOT_INIT={ROOT_INIT[name]}"
    meta["container_image"] = "import"
    return entry.folder, meta


def _guest_files(name: str) -> list[str]:
    names = ["workload", "debian-init", "disk-init"]
    if name == "debian-systemd":
        names.append("vmbench-workload.service")
    return names


def add_vmbench_files(rootfs: Path, name: str) -> None:
    """The workload (same file as every guest's) and, for systemd, its unit; new files only."""
    (rootfs / "vmbench").mkdir()
    _new_copy(FILES_DIR / "workload", rootfs / "vmbench" / "workload")
    _new_copy(FILES_DIR / "debian-init", rootfs / "vmbench" / "init")
    if name == "debian-systemd":
        units = rootfs / "etc" / "systemd" / "system"
        _new_copy(FILES_DIR / "vmbench-workload.service", units / "vmbench-workload.service")
        wants = units / "multi-user.target.wants"
        wants.mkdir(exist_ok=True)
        os.symlink("../vmbench-workload.service", wants / "vmbench-workload.service")
        # No udev in minbase: a getty on ttyS0 would wait 90 s for the device, and the console
        # belongs to the workload anyway.
        os.symlink("/dev/null", units / "serial-getty@ttyS0.service")


def _new_copy(src: Path, dst: Path) -> None:
    if dst.exists() or dst.is_symlink():
        # Writing over a hard-linked file would change the cached bootstrap tree.
        raise FileExistsError(f"{dst} exists in the bootstrapped tree")
    shutil.copy2(src, dst)
    dst.chmod(0o755 if src.name != "vmbench-workload.service" else 0o644)


def make_disk(rootfs: Path, disk: Path) -> int:
    """A sparse raw ext4 image of ``rootfs``; returns its virtual size in bytes.

    4 KiB blocks (what any real root disk has), the smallest journal (4 MiB) and no reserved
    blocks, so the allocated size is the userland plus ext4's own bookkeeping.
    """
    used = tree_allocated_bytes(rootfs)
    mib = 1 << 20
    virtual = ((int(used * 1.25) + 64 * mib + mib - 1) // mib) * mib
    inodes = _count_inodes(rootfs) * 2 + 4096
    with open(disk, "wb") as f:
        f.truncate(virtual)
    _run(
        [
            _tool("mkfs.ext4"),
            "-q",
            "-F",
            "-b",
            "4096",
            "-m",
            "0",
            "-J",
            "size=4",
            "-N",
            str(inodes),
            "-L",
            ROOT_LABEL,
            "-d",
            str(rootfs),
            str(disk),
        ]
    )
    return virtual


def make_initramfs(tree: Path, out: Path, kernel: KernelTree, busybox: debs.Package) -> None:
    """busybox + the virtio modules of ``kernel`` (in dependency order) + disk-init as /init."""
    deb = debs.download(busybox, cache_root() / "debs")
    unpacked = debs.extract(deb, tree.parent / "busybox-deb")
    for sub in ("bin", "proc", "sys", "dev", "modules", "newroot"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(unpacked / "bin" / "busybox", tree / "bin" / "busybox")
    shutil.rmtree(unpacked)
    for applet in INITRAMFS_APPLETS:
        os.symlink("busybox", tree / "bin" / applet)
    order = module_load_order(kernel.modules, DISK_MODULES)
    # The ATA group after the virtio group: only the modules not loaded already.
    ata = [m for m in module_load_order(kernel.modules, ATA_MODULES) if m not in order]
    for group, modules in (("order", order), ("order-ata", ata)):
        for module in modules:
            shutil.copy2(module, tree / "modules" / module.name)
        (tree / "modules" / group).write_text("".join(f"{m.name}\n" for m in modules))
    shutil.copy2(FILES_DIR / "disk-init", tree / "init")
    (tree / "init").chmod(0o755)
    write_initramfs(tree, out)


_DEPENDS = re.compile(rb"(?:^|\x00)depends=([^\x00]*)\x00")


def module_load_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The .ko files to insmod for ``wanted``, dependencies first (read from each .modinfo).

    The kernel package ships no modules.dep (depmod runs at install), so the order comes from
    the ``depends=`` field the kernel build writes into every module. Built-in ones are skipped.
    """
    index = {_module_name(p.name): p for p in modules_dir.rglob("*.ko")}
    builtin_file = modules_dir / "modules.builtin"
    builtin = (
        {_module_name(Path(line).name) for line in builtin_file.read_text().split()}
        if builtin_file.exists()
        else set()
    )
    order: list[Path] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        name = _module_name(name)
        if name in builtin or any(_module_name(p.name) == name for p in order):
            return
        if name not in index:
            raise debs.DebError(
                f"kernel module {name} is neither in {modules_dir} nor built in "
                "(compressed modules are not supported)"
            )
        if name in visiting:
            raise debs.DebError(f"kernel module dependency cycle at {name}")
        visiting.add(name)
        match = _DEPENDS.search(index[name].read_bytes())
        for dep in match.group(1).decode().split(",") if match else []:
            if dep:
                visit(dep)
        visiting.discard(name)
        order.append(index[name])

    for name in wanted:
        visit(name)
    return order


def _module_name(filename: str) -> str:
    return filename.removesuffix(".ko").replace("-", "_")


def _count_inodes(tree: Path) -> int:
    return sum(len(dirs) + len(files) for _root, dirs, files in os.walk(tree)) + 1


def _package_count(tree: Path) -> int:
    status = tree / "var" / "lib" / "dpkg" / "status"
    try:
        text = status.read_text(errors="replace")
    except OSError:
        return 0
    return len(re.findall(r"^Status: install ok installed$", text, re.MULTILINE))


def _debs_cache() -> Path:
    folder = cache_root() / "debootstrap-debs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise debs.HostToolMissing(
            f"building the debian guest needs root ({what}); run as root, e.g. sudo vmbench run"
        )


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise debs.HostToolMissing(
            f"{name} not found: run make setup (installs debootstrap, e2fsprogs)"
        )
    return found


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise debs.DebError(f"{' '.join(argv[:3])} ... failed: {last}")
