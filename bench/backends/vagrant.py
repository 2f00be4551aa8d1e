"""Vagrant, driven through python-vagrant and the project's top-level Vagrantfile.

A vmbench guest becomes a box (bench/backends/vagrant_box.py): on libvirt (qemu, how Debian
hosts and CI run it) booted by direct kernel boot (``boot = "kernel"``) or from the guest's
BIOS boot disk (``boot = "disk"``); on VirtualBox (lab machines) always from that boot disk,
as a streamOptimized VMDK with an OVF. Either way readiness is the guest's own READY line on
its first serial port, which the hypervisor writes to a file that vmbench follows.

A box of the user's own (``box = "bento/debian-12"``) runs its own OS, not the vmbench
workload: its rows name the box as their guest, say ``readiness=ssh-reachable``, and its ready
time is the moment Vagrant itself printed "Machine booted and ready!" (its SSH communicator
connected). vmbench never writes a READY line of its own. The Vagrantfile reads only
environment variables, which ``machine_env`` builds.

Names: boxes, domains, volumes and working folders of a run all start with
``vmbench-<run_id>-`` so that ``cleanup_run`` removes exactly what one run made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.backends import libvirt, vbox
from bench.backends.base import (
    HOST_ARCH,
    Availability,
    Backend,
    BackendError,
    BackendUnsupported,
    Instance,
    LaunchSpec,
    Prepared,
    SizeRecord,
    command_version,
)
from bench.backends.kvm import MACHINES, kvm_works
from bench.backends.vagrant_box import VMDK_NAME, BoxError, build_box, kernel_cmdline
from bench.guests import DebError, Guest
from bench.guests.bootdisk import workload_serial
from bench.guests.cache import cache_root
from bench.run import liveness, smaps
from bench.run.measure import (
    READY,
    SMAPS_DENIED,
    ConsoleWatcher,
    follow_file,
    now_ns,
    process_memory,
    seconds_between,
)
from bench.run.options import CPUS, MEMORY_MIB, Option, file_url, one_of, text

PROVIDERS = ("virtualbox", "libvirt")
BOOTS = ("kernel", "disk")
# What Vagrant prints once its communicator reached the guest (for a box of the user's own:
# SSH answered). Vagrant's own words, read from its output as it is written ($stdout.sync).
VAGRANT_BOOTED = "Machine booted and ready!"
# Files vagrant must never find: box commands run where no Vagrantfile is.
_NO_VAGRANTFILE = ".vmbench-no-vagrantfile"


def vagrantfile() -> Path:
    """The project's Vagrantfile (``$VMBENCH_VAGRANTFILE`` overrides, e.g. for a wheel install)."""
    if os.environ.get("VMBENCH_VAGRANTFILE"):
        return Path(os.environ["VMBENCH_VAGRANTFILE"]).resolve()
    return Path(__file__).resolve().parents[2] / "Vagrantfile"


def vagrant_home() -> Path:
    """The project's own VAGRANT_HOME: boxes vmbench adds never mix with the user's."""
    if os.environ.get("VMBENCH_VAGRANT_HOME"):
        return Path(os.environ["VMBENCH_VAGRANT_HOME"])
    return cache_root() / "vagrant.d"


def instances_dir() -> Path:
    """Per-instance working folders (vagrant machine state, serial log, vagrant's output)."""
    return cache_root() / "vagrant" / "instances"


def run_prefix(run_id: str) -> str:
    return f"vmbench-{run_id}-"


def box_name(run_id: str, guest: str, flavour: str = "") -> str:
    """The run's box of ``guest``; ``flavour`` (e.g. ``disk``) tells apart the boxes of one
    guest that a run boots in different ways."""
    return f"{run_prefix(run_id)}box-{guest}" + (f"-{flavour}" if flavour else "")


# The run id inside the names this backend (box) and the runner (instances) give.
_RUN_IN_NAME = re.compile(
    r"^vmbench-(?P<run>.+)-(?:box|vagrant)-[a-z0-9][a-z0-9-]*?(?:\.img|_vagrant_box_image_.*)?$"
)


def run_id_of(name: str) -> str | None:
    """``vmbench-<run_id>-vagrant-busybox-3`` (or a box, or their volumes) -> the run id."""
    found = _RUN_IN_NAME.match(name)
    return found.group("run") if found else None


# --- provider choice ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderChoice:
    provider: str
    reason: str


def detect_provider(
    wanted: str,
    own_guest: bool,
    virtualbox: Callable[[], tuple[bool, str]],
    libvirt_ok: Callable[[], tuple[bool, str]],
    boot: str = "kernel",
) -> ProviderChoice:
    """Which provider runs this scenario, and why.

    A vmbench guest booted by its kernel (``boot = "kernel"``) needs libvirt: VirtualBox
    cannot boot a kernel directly. Booted from its disk, it runs on either; ``auto`` then
    prefers VirtualBox where VBoxManage works (the engine lab hosts have), else libvirt. A box
    of the user's own (``own_guest`` False) is ready when SSH answers, which on libvirt would
    need a management network, and vmbench creates none: VirtualBox only. Asking for a
    provider that does not fit is an error that says why.
    """
    if wanted not in ("auto", *PROVIDERS):
        raise BackendError(
            f"vagrant: unknown provider {wanted!r}; expected auto, virtualbox or libvirt"
        )
    if boot not in BOOTS:
        raise BackendError(f"vagrant: unknown boot {boot!r}; expected kernel or disk")
    if not own_guest:
        fits = ("virtualbox",)
    elif boot == "disk":
        fits = ("virtualbox", "libvirt")
    else:
        fits = ("libvirt",)
    if wanted not in ("auto", *fits):
        if own_guest:
            raise BackendUnsupported(
                "vagrant: VirtualBox cannot boot a kernel directly; set boot = 'disk' in "
                "[backend.vagrant] (the guest's BIOS boot disk), or use provider = 'libvirt'"
            )
        raise BackendUnsupported(
            "vagrant: a box of your own is ready when SSH answers, which on libvirt needs a "
            "management network (vmbench creates none); use provider = 'virtualbox', or no box"
        )
    candidates = fits if wanted == "auto" else (wanted,)
    checks = {"virtualbox": virtualbox, "libvirt": libvirt_ok}
    why_not = []
    for provider in candidates:
        works, why = checks[provider]()
        if works:
            how = "asked for" if wanted != "auto" else "auto-detected"
            return ProviderChoice(provider, f"{provider} ({how}: {why})")
        why_not.append(f"provider {provider} is not usable here: {why}")
    raise BackendUnsupported(f"vagrant: {'; '.join(why_not)}")


# --- what the Vagrantfile is told -----------------------------------------------------------


@dataclass(frozen=True)
class MachineSettings:
    """Everything the Vagrantfile needs for one machine."""

    name: str
    provider: str
    box: str
    box_url: str  # file:// URL, or "" for a box the user already has
    memory_mib: int
    cpus: int
    serial_log: Path
    readiness: str  # serial | ssh
    boot_timeout_s: int
    workdir: Path
    cmdline: str = ""  # libvirt direct kernel boot; "" keeps the box's
    smbios_serial: str = ""  # a disk boot's workload (SMBIOS system serial); "" none
    libvirt_driver: str = "qemu"
    vagrant_home: Path | None = None  # None: the user's own (a box they added themselves)


def machine_env(m: MachineSettings) -> dict[str, str]:
    """The variables the Vagrantfile reads, and the ones that keep Vagrant offline and ours."""
    env = {
        "VAGRANT_CHECKPOINT_DISABLE": "1",  # no version check against HashiCorp
        "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
        "VAGRANT_DEFAULT_PROVIDER": m.provider,
        "VAGRANT_DOTFILE_PATH": str(m.workdir / ".vagrant"),
        "VMBENCH_NAME": m.name,
        "VMBENCH_BOX": m.box,
        "VMBENCH_BOX_URL": m.box_url or "-",
        "VMBENCH_MEMORY_MIB": str(m.memory_mib),
        "VMBENCH_CPUS": str(m.cpus),
        "VMBENCH_SERIAL_LOG": str(m.serial_log),
        "VMBENCH_READINESS": m.readiness,
        "VMBENCH_READY_MARKER": READY,
        "VMBENCH_BOOT_TIMEOUT": str(m.boot_timeout_s),
        "VMBENCH_CMDLINE": m.cmdline or "-",
        "VMBENCH_SMBIOS_SERIAL": m.smbios_serial or "-",
        "VMBENCH_LIBVIRT_DRIVER": m.libvirt_driver,
        "VMBENCH_LIBVIRT_POOL": libvirt.POOL,
        # Whose run the domain is, for every user's `vmbench clean` (bench/run/liveness.py).
        "VMBENCH_OWNER": liveness.me().text(),
        # vagrant-libvirt talks to the daemon virsh talks to (it honours this variable).
        "LIBVIRT_DEFAULT_URI": libvirt.uri(),
    }
    if m.vagrant_home is not None:
        env["VAGRANT_HOME"] = str(m.vagrant_home)
    return env


def process_env(ours: dict[str, str], inherited: dict[str, str] | None = None) -> dict[str, str]:
    """The vagrant subprocess environment: the caller's minus any VAGRANT_*/VMBENCH_* of its
    own (a stray VAGRANT_DEFAULT_PROVIDER or VAGRANT_CWD would change what runs), plus ours.
    The user's VAGRANT_HOME stays when ``ours`` sets none (their own boxes)."""
    inherited = dict(os.environ if inherited is None else inherited)
    env = {k: v for k, v in inherited.items() if not k.startswith(("VAGRANT_", "VMBENCH_"))}
    if "VAGRANT_HOME" not in ours and "VAGRANT_HOME" in inherited:
        env["VAGRANT_HOME"] = inherited["VAGRANT_HOME"]
    env.update(ours)
    return env


def _vagrant(root: Path, env: dict[str, str], log: Path | None = None):
    import vagrant  # python-vagrant

    kwargs: dict[str, Any] = {"root": str(root), "env": env}
    if log is not None:
        kwargs["out_cm"] = vagrant.make_file_cm(str(log))
        kwargs["err_cm"] = vagrant.make_file_cm(str(log))
    return vagrant.Vagrant(**kwargs)


def _box_vagrant(home: Path, log: Path | None = None):
    """python-vagrant for box commands: our VAGRANT_HOME, and no Vagrantfile loaded."""
    home.mkdir(parents=True, exist_ok=True)
    env = process_env(
        {
            "VAGRANT_HOME": str(home),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_VAGRANTFILE": _NO_VAGRANTFILE,
            "VAGRANT_NO_COLOR": "1",
        }
    )
    return _vagrant(home, env, log)


def _boxes_in(home: Path) -> list[str]:
    """Box names present in a VAGRANT_HOME (read from its folder: no vagrant start-up)."""
    folder = home / "boxes"
    if not folder.is_dir():
        return []
    return sorted(p.name.replace("-VAGRANTSLASH-", "/") for p in folder.iterdir() if p.is_dir())


def _tail(path: Path, chars: int = 400) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no vagrant output)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "Progress:" not in ln]
    return " | ".join(lines[-6:])[-chars:]


# --- the backend ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VagrantImage:
    """A prepared box: what ``create`` hands to every instance of it."""

    guest: Guest
    provider: str
    provider_reason: str
    box: str
    box_url: str
    readiness: str  # serial | ssh
    boot: str  # kernel | disk (vmbench guests); "" for a box of the user's own
    accel: str
    libvirt_driver: str
    base_cmdline: str
    vagrant_home: Path | None


class VagrantBackend(Backend):
    """A VM that Vagrant brings up (libvirt here, VirtualBox on lab hosts): its own kernel."""

    name = "vagrant"
    kind = "vm"
    options = {  # noqa: RUF012 (a declaration, never mutated)
        "provider": Option(one_of(("auto", "virtualbox", "libvirt")), "auto", "Vagrant provider"),
        "boot": Option(
            one_of(BOOTS),
            "kernel",
            "kernel: direct kernel boot (libvirt only); disk: the guest's BIOS boot disk",
        ),
        "memory_mib": MEMORY_MIB,
        "cpus": CPUS,
        "accel": Option(one_of(("auto", "kvm", "tcg")), "auto", "libvirt only: kvm or tcg"),
        # A box of your own instead of one made from the guest: its own OS, SSH readiness.
        "box": Option(text(), "", "a box of yours instead of one built from the guest"),
        "box_url": Option(file_url, "", "file:// URL of that box, added on first use"),
    }
    # Beyond memory_mib: the hypervisor libvirt runs plus libvirt's and Vagrant's share.
    estimate_mib = 256
    # A box per guest and per provider, boot and box: two scenarios may boot both ways.
    image_options = ("provider", "boot", "accel", "box", "box_url")
    # Every row says how the guest booted (its size rows too); a box of the user's has no
    # boot option of ours, so its rows say none.
    detail_options = ("boot",)

    @classmethod
    def settings(cls, given: dict[str, Any]) -> dict[str, Any]:
        options = super().settings(given)
        if options.get("box"):
            options["boot"] = ""  # the user's box boots the way it was made
        return options

    def __init__(self) -> None:
        self._checks: dict[str, tuple[bool, str]] = {}

    # -- can it run here -------------------------------------------------------------------

    def _check(self, provider: str) -> tuple[bool, str]:
        if provider not in self._checks:
            self._checks[provider] = (
                vbox.version() if provider == "virtualbox" else self._libvirt_works()
            )
        return self._checks[provider]

    def _libvirt_works(self) -> tuple[bool, str]:
        daemon = libvirt.daemon_version()
        if not daemon.ok:
            return False, self._libvirt_refusal(daemon.text)
        try:
            plugins = _box_vagrant(vagrant_home()).plugin_list()
        except (subprocess.CalledProcessError, OSError, RuntimeError) as e:
            return False, f"vagrant plugin list failed: {e}"
        found = [p for p in plugins if p.name == "vagrant-libvirt"]
        if not found:
            return False, "the vagrant-libvirt plugin is not installed"
        where = ""
        if libvirt.is_session():
            cause, _fix = libvirt.system_refusal()
            where = f" at {libvirt.uri()}, the user's own libvirtd" + (
                f" ({cause})" if cause else ""
            )
        return True, f"vagrant-libvirt {found[0].version.split(',')[0]}, {daemon.text}{where}"

    def _libvirt_refusal(self, error: str) -> str:
        """Why libvirt does not answer: for a regular user, the system daemon's own cause and
        whether the user's own session daemon works instead."""
        at = libvirt.uri()
        if os.geteuid() == 0 or os.environ.get(libvirt.URI_VARIABLE):
            return f"libvirtd does not answer at {at} ({error})"
        cause, _fix = libvirt.system_refusal()
        session = libvirt.session_answer()
        return f"{libvirt.DEFAULT_URI}: {cause or error}; {libvirt.SESSION_URI}: {session}"

    def _libvirt_fix(self) -> str:
        if os.geteuid() == 0 or os.environ.get(libvirt.URI_VARIABLE):
            return "sudo make host (installs vagrant, vagrant-libvirt, libvirt; starts libvirtd)"
        _cause, fix = libvirt.system_refusal()
        return fix or "sudo make host (installs vagrant, vagrant-libvirt, libvirt)"

    def availability(self) -> Availability:
        fix = "sudo make host (installs vagrant, vagrant-libvirt, libvirt; starts libvirtd)"
        if shutil.which("vagrant") is None:
            return Availability(False, "vagrant not found", fix, never_ran=True)
        if not vagrantfile().is_file():
            return Availability(
                False,
                f"no Vagrantfile at {vagrantfile()}",
                "run from a vmbench checkout, or set VMBENCH_VAGRANTFILE",
            )
        found = {p: self._check(p) for p in PROVIDERS}
        words = "; ".join(f"{p}: {why}" for p, (_ok, why) in found.items())
        # The version is a courtesy (python-vagrant raises a bare Exception on odd output).
        with contextlib.suppress(Exception):
            words = f"Vagrant {_box_vagrant(vagrant_home()).version()}; {words}"
        notes = tuple(vbox.doctor_lines())
        if not any(ok for ok, _why in found.values()):
            return Availability(
                False, f"no Vagrant provider works ({words})", self._libvirt_fix(), notes
            )
        return Availability(True, words, notes=notes)

    def versions(self) -> dict[str, str | None]:
        return {
            "vagrant": command_version(["vagrant", "--version"], r"Vagrant ([\d.]+)"),
            "virtualbox": command_version(["VBoxManage", "--version"], r"([\d.]+)"),
            "libvirt": command_version(["virsh", "--version"], r"([\d.]+)"),
        }

    def health(self) -> str:
        """libvirtd still answering, if this run found it working (VirtualBox: not checked)."""
        ok, _why = self._checks.get("libvirt", (False, ""))
        if not ok:
            return ""
        daemon = libvirt.daemon_version()
        if daemon.ok:
            return ""
        return (
            f"vagrant: libvirtd stopped answering at {libvirt.uri()} ({daemon.text}); "
            "start it again: sudo make host"
        )

    # -- images ------------------------------------------------------------------------------

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared:
        run_id = str(options.get("run_id") or "")
        if not run_id:
            raise BackendError("vagrant: prepare needs options['run_id'] (boxes are named per run)")
        user_box = str(options.get("box") or "")
        boot = str(options.get("boot") or "kernel")
        choice = detect_provider(
            str(options.get("provider", "auto")),
            own_guest=not user_box,
            virtualbox=lambda: self._check("virtualbox"),
            libvirt_ok=lambda: self._check("libvirt"),
            boot=boot,
        )
        if user_box:
            return self._prepare_user_box(guest, options, user_box, choice)
        if guest.arch != HOST_ARCH:
            raise BackendUnsupported(
                f"vagrant: a {guest.arch} guest needs emulation; use the qemu backend"
            )
        if guest.os:
            raise BackendUnsupported(
                f"vagrant: no box is made of {guest.os} yet (its boxes carry a Linux guest); "
                "use the qemu backend"
            )
        if choice.provider == "virtualbox":
            return self._prepare_virtualbox_box(guest, run_id, choice)
        return self._prepare_libvirt_box(guest, options, run_id, boot, choice)

    def _prepare_user_box(
        self, guest: Guest, options: dict[str, Any], box: str, choice: ProviderChoice
    ) -> Prepared:
        """A box the user has (or a file:// one): its own OS, so readiness is SSH reachable,
        and its rows name the box as their guest (not the scenario's, which did not boot)."""
        box_url = str(options.get("box_url") or "")
        timings = {}
        home = Path(os.environ["VAGRANT_HOME"]) if os.environ.get("VAGRANT_HOME") else None
        home_dir = home or Path.home() / ".vagrant.d"
        if box_url and box not in _boxes_in(home_dir):
            start = now_ns()
            self._box_add(home_dir, box, box_url, choice.provider)
            timings["import_s"] = seconds_between(start, now_ns())
        accel = "virtualbox"  # detect_provider: a box of the user's own runs on VirtualBox
        image = VagrantImage(
            guest, choice.provider, choice.reason, box, box_url, "ssh", "", accel, "qemu", "", home
        )
        return Prepared(
            guest,
            [],
            0.0,
            False,
            handle={"accel": accel, "image": image},
            timings=timings,
            guest_name=box,
        )

    def _build_box(self, guest: Guest, provider: str, boot: str, cmdline: str = ""):
        try:
            return build_box(guest, provider, boot, cmdline)
        except (BoxError, DebError) as e:
            raise BackendError(f"vagrant: {provider} box of guest {guest.name}: {e}") from None

    def _prepare_libvirt_box(
        self, guest: Guest, options: dict[str, Any], run_id: str, boot: str, choice
    ) -> Prepared:
        base_cmdline = kernel_cmdline(guest) if boot == "kernel" else ""
        box = self._build_box(guest, "libvirt", boot, base_cmdline)
        try:
            libvirt.ensure_pool()
        except libvirt.LibvirtError as e:
            raise BackendError(f"vagrant: libvirt storage pool: {e}") from None
        accel, driver = _libvirt_accel(guest, str(options.get("accel", "auto")))
        name = box_name(run_id, guest.name, "" if boot == "kernel" else boot)
        home = vagrant_home()
        timings = {}
        if name not in _boxes_in(home):
            start = now_ns()
            self._box_add(home, name, box.url, "libvirt")
            _preload_base_volume(home, name)
            timings["import_s"] = seconds_between(start, now_ns())
        image = VagrantImage(
            guest, "libvirt", choice.reason, name, box.url, "serial", boot, accel, driver,
            base_cmdline, home,
        )  # fmt: skip
        return Prepared(
            guest,
            _box_sizes(box, guest),
            box.build_s if box.built_now else 0.0,
            box.built_now,
            handle={"accel": accel, "image": image},
            timings=timings,
        )

    def _prepare_virtualbox_box(self, guest: Guest, run_id: str, choice) -> Prepared:
        """The guest's BIOS boot disk as a VirtualBox box, added under vmbench's VAGRANT_HOME;
        its master VM is imported now, so that every `vagrant up` only makes a linked clone."""
        box = self._build_box(guest, "virtualbox", "disk")
        name = box_name(run_id, guest.name, "vbox")
        home = vagrant_home()
        timings = {}
        if name not in _boxes_in(home):
            start = now_ns()
            self._box_add(home, name, box.url, "virtualbox")
            _import_virtualbox_master(home, name)
            timings["import_s"] = seconds_between(start, now_ns())
        accel = "virtualbox"
        image = VagrantImage(
            guest, "virtualbox", choice.reason, name, box.url, "serial", "disk", accel, "qemu", "",
            home,
        )  # fmt: skip
        return Prepared(
            guest,
            _box_sizes(box, guest),
            box.build_s if box.built_now else 0.0,
            box.built_now,
            handle={"accel": accel, "image": image},
            timings=timings,
        )

    def _box_add(self, home: Path, name: str, url: str, provider: str) -> None:
        if not url.startswith("file://"):
            raise BackendError(f"vagrant: box_url must be a file:// URL, got {url!r}")
        log = home / f".box-add-{name.replace('/', '_')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)
        try:
            _box_vagrant(home, log).box_add(name, url, provider=provider)
        except subprocess.CalledProcessError:
            raise BackendError(f"vagrant box add {name} {url} failed: {_tail(log)}") from None
        finally:
            log.unlink(missing_ok=True)

    # -- instances ---------------------------------------------------------------------------

    def create(self, prepared: Prepared, spec: LaunchSpec) -> Instance:
        image: VagrantImage = prepared.handle["image"]
        options = self.settings(spec.options)
        workdir = instances_dir() / spec.name
        if image.readiness == "ssh" and spec.workload != "idle":
            raise BackendUnsupported(
                f"vagrant: box {image.box} runs its own OS, not the vmbench workload "
                f"{spec.workload!r}; a box of your own takes workloads = ['idle'] only"
            )
        if image.provider == "libvirt":
            try:
                libvirt.ensure_pool()  # again: a `vmbench clean` meanwhile may have removed it
            except libvirt.LibvirtError as e:
                raise BackendError(f"vagrant: libvirt storage pool: {e}") from None
        cmdline = smbios = ""
        if image.boot == "kernel":
            cmdline = f"{image.base_cmdline} VMBENCH_WORKLOAD={spec.workload}"
        elif image.boot == "disk":
            smbios = workload_serial(spec.workload)
        settings = MachineSettings(
            name=spec.name,
            provider=image.provider,
            box=image.box,
            box_url=image.box_url,
            memory_mib=int(options["memory_mib"]),
            cpus=int(options["cpus"]),
            serial_log=workdir / "serial.log",
            readiness=image.readiness,
            boot_timeout_s=int(spec.options.get("boot_timeout_s", 120)),
            workdir=workdir,
            cmdline=cmdline,
            smbios_serial=smbios,
            libvirt_driver=image.libvirt_driver,
            vagrant_home=image.vagrant_home,
        )
        return VagrantInstance(settings, image)

    def cleanup_run(self, run_id: str) -> list[str]:
        return self._remove(run_prefix(run_id), everything=False)

    def cleanup_all(self) -> list[str]:
        return self._remove(libvirt.NAME_PREFIX, everything=True)

    def leftover_run_ids(self) -> set[str]:
        names = (
            [p.name for p in instances_dir().glob("vmbench-*")] if instances_dir().is_dir() else []
        )
        names += _boxes_in(vagrant_home())
        if libvirt.daemon_version().ok:
            with contextlib.suppress(libvirt.LibvirtError):
                names += libvirt.domains() + libvirt.volumes()
        names += vbox.vm_names()
        ids = set()
        for name in names:
            run = run_id_of(name)
            if run:
                ids.add(run)
        return ids

    def run_owners(self) -> dict[str, str]:
        owners: dict[str, str] = {}
        if libvirt.daemon_version().ok:
            with contextlib.suppress(libvirt.LibvirtError):
                for domain in libvirt.domains():
                    run, words = run_id_of(domain), libvirt.description(domain)
                    if run and words:
                        owners[run] = words
        return owners

    def _remove(self, prefix: str, everything: bool) -> list[str]:
        removed: list[str] = []
        folder = instances_dir()
        if folder.is_dir():
            for workdir in sorted(folder.glob(f"{prefix}*")):
                removed += _destroy_by_state(workdir)
        if libvirt.daemon_version().ok:
            for domain in libvirt.domains(prefix):
                if libvirt.remove_domain(domain):
                    removed.append(f"libvirt domain {domain}")
            for volume in libvirt.volumes(prefix):
                if libvirt.remove_volume(volume):
                    removed.append(f"libvirt volume {volume}")
            if everything:
                removed += libvirt.remove_pool()
        # VirtualBox VMs before the boxes: clones, then the masters imported with the box.
        removed += vbox.remove_vms(prefix)
        home = vagrant_home()
        for box in _boxes_in(home):
            if box.startswith(prefix) or everything:
                for provider in _box_providers(home, box):
                    with contextlib.suppress(subprocess.CalledProcessError):
                        _box_vagrant(home).box_remove(box, provider)
                if box not in _boxes_in(home):
                    removed.append(f"vagrant box {box}")
        return removed


def _box_sizes(box, guest: Guest) -> list[SizeRecord]:
    """The size rows of a vmbench box: what each provider's box holds, unpacked and packed."""
    members = " + ".join(sorted(box.file_bytes))
    sizes = []
    if box.boot == "kernel":
        sizes += [
            SizeRecord("kernel_bytes", box.file_bytes["vmlinuz"], "kernel"),
            SizeRecord("initramfs_bytes", box.file_bytes["initrd.img"], "initramfs"),
        ]
    sizes += [
        SizeRecord(
            "image_bytes",
            box.unpacked_bytes,
            "vagrant-box",
            f"unpacked {box.provider} box: {members} (box.img allocated)",
        ),
        SizeRecord(
            "image_compressed_bytes",
            box.path.stat().st_size,
            "vagrant-box",
            ".box file (tar.gz)",
        ),
    ]
    if box.provider == "virtualbox":
        sizes.append(
            SizeRecord(
                "disk_bytes",
                box.file_bytes[VMDK_NAME],
                "disk",
                f"boot disk as a streamOptimized VMDK; virtual {box.disk_virtual_bytes} bytes",
            )
        )
    elif box.boot == "disk" or guest.disk is not None:
        what = "boot disk" if box.boot == "disk" else "root disk"
        sizes.append(
            SizeRecord("disk_bytes", box.file_bytes["box.img"], "disk", f"{what}, qcow2, allocated")
        )
    return sizes


def _box_dir(home: Path, box: str, provider: str) -> Path:
    return home / "boxes" / box.replace("/", "-VAGRANTSLASH-") / "0" / provider


def _box_providers(home: Path, box: str) -> list[str]:
    return [p for p in PROVIDERS if _box_dir(home, box, p).is_dir()] or ["libvirt"]


def _box_image(home: Path, box: str) -> Path:
    return _box_dir(home, box, "libvirt") / "box.img"


def base_volume_name(home: Path, box: str) -> str:
    """The pool volume vagrant-libvirt 0.11 makes of a box's box.img (HandleBoxImage):
    ``<box>_vagrant_box_image_0_<mtime of box.img>_box.img`` for an unversioned box."""
    mtime = int(_box_image(home, box).stat().st_mtime)
    return f"{box.replace('/', '-VAGRANTSLASH-')}_vagrant_box_image_0_{mtime}_box.img"


def _preload_base_volume(home: Path, box: str) -> None:
    """Upload the box image into the pool now, as part of the import, so that no measured
    ``vagrant up`` pays for it (it finds the volume and skips its own upload). Should the
    name ever differ from vagrant-libvirt's, it uploads again and cleanup removes both."""
    image = _box_image(home, box)
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        capacity = int(json.loads(info.stdout)["virtual-size"])
        libvirt.upload_volume(base_volume_name(home, box), image, capacity)
    except (ValueError, KeyError, OSError, libvirt.LibvirtError) as e:
        raise BackendError(f"vagrant: uploading box {box} into pool {libvirt.POOL}: {e}") from None


def _import_virtualbox_master(home: Path, box: str) -> None:
    """Import the box's VM once, now (named ``<box>-master``, so cleanup finds it by the run),
    and record it where Vagrant's linked-clone support looks for it (``master_id`` in the
    box's folder): every ``vagrant up`` then clones it instead of importing the disk."""
    folder = _box_dir(home, box, "virtualbox")
    try:
        uuid = vbox.import_master(folder / "box.ovf", f"{box}-master")
    except vbox.VBoxError as e:
        raise BackendError(f"vagrant: importing box {box} into VirtualBox: {e}") from None
    (folder / "master_id").write_text(uuid)


def _destroy_by_state(workdir: Path) -> list[str]:
    """``vagrant destroy`` a machine a crashed run left, from its working folder."""
    settings_file = workdir / "env"
    removed = []
    if settings_file.is_file() and vagrantfile().is_file():
        ours = dict(
            line.split("=", 1) for line in settings_file.read_text().splitlines() if "=" in line
        )
        with contextlib.suppress(subprocess.CalledProcessError, OSError, RuntimeError):
            _vagrant(vagrantfile().parent, process_env(ours)).destroy()
            removed.append(f"vagrant machine {workdir.name}")
    shutil.rmtree(workdir, ignore_errors=True)
    return removed


def _libvirt_accel(guest: Guest, wanted: str) -> tuple[str, str]:
    """(accel, lv.driver): kvm only where a probe boot proved KVM works (as the qemu backend)."""
    if wanted == "tcg":
        return "tcg", "qemu"
    works, why = kvm_works(guest, MACHINES[guest.arch]) if guest.arch in MACHINES else (False, "")
    if works:
        return "kvm", "kvm"
    if wanted == "kvm":
        raise BackendError(
            f"vagrant: accel = 'kvm' was asked for but KVM does not work here: {why}"
        )
    return "tcg", "qemu"


# --- one machine ------------------------------------------------------------------------------


class VagrantInstance(Instance):
    def __init__(self, settings: MachineSettings, image: VagrantImage) -> None:
        self.settings = settings
        self.image = image
        self.accel = image.accel
        self.log = settings.workdir / "vagrant.log"
        # A vmbench guest is ready at its READY line on the serial console; a box of the
        # user's own when Vagrant printed that its communicator (SSH) reached the guest.
        self.ready_marker = READY if settings.readiness == "serial" else VAGRANT_BOOTED
        self._stop = threading.Event()
        self._vagrant = None
        self._up_s: float | None = None
        self._pid: int | None = None
        self._domain_kind = ""
        self._started = False
        self._destroyed = False
        self._stopped = False

    def start(self) -> None:
        s = self.settings
        s.workdir.mkdir(parents=True, exist_ok=True)
        ours = machine_env(s)
        # Kept beside the machine state so `vmbench clean` can destroy it after a crash.
        (s.workdir / "env").write_text("".join(f"{k}={v}\n" for k, v in ours.items()))
        self._vagrant = _vagrant(vagrantfile().parent, process_env(ours), self.log)
        # The console: the guest's serial log, or (a box of the user's own) Vagrant's output.
        watched = s.serial_log if s.readiness == "serial" else self.log
        self.console = ConsoleWatcher(follow_file(watched, self._stop))
        start = now_ns()
        self._started = True
        try:
            self._vagrant.up(provider=s.provider)
        except subprocess.CalledProcessError:
            self._stop.set()
            raise BackendError(f"vagrant up ({s.provider}) failed: {_tail(self.log)}") from None
        self._up_s = seconds_between(start, now_ns())
        if s.provider == "libvirt":
            self._find_domain()
        else:
            self._pid = _virtualbox_pid(s)

    def _find_domain(self) -> None:
        name = self.settings.name
        try:
            self._domain_kind = libvirt.domain_type(name)
        except libvirt.LibvirtError as e:
            raise BackendError(f"vagrant: domain {name} not found after vagrant up: {e}") from None
        ran = libvirt.accel_of(self._domain_kind)
        if ran != self.accel:
            raise BackendError(
                f"vagrant: asked libvirt for {self.accel} but domain {name} is type {self._domain_kind}"
            )
        self._pid = libvirt.qemu_pid(name)

    def memory(self, full: bool = True) -> dict[str, int]:
        pid = self._pid
        if pid is None and self.settings.provider == "virtualbox":
            pid = self._pid = _virtualbox_pid(self.settings)
        if pid is None:
            return {}
        own = process_memory([pid], full)
        if not own.processes:
            self._stop.set()  # the VM is gone: the trial stops waiting for more output
            return {}
        if full and own.denied:  # a regular user's domain on qemu:///system runs as libvirt's user
            self.memory_note = f"{SMAPS_DENIED}; {smaps.SPLIT_DENIED}"
        if self.settings.provider != "libvirt":  # VBoxHeadless: its mappings are not QEMU's
            return own.sample(full)
        sample, why = smaps.hypervisor_split(pid, own.sample(full))
        self.memory_note = why or self.memory_note
        return sample

    def wait_exited(self, timeout_s: float) -> bool:
        """The guest powered itself off (its hypervisor process ended); then ``vagrant
        destroy`` (exit_s ends here)."""
        if self._pid is not None:
            try:
                psutil.Process(self._pid).wait(timeout=timeout_s)
            except psutil.TimeoutExpired:
                return False
            except psutil.NoSuchProcess:
                pass
        self._destroy()
        return True

    def _destroy(self) -> None:
        if self._destroyed or not self._started or self._vagrant is None:
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self._vagrant.destroy()
        self._destroyed = True

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._destroy()
        finally:
            self._stop.set()
            if self._started and self.settings.provider == "libvirt":
                # vagrant lost track (killed mid-up, Ctrl-C): remove by name, ours only.
                with contextlib.suppress(libvirt.LibvirtError):
                    name = self.settings.name
                    libvirt.remove_domain(name)
                    if f"{name}.img" in libvirt.volumes(name):
                        libvirt.remove_volume(f"{name}.img")
            elif self._started:
                vbox.remove_vm(self.settings.name)  # vagrant lost track: by its own name
            shutil.rmtree(self.settings.workdir, ignore_errors=True)

    def extra_timings(self) -> dict[str, float]:
        return {} if self._up_s is None else {"up_returned_s": self._up_s}

    def describe(self) -> str:
        ready = "serial-marker" if self.settings.readiness == "serial" else "ssh-reachable"
        words = [
            f"provider={self.settings.provider}",
            f"readiness={ready}",
            f"box={self.image.box}",
        ]
        if self._domain_kind:
            words.append(f"domain_type={self._domain_kind}")
        words.append(f"memory_mib={self.settings.memory_mib}")
        return " ".join(words)


def _virtualbox_pid(settings: MachineSettings) -> int | None:
    """VBoxHeadless of this machine: Vagrant's id file holds the VM's UUID."""
    uuid_file = settings.workdir / ".vagrant" / "machines" / settings.name / "virtualbox" / "id"
    try:
        uuid = uuid_file.read_text().strip()
    except OSError:
        return None
    return vbox.headless_pid(uuid)
