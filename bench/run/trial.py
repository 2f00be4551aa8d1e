"""One trial: launch N instances (N = 1 for a single trial), time each to READY, measure, stop.

``launched`` is the one launch path for every backend and every N: it creates the instances,
starts them back to back, waits for each READY line, and stops them all however the trial
ends (done, failed, timed out, Ctrl-C). Each ready clock starts just before that instance's
``start`` and stops when its READY line's bytes are read. What is measured once they are
ready is the trial's own: ``run_trial`` (one instance: its facts, then its exit or its
memory) and ``density.run_density`` (N idle instances: their memory together).

A trial that cannot go on raises ``TrialStopped`` (failed or timeout, with the reason) and
``ForeignArchRefused`` when a foreign-architecture guest, or a system that is not Linux
(memtest86+), could not execute at all.

A guest whose readiness is its own banner (memtest86+: no shell, no READY line, no uptime)
is stopped right after the banner: nothing of it runs on, and its rows say ``marker=banner``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from bench.backends.base import (
    Backend,
    BackendError,
    BackendTimeout,
    BackendUnsupported,
    Instance,
    LaunchSpec,
    Prepared,
)
from bench.errors import VmbenchError
from bench.run import compat
from bench.run.measure import (
    DONE,
    READY,
    WORK_END,
    WORK_START,
    ConsoleLine,
    MemorySampler,
    mem_available_bytes,
    now_ns,
    seconds_between,
)
from bench.run.smaps import PART_DETAIL

SINGLE_HZ = 20.0  # one instance: RSS at 20 Hz, USS and PSS every 10th tick (2 Hz)
MEM_AVAILABLE = "mem_available"  # the host's MemAvailable, sampled beside the instances


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float
    detail: str = ""


@dataclass
class TrialOutcome:
    status: str  # ok | failed | timeout | interrupted | unsupported
    detail: str = ""
    accel: str = ""  # empty: not known (the runner writes the engine's unknown_accel)
    measurements: list[Measurement] = field(default_factory=list)
    ready_fields: dict[str, str] = field(default_factory=dict)


class TrialStopped(VmbenchError):
    """The trial cannot go on: ``status`` (failed | timeout, or unsupported when the engine
    cannot run this here) and why, in one line."""

    def __init__(self, status: str, detail: str, accel: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail, self.accel = status, detail, accel


class ForeignArchRefused(VmbenchError):
    """A foreign-architecture guest (or another system) the engine could not execute
    (``exec format error``): an expected result, the fact ``runs_foreign_arch`` (or
    ``runs_foreign_os``) = 0, not a failure."""

    def __init__(self, measurement: Measurement, accel: str) -> None:
        super().__init__(measurement.detail)
        self.measurement, self.accel = measurement, accel


@dataclass
class Launched:
    """Instances that all printed READY, with the host clock of each start and READY line."""

    instances: list[Instance]
    start_ns: list[int]  # just before each instance's start
    ready: list[ConsoleLine]
    deadline_ns: int  # just before the first start + the trial's timeout (spec.timeout_s)

    @property
    def accel(self) -> str:
        return self.instances[0].accel

    def ready_s(self, k: int) -> float:
        return seconds_between(self.start_ns[k], self.ready[k].t_ns)

    def all_ready_s(self) -> float:
        """From just before the first start to the last READY."""
        return seconds_between(self.start_ns[0], max(line.t_ns for line in self.ready))


@contextlib.contextmanager
def launched(backend: Backend, prepared: Prepared, spec: LaunchSpec, n: int) -> Iterator[Launched]:
    """Create ``n`` instances, start them back to back, wait for each READY (TrialStopped if
    one fails or times out); every instance is stopped on leaving, in reverse order.

    One deadline, ``spec.timeout_s`` after the first start, covers the starts too: an engine
    whose start waits for the guest (``vagrant up``) is given it and must not outlast it."""
    with contextlib.ExitStack() as stack:
        instances: list[Instance] = []
        for k in range(n):
            name = spec.name if n == 1 else f"{spec.name}-{k + 1}"
            try:
                instance = backend.create(prepared, replace(spec, name=name))
            except BackendError as e:
                status = "unsupported" if isinstance(e, BackendUnsupported) else "failed"
                accel = instances[0].accel if instances else ""
                raise TrialStopped(status, f"{_which(k, n)}{e}", accel) from None
            stack.enter_context(instance)
            instances.append(instance)
        accel = instances[0].accel
        start_ns: list[int] = []
        deadline_ns = 0
        for k, instance in enumerate(instances):
            start_ns.append(now_ns())
            deadline_ns = deadline_ns or start_ns[0] + int(spec.timeout_s * 1e9)
            try:
                instance.start(deadline_ns)
            except BackendTimeout as e:
                raise TrialStopped("timeout", f"{_which(k, n)}{e}", accel) from None
            except BackendError as e:
                _refused(prepared, str(e), accel)
                raise TrialStopped("failed", f"{_which(k, n)}{e}", accel) from None
        ready: list[ConsoleLine] = []
        for k, instance in enumerate(instances):
            ready.append(
                _wait_ready(instance, deadline_ns, spec.timeout_s, prepared, k, n, len(ready))
            )
        yield Launched(instances, start_ns, ready, deadline_ns)


def _wait_ready(
    instance: Instance,
    deadline_ns: int,
    timeout_s: float,
    prepared: Prepared,
    k: int,
    n: int,
    ready_so_far: int,
) -> ConsoleLine:
    assert instance.console is not None, "an instance has a console once started"
    marker = ready_marker(instance, prepared)
    line = instance.console.wait_for(marker, deadline_ns)
    if line is not None:
        return line
    tail = instance.console.tail()
    so_far = f" ({ready_so_far} ready so far)" if n > 1 else ""
    what = "READY" if marker == READY else repr(marker)
    if instance.console.ended:
        _refused(prepared, tail, instance.accel)
        why = f"{_which(k, n)}guest output ended before {what}{so_far}: {tail}"
        raise TrialStopped("failed", why, instance.accel)
    why = f"{_which(k, n)}no {what} line within {timeout_s:g} s{so_far}; last output: {tail}"
    raise TrialStopped("timeout", why, instance.accel)


def ready_marker(instance: Instance, prepared: Prepared) -> str:
    """What means ready: the instance's own marker when its engine has one (a user's box:
    SSH reachable), else the guest's (READY, or a system's banner: memtest86+)."""
    return instance.ready_marker if instance.ready_marker != READY else prepared.guest.ready_marker


def _which(k: int, n: int) -> str:
    return f"instance {k + 1}/{n}: " if n > 1 else ""


def _refused(prepared: Prepared, evidence: str, accel: str) -> None:
    """ForeignArchRefused if a foreign guest's (or another system's) engine output shows it
    could not execute."""
    if prepared.guest.os:
        fact = compat.foreign_os_refused(prepared.guest.os, evidence)
        if fact is not None:
            raise ForeignArchRefused(Measurement("runs_foreign_os", *fact), accel)
    if not compat.is_foreign(prepared.guest.arch):
        return
    fact = compat.foreign_arch_refused(prepared.guest.arch, evidence)
    if fact is not None:
        raise ForeignArchRefused(Measurement("runs_foreign_arch", *fact), accel)


def run_trial(
    backend: Backend,
    prepared: Prepared,
    spec: LaunchSpec,
    memory_sample_s: float,
    host_kernel: str,
    sample_hz: float = SINGLE_HZ,
) -> TrialOutcome:
    """Measure one instance; never leaves it running, whatever happens (also on Ctrl-C).

    Workload ``ready``: ready_s, the guest's facts, then exit_s; ``idle``: ready_s, the facts,
    then the median memory over ``memory_sample_s``; ``cpu``: ready_s, the facts, cpu_work_s.
    Not READY within ``spec.timeout_s`` of its start (start included): a timeout.
    """
    outcome = TrialOutcome("ok")
    try:
        with launched(backend, prepared, spec, 1) as group:
            outcome.accel = group.accel
            _ready_facts(backend, prepared, group, host_kernel, outcome)
            if prepared.guest.readiness == "banner":
                pass  # nothing runs on: leaving the block stops it right after its banner
            elif spec.workload == "ready":
                _measure_exit(group, outcome)
            elif spec.workload == "cpu":
                _measure_cpu(group, outcome)
            elif spec.workload == "idle":
                medians, detail = sample_memory(group.instances, memory_sample_s, sample_hz)
                outcome.measurements += memory_measurements(medians, detail, backend.shim)
    except TrialStopped as e:
        outcome.status, outcome.detail = e.status, e.detail
        outcome.accel = outcome.accel or e.accel
    except ForeignArchRefused as e:
        return TrialOutcome("ok", accel=e.accel, measurements=[e.measurement])
    return outcome


def _ready_facts(
    backend: Backend, prepared: Prepared, group: Launched, host_kernel: str, outcome: TrialOutcome
) -> None:
    """ready_s and what the READY line says: uptime (a VM's own), kernel, architecture."""
    instance, fields = group.instances[0], group.ready[0].fields()
    outcome.ready_fields = fields
    guest = prepared.guest
    ready = (
        f"marker=banner os={guest.os}"
        if guest.readiness == "banner"
        else f"guest_init={fields.get('init', '?')}"
    )
    described = " ".join(w for w in (instance.describe(), ready) if w)
    outcome.measurements.append(Measurement("ready_s", group.ready_s(0), described))
    for metric, seconds in instance.extra_timings().items():
        outcome.measurements.append(Measurement(metric, seconds, described))
    outcome.measurements += boot_phases(instance, group.start_ns[0], described)
    shared_kernel = backend.shares_host_kernel()
    if "uptime" in fields and not shared_kernel:
        # A container's /proc/uptime is the host kernel's: only a VM has an uptime of its own.
        outcome.measurements.append(Measurement("guest_uptime_s", float(fields["uptime"])))
    kernel = compat.kernel_fact(fields, host_kernel)
    if kernel is not None:
        outcome.measurements.append(Measurement("kernel_matches_host", *kernel))
    if compat.is_foreign(prepared.guest.arch):
        ran = compat.foreign_arch_ran(prepared.guest.arch, fields, container=shared_kernel)
        outcome.measurements.append(Measurement("runs_foreign_arch", *ran))
    if guest.os:
        ran = compat.foreign_os_ran(guest.os, group.ready[0].text, container=shared_kernel)
        outcome.measurements.append(Measurement("runs_foreign_os", *ran))


def boot_phases(instance: Instance, start_ns: int, described: str) -> list[Measurement]:
    """firmware_s and bootloader_s of a VM booted through firmware and a bootloader.

    Host clock only, from the console as it arrived: launch -> the bootloader's first line is
    the firmware's share (with the hypervisor's own start), from there to the bootloader's
    last line before the kernel runs (kernel and initramfs loaded) the bootloader's. What
    follows (the kernel's decompression, its boot, init) is READY less both. Nothing when the
    instance declares no bootloader lines (a direct kernel boot) or they never showed.
    """
    if len(instance.bootloader_markers) != 2 or instance.console is None:
        return []
    banner, handoff = instance.bootloader_markers
    first = instance.console.wait_for(banner, now_ns())  # seen already, or never
    last = instance.console.wait_for(handoff, now_ns())
    if first is None or last is None or last.t_ns < first.t_ns:
        return []
    how = f"{described} host clock; bootloader lines {banner.strip()!r} .. {handoff.strip()!r}"
    return [
        Measurement("firmware_s", seconds_between(start_ns, first.t_ns), how),
        Measurement("bootloader_s", seconds_between(first.t_ns, last.t_ns), how),
    ]


def _measure_exit(group: Launched, outcome: TrialOutcome) -> None:
    """exit_s: launch to the instance's end after its DONE line (workload ``ready``)."""
    instance = group.instances[0]
    assert instance.console is not None
    if instance.console.wait_for(DONE, group.deadline_ns) is None:
        raise TrialStopped("timeout", "READY seen but no DONE line before the timeout")
    if not instance.wait_exited(max(0.0, (group.deadline_ns - now_ns()) / 1e9)):
        raise TrialStopped("timeout", "DONE seen but the instance did not exit in time")
    outcome.measurements.append(Measurement("exit_s", seconds_between(group.start_ns[0], now_ns())))


def _measure_cpu(group: Launched, outcome: TrialOutcome) -> None:
    """cpu_work_s: host clock from the guest's WORK START line to its WORK END line (workload
    ``cpu``), both stamped as their bytes arrived, so the console's own latency cancels out.
    The END line's hash must be that of the zeros the guest hashed: the work was done whole."""
    console = group.instances[0].console
    assert console is not None
    start = console.wait_for(WORK_START, group.deadline_ns)
    end = console.wait_for(WORK_END, group.deadline_ns) if start is not None else None
    if start is None or end is None:
        missing = WORK_START if start is None else WORK_END
        if console.ended:
            raise TrialStopped("failed", f"no {missing!r} line: {console.tail()}")
        raise TrialStopped("timeout", f"READY seen but no {missing!r} line before the timeout")
    words = end.fields()
    mib = int(words["mib"]) if words.get("mib", "").isdigit() else 0
    if not mib or words.get("md5") != zeros_md5(mib):
        raise TrialStopped(
            "failed",
            f"the cpu work's hash {words.get('md5')!r} is not the md5 of {mib} MiB of zeros: "
            "the guest did not do the whole work",
        )
    how = (
        f"host clock between the guest's {WORK_START!r} and {WORK_END!r} lines; the guest ran "
        f"{mib} MiB of zeros (dd from /dev/zero, 1 MiB blocks) through md5sum"
    )
    outcome.measurements.append(
        Measurement("cpu_work_s", seconds_between(start.t_ns, end.t_ns), how)
    )


@functools.cache
def zeros_md5(mib: int) -> str:
    """The md5 of ``mib`` MiB of zero bytes (what the cpu workload hashes)."""
    digest, block = hashlib.md5(usedforsecurity=False), bytes(1 << 20)
    for _ in range(mib):
        digest.update(block)
    return digest.hexdigest()


def memory_measurements(
    medians: dict[str, float], detail: str, shim: str = ""
) -> list[Measurement]:
    """Sampled memory as measurements; shim_pss_bytes names its process (``shim=conmon``),
    so a reader can say which engine's shim it counted."""
    named = f"shim={shim} {detail}" if shim else detail
    return [
        Measurement(
            metric,
            value,
            named
            if metric == "shim_pss_bytes"
            else f"{PART_DETAIL[metric]}; {detail}"
            if metric in PART_DETAIL
            else detail,
        )
        for metric, value in medians.items()
    ]


def sample_memory(
    instances: list[Instance],
    seconds: float,
    hz: float,
    full_every: int = 10,
    with_host: bool = False,
) -> tuple[dict[str, float], str]:
    """Each metric summed over ``instances`` (only metrics every one of them has), sampled
    at ``hz`` for ``seconds``, as medians; with ``with_host`` also MemAvailable under
    ``MEM_AVAILABLE``. TrialStopped if an instance ends meanwhile or nothing could be read."""

    def summed(full: bool) -> dict[str, int]:
        samples = [instance.memory(full) for instance in instances]
        if not all(samples):
            raise RuntimeError("an instance had no memory to read (gone?)")
        common = set.intersection(*(set(s) for s in samples))
        total = {metric: sum(s[metric] for s in samples) for metric in common}
        if with_host:
            total[MEM_AVAILABLE] = mem_available_bytes()
        return total

    def any_ended() -> bool:
        return any(i.console is not None and i.console.ended for i in instances)

    with MemorySampler(summed, hz=hz, full_every=full_every) as sampler:
        stop_at = now_ns() + int(seconds * 1e9)
        while now_ns() < stop_at and not any_ended():
            time.sleep(min(0.1, max(0.0, (stop_at - now_ns()) / 1e9)))
    n = len(instances)
    gone = [str(k + 1) for k, i in enumerate(instances) if i.console and i.console.ended]
    if gone:
        which = f"instance(s) {', '.join(gone)}/{n}" if n > 1 else "the instance"
        raise TrialStopped("failed", f"{which} ended while memory was sampled")
    medians = sampler.medians()
    if not medians:
        why = sampler.error or "instance gone"
        raise TrialStopped("failed", f"no memory sample could be taken: {why}")
    notes = sorted({i.memory_note for i in instances if i.memory_note})
    detail = "; ".join([f"median of {len(sampler.samples)} samples at {hz:g} Hz", *notes])
    return medians, detail
