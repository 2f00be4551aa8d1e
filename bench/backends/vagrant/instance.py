"""One machine that ``vagrant up`` brings up: its console (the guest's serial log, or for a
box of the user's own Vagrant's output), the memory of its hypervisor process, and a stop
that destroys it even when Vagrant lost track of it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading

import psutil

from bench.backends.base import BackendError, BackendTimeout, Instance
from bench.backends.vagrant import libvirt, vbox
from bench.backends.vagrant.env import (
    MachineSettings,
    machine_env,
    output_tail,
    process_env,
    vagrant_client,
    vagrantfile,
)
from bench.backends.vagrant.prepare import VagrantImage
from bench.run import smaps
from bench.run.measure import (
    READY,
    SMAPS_DENIED,
    ConsoleWatcher,
    follow_file,
    now_ns,
    process_memory,
    seconds_between,
)

# What Vagrant prints once its communicator reached the guest (for a box of the user's own:
# SSH answered). Vagrant's own words, read from its output as it is written ($stdout.sync).
VAGRANT_BOOTED = "Machine booted and ready!"
# What Vagrant says when its communicator waited boot_timeout for the guest in vain.
BOOT_TIMED_OUT = "Timed out while waiting for the machine to boot"


class VagrantInstance(Instance):
    def __init__(self, settings: MachineSettings, image: VagrantImage) -> None:
        self.settings = settings
        self.image = image
        self.accel = image.accel
        self.log = settings.workdir / "vagrant.log"
        # A vmbench guest is ready at its READY line on the serial console; a box of the
        # user's own when Vagrant printed that its communicator (SSH) reached the guest.
        self.ready_marker = READY if settings.readiness == "serial" else VAGRANT_BOOTED
        self._quit = threading.Event()  # ends following the console file
        self._vagrant = None
        self._up: subprocess.Popen | None = None
        self._up_s: float | None = None
        self._pid: int | None = None
        self._domain_kind = ""
        self._started = False
        self._destroyed = False

    def start(self, deadline_ns: int) -> None:
        """``vagrant up``, which returns once the guest printed READY (the Vagrantfile's
        serial communicator waits for it, boot_timeout = the trial's timeout_s); still
        running at ``deadline_ns`` it is killed and the trial is a timeout."""
        s = self.settings
        s.workdir.mkdir(parents=True, exist_ok=True)
        ours = machine_env(s)
        # Kept beside the machine state so `vmbench clean` can destroy it after a crash.
        (s.workdir / "env").write_text("".join(f"{k}={v}\n" for k, v in ours.items()))
        self._vagrant = vagrant_client(vagrantfile().parent, process_env(ours), self.log)
        # The console: the guest's serial log, or (a box of the user's own) Vagrant's output.
        watched = s.serial_log if s.readiness == "serial" else self.log
        self.console = ConsoleWatcher(follow_file(watched, self._quit))
        start = now_ns()
        self._started = True
        self._vagrant_up(process_env(ours), deadline_ns)
        self._up_s = seconds_between(start, now_ns())
        if s.provider == "libvirt":
            self._find_domain()
        else:
            self._pid = _virtualbox_pid(s)

    def _vagrant_up(self, env: dict[str, str], deadline_ns: int) -> None:
        """Run ``vagrant up`` in a session of its own (so it is ours to end, by its process
        group, at the deadline or on Ctrl-C), its output appended to the instance's log."""
        provider = self.settings.provider
        binary = shutil.which("vagrant")
        if binary is None:
            raise BackendError("vagrant: vagrant not found; sudo make host")
        with open(self.log, "ab") as log:
            self._up = subprocess.Popen(
                [binary, "up", f"--provider={provider}"],
                cwd=vagrantfile().parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            code = self._up.wait(timeout=max(0.0, (deadline_ns - now_ns()) / 1e9))
        except subprocess.TimeoutExpired:
            self._end_up()
            raise BackendTimeout(
                f"vagrant up ({provider}) had not returned at the trial's timeout; last "
                f"output: {output_tail(self.log)}"
            ) from None
        except BaseException:  # Ctrl-C: it runs in its own session, so end it here
            self._end_up()
            raise
        if code != 0:
            self._quit.set()
            said = output_tail(self.log)
            with contextlib.suppress(OSError):
                if BOOT_TIMED_OUT in self.log.read_text(errors="replace"):
                    # the serial communicator waited boot_timeout (= timeout_s) in vain
                    raise BackendTimeout(f"vagrant up ({provider}): {BOOT_TIMED_OUT}; {said}")
            raise BackendError(f"vagrant up ({provider}) failed: {said}")

    def _end_up(self) -> None:
        """Kill a ``vagrant up`` still running (its whole process group: it is ours)."""
        up = self._up
        self._quit.set()
        if up is not None and up.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(up.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                up.wait(timeout=10)

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
            self._quit.set()  # the VM is gone: the trial stops waiting for more output
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

    def _teardown(self) -> None:
        self._end_up()
        try:
            self._destroy()
        finally:
            self._quit.set()
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
