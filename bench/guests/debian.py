"""The debian guests: one minbase Debian tree, as a container image and as a VM disk.

``debian`` is plain minbase; ``debian-systemd`` adds systemd-sysv and boots systemd in the VM.
The tree is bootstrapped once per builder, suite, mirror and package set (cached as a tar),
then trimmed of apt's package lists and download caches and given the vmbench files. Root
bootstraps with debootstrap; a regular user with ``mmdebstrap --mode=unshare``, set up to
make debootstrap's tree (merged /usr by symlinks, logs kept), and does every step that needs
root as root of a user namespace (userns.py). The VM boots that same tree from an ext4 disk
image with the Debian kernel and a small busybox initramfs that loads the virtio modules from
the same kernel package, mounts the disk and switches root.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.guests import debs, tool, tree, userns
from bench.guests.aptsources import debian_mirror
from bench.guests.cache import CacheEntry, cache_root, cached_build, content_key, file_lock
from bench.guests.files import FILES_DIR, file_bytes
from bench.guests.initramfs import write_initramfs
from bench.guests.kernel import KernelTree
from bench.run.measure import tree_allocated_bytes, tree_bytes

BOOTSTRAP_VERSION = "2"  # the builder's tree as tree.tar, untrimmed
BUILD_VERSION = "2"  # rootfs.tar, disk.img, initramfs.gz; no rootfs/ folder
# Who bootstraps the tree: root runs debootstrap, anyone else mmdebstrap in a user namespace.
BUILDERS = {"debootstrap": "debootstrap (root)", "mmdebstrap": "mmdebstrap --mode=unshare"}
# mmdebstrap options that make debootstrap's tree: merged /usr by symlinks (debootstrap's own
# function) with usr-is-merged, not the usrmerge package (which pulls in perl), and the logs
# and caches debootstrap leaves (/var/log/dpkg.log, ldconfig's aux-cache) kept.
MMDEBSTRAP_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
MMDEBSTRAP_OPTIONS = (f"--hook-dir={MMDEBSTRAP_HOOKS}", "--skip=cleanup/reproducible")
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


def builder() -> str:
    """The bootstrapper for this user: a key of BUILDERS."""
    return "debootstrap" if os.geteuid() == 0 else "mmdebstrap"


def bootstrap(arch: str, include: tuple[str, ...]) -> CacheEntry:
    """The builder's whole tree as ``<folder>/tree.tar`` (owners as in the guest) for this
    host's suite and mirror."""
    mirror, suite = debian_mirror()
    name = builder()
    key = content_key([BOOTSTRAP_VERSION, name, suite, mirror, arch, VARIANT, ",".join(include)])
    label = "+".join(include) or VARIANT
    folder = cache_root() / "bootstrap" / f"{suite}-{arch}-{label}-{name}-{key}"
    log = folder.parent / f"{folder.name}.log"

    def build(tmp: Path) -> dict:
        if name == "debootstrap":
            _debootstrap(arch, include, suite, mirror, tmp, log)
        else:
            _mmdebstrap(arch, include, suite, mirror, tmp / "tree.tar", log)
        return {
            "suite": suite,
            "mirror": mirror,
            "arch": arch,
            "variant": VARIANT,
            "include": list(include),
            "builder": BUILDERS[name],
        }

    return cached_build(folder, build)


def _debootstrap(
    arch: str, include: tuple[str, ...], suite: str, mirror: str, tmp: Path, log: Path
) -> None:
    argv = [
        _tool("debootstrap"),
        f"--variant={VARIANT}",
        f"--arch={arch}",
        "--components=main",
        f"--cache-dir={_debs_cache()}",
    ]
    if include:
        argv.append(f"--include={','.join(include)}")
    folder = tmp / "tree"
    argv += [suite, str(folder), mirror]
    # The .deb cache is shared: one debootstrap at a time writes to it.
    with file_lock(cache_root() / ".debootstrap-debs.lock"):
        try:
            _run_logged(argv, log, f"debootstrap {suite} from {mirror}")
        finally:
            # A debootstrap killed half-way leaves its /proc and /sys mounts in the tree;
            # they must go before anything removes the tree.
            unmount_under(folder)
    tree.write_tar(folder, tmp / "tree.tar", [])
    shutil.rmtree(folder)


def _mmdebstrap(
    arch: str, include: tuple[str, ...], suite: str, mirror: str, out: Path, log: Path
) -> None:
    _can_mmdebstrap()
    argv = [
        "mmdebstrap",
        "--mode=unshare",
        f"--variant={VARIANT}",
        f"--arch={arch}",
        "--components=main",
        "--format=tar",
        *MMDEBSTRAP_OPTIONS,
    ]
    if include:
        argv.append(f"--include={','.join(include)}")
    argv += [suite, str(out), mirror]
    _run_logged(argv, log, f"mmdebstrap {suite} from {mirror}")


def _can_mmdebstrap() -> None:
    """HostToolMissing unless mmdebstrap and a user namespace work for this user."""
    if not shutil.which("mmdebstrap") or not MMDEBSTRAP_HOOKS.is_dir():
        raise debs.HostToolMissing(
            "building the debian guest without root needs mmdebstrap",
            fix="sudo make host (installs mmdebstrap, uidmap)",
        )
    userns.check()


def builder_status() -> tuple[bool, str, str]:
    """For ``vmbench doctor``: can this user build the debian guests, how, and if not, why
    and the fix."""
    if builder() == "debootstrap":
        if shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin"):
            return True, "built by debootstrap (root)", ""
        return False, "debootstrap not found", "sudo make host (installs debootstrap)"
    try:
        _can_mmdebstrap()
    except debs.HostToolMissing as e:
        return False, e.cause, e.fix
    return True, f"built by mmdebstrap --mode=unshare, no root ({userns.describe()})", ""


def _run_logged(argv: list[str], log: Path, what: str) -> None:
    with open(log, "w") as out:
        try:
            proc = tool.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=DEBOOTSTRAP_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise debs.DebError(
                f"{what} took longer than {DEBOOTSTRAP_TIMEOUT_S:.0f} s; log: {log}"
            ) from None
    if proc.returncode != 0:
        last = (log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise debs.DebError(f"{what} failed: {last} (log: {log})")


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
        tool.run(["umount", "-l", point], capture_output=True, timeout=60)
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
    """Cached guest folder: rootfs.tar (the tree + vmbench files, what docker imports),
    disk.img (the same tree as ext4) and initramfs.gz."""
    include = FLAVOURS[name]
    base = bootstrap(arch, include)
    busybox = debs.candidate("busybox-static", arch)
    files = [file_bytes(n) for n in _guest_files(name)]
    key = content_key(
        [
            *(BUILD_VERSION, name, base.folder.name, kernel.package.spec, busybox.spec),
            ",".join((*DISK_MODULES, *ATA_MODULES, *INITRAMFS_APPLETS)),
            *TRIM_GLOBS,
            *files,
        ]
    )
    folder = cache_root() / "guests" / f"{name}-{arch}-{key}"

    def build_folder(tmp: Path) -> dict:
        made = make_tree_artefacts(base.folder / "tree.tar", name, tmp)
        make_initramfs(tmp / "initramfs-tree", tmp / "initramfs.gz", kernel, busybox)
        shutil.rmtree(tmp / "initramfs-tree")
        return {
            "package": f"{base.meta['builder'].split()[0]} {VARIANT} {base.meta['suite']}"
            + (f" +{','.join(include)}" if include else ""),
            "builder": base.meta["builder"],
            "suite": base.meta["suite"],
            "mirror": base.meta["mirror"],
            "arch": arch,
            "bootstrap": base.folder.name,
            "bootstrap_build_s": base.build_s if base.built_now else 0.0,
            "kernel": kernel.package.spec,
            "busybox": busybox.spec,
            **made,
        }

    entry = cached_build(folder, build_folder)
    meta = dict(entry.meta)
    meta["built_now"] = entry.built_now
    # A fresh guest on a fresh bootstrap took both; a fresh guest on a cached one, only its own.
    meta["build_s"] = entry.build_s + (base.build_s if base.built_now else 0.0)
    meta["boot_args"] = f"VMBENCH_ROOT_INIT={ROOT_INIT[name]}"
    meta["container_image"] = "import"
    return entry.folder, meta


def make_tree_artefacts(tree_tar: Path, name: str, out: Path) -> dict:
    """rootfs.tar and disk.img of the trimmed tree with the vmbench files, made as root: on
    the host if we are root, else as root of a user namespace (a child process)."""
    if os.geteuid() == 0:
        return finish_tree(tree_tar, name, out)
    entry = "import sys; from bench.guests.debian import _main; sys.exit(_main(sys.argv[1:]))"
    argv = userns.as_root([sys.executable, "-c", entry, str(tree_tar), name, str(out)])
    # No __pycache__ files of subordinate ids in the caller's checkout.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = tool.run(argv, capture_output=True, text=True, timeout=1800, env=env)
    except subprocess.TimeoutExpired:
        raise debs.DebError(f"making the {name} tree took longer than 1800 s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise debs.DebError(f"making the {name} tree in a user namespace failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def finish_tree(tree_tar: Path, name: str, out: Path) -> dict:
    """Unpack, trim, add the vmbench files; write disk.img and rootfs.tar into ``out``; remove
    the unpacked tree. Runs as root (of the host or of a user namespace)."""
    os.umask(0o022)
    rootfs = out / "rootfs"
    rootfs.mkdir()
    try:
        devices = tree.extract(tree_tar, rootfs)
        trimmed = trim(rootfs)
        add_vmbench_files(rootfs, name)
        made = {
            "trimmed_bytes": trimmed,
            "packages": _package_count(rootfs),
            "rootfs_bytes": tree_bytes(rootfs),
            "disk_virtual_bytes": make_disk(rootfs, out / "disk.img"),
        }
        tree.add_device_nodes(out / "disk.img", devices)
        tree.write_tar(rootfs, out / "rootfs.tar", devices)
    finally:
        shutil.rmtree(rootfs)
    if os.environ.get(userns.CALLER_ID_ENV):
        userns.chown_to_caller(out / "disk.img", out / "rootfs.tar")
    return made


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


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise debs.HostToolMissing(
            f"{name} not found: run make setup (installs debootstrap, e2fsprogs)"
        )
    return found


def _main(argv: list[str]) -> int:
    """finish_tree(TREE_TAR, NAME, OUT) as make_tree_artefacts runs it in a user namespace;
    prints its metadata as one JSON line."""
    tree_tar, name, out = argv
    print(json.dumps(finish_tree(Path(tree_tar), name, Path(out))))
    return 0


def _run(argv: list[str]) -> None:
    proc = tool.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise debs.DebError(f"{' '.join(argv[:3])} ... failed: {last}")
