"""The vagrant engine: what it declares, whether it can run here, and the three steps every
engine has (prepare a box, create a machine, clean up), each in a module of this package."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
from typing import Any

from bench.backends.base import (
    HOST_ARCH,
    Availability,
    Backend,
    BackendError,
    BackendUnsupported,
    Instance,
    LaunchSpec,
    Prepared,
    command_version,
)
from bench.backends.vagrant import cleanup, libvirt, prepare, vbox
from bench.backends.vagrant.env import (
    MachineSettings,
    box_client,
    instances_dir,
    run_prefix,
    vagrant_home,
    vagrantfile,
)
from bench.backends.vagrant.instance import VagrantInstance
from bench.backends.vagrant.prepare import VagrantImage
from bench.backends.vagrant.provider import BOOTS, PROVIDERS, detect_provider
from bench.guests import Guest
from bench.guests.bootdisk import workload_serial
from bench.run.options import CPUS, MEMORY_MIB, Option, file_url, one_of, text


class VagrantBackend(Backend[VagrantImage]):
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
            plugins = box_client(vagrant_home()).plugin_list()
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
            words = f"Vagrant {box_client(vagrant_home()).version()}; {words}"
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

    def prepare(self, guest: Guest, options: dict[str, Any]) -> Prepared[VagrantImage]:
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
            return prepare.users_box(guest, options, user_box, choice)
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
            return prepare.virtualbox_box(guest, run_id, choice)
        return prepare.libvirt_box(guest, options, run_id, boot, choice)

    # -- instances ---------------------------------------------------------------------------

    def create(self, prepared: Prepared[VagrantImage], spec: LaunchSpec) -> Instance:
        image = prepared.handle
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
            # vagrant up waits for READY no longer than the trial does.
            boot_timeout_s=max(1, math.ceil(spec.timeout_s)),
            workdir=workdir,
            cmdline=cmdline,
            smbios_serial=smbios,
            libvirt_driver=image.libvirt_driver,
            vagrant_home=image.vagrant_home,
        )
        return VagrantInstance(settings, image)

    def cleanup_run(self, run_id: str) -> list[str]:
        return cleanup.remove(run_prefix(run_id), everything=False)

    def cleanup_all(self) -> list[str]:
        return cleanup.remove(libvirt.NAME_PREFIX, everything=True)

    def leftover_run_ids(self) -> set[str]:
        return cleanup.leftover_run_ids()

    def run_owners(self) -> dict[str, str]:
        return cleanup.run_owners()
