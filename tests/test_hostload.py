"""The host's load around a trial, read from /proc (a fake /proc tree here; the real one in
test_busy_host.py), and the noise check."""

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.run import hostload
from bench.run.hostload import Proc, Snapshot


def write_proc(root: Path, cpu: list[int], procs: dict[int, tuple], pressure_us: int | None):
    """A /proc with the all-CPU line, PSI and ``procs``: pid -> (name, ppid, ticks, started)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text("cpu  " + " ".join(map(str, cpu)) + " 0 0\ncpu0 1 2 3\n")
    if pressure_us is not None:
        (root / "pressure").mkdir(exist_ok=True)
        (root / "pressure" / "cpu").write_text(
            f"some avg10=1.00 avg60=0.50 avg300=0.10 total={pressure_us}\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        )
    for pid, (name, ppid, ticks, started) in procs.items():
        (root / str(pid)).mkdir(exist_ok=True)
        fields = ["S", str(ppid)] + ["0"] * 9 + [str(ticks), "0", "0", "0"] + ["0"] * 4
        fields += [str(started), "0"]
        (root / str(pid) / "stat").write_text(f"{pid} ({name}) " + " ".join(fields) + "\n")
        (root / str(pid) / "cmdline").write_bytes(b"")


def snap(root: Path, at_s: float) -> Snapshot:
    return Snapshot(
        at_s, hostload.cpu_times(root), hostload.cpu_pressure_us(root), hostload.processes(root)
    )


def test_other_cpu_is_the_busy_time_less_ours_and_the_engines_daemons(tmp_path):
    me = os.getpid()
    # user nice system idle iowait irq softirq steal: 2 cores x 10 s = 2000 ticks in between
    write_proc(
        tmp_path / "a",
        [1000, 0, 0, 1000, 0, 0, 0, 0],
        {me: ("python", 1, 50, 1), 900: ("dockerd", 1, 10, 1), 950: ("cc1", 1, 0, 1)},
        pressure_us=0,
    )
    write_proc(
        tmp_path / "b",
        [2400, 0, 200, 1400, 0, 0, 0, 200],  # busy +1600, steal +200, idle +400 (of 2200)
        {
            me: ("python", 1, 250, 1),  # +200: ours
            900: ("dockerd", 1, 110, 1),  # +100: docker's daemon
            901: ("containerd-shim", 900, 40, 5),  # new under the daemon: the container
            960: ("sleepy", 900, 0, 5),
            950: ("cc1", 1, 1000, 1),  # +1000: someone else's compiler
        },
        pressure_us=2_500_000,
    )
    before, after = snap(tmp_path / "a", 0.0), snap(tmp_path / "b", 10.0)
    assert hostload.ours_ticks(before, after, hostload.ENGINE_DAEMONS["docker"], "run1") == 340
    found = hostload.measurements(before, after, "docker", "run1")
    assert found["host_other_cpu_pct"] == round((1600 - 340) / 2200 * 100, 1)
    assert found["host_steal_pct"] == round(200 / 2200 * 100, 1)
    assert found["host_cpu_pressure_pct"] == 25.0  # 2.5 s of 10 s waiting for a CPU
    # qemu has no daemon: dockerd's CPU is another process's then.
    assert hostload.ours_ticks(before, after, (), "run1") == 200


def test_a_child_of_ours_that_ended_counts_once(tmp_path):
    """Its ticks move into our cutime when reaped: what it used before the trial is not ours."""
    me = os.getpid()
    procs = {me: Proc("python", 1, 100, 1), 700: Proc("qemu-system-x86", me, 300, 2)}
    before = Snapshot(0.0, None, None, procs)
    after = Snapshot(1.0, None, None, {me: Proc("python", 1, 100 + 350, 1)})  # reaped: 350
    assert hostload.ours_ticks(before, after, (), "r") == 50


def test_every_source_may_be_absent(tmp_path):
    assert hostload.cpu_times(tmp_path) is None
    assert hostload.cpu_pressure_us(tmp_path) is None
    assert hostload.processes(tmp_path / "none") == {}
    assert hostload.swap_used_bytes(tmp_path) is None
    assert hostload.governors(tmp_path) == set()
    empty = Snapshot(0.0, None, None, {})
    assert set(hostload.measurements(empty, Snapshot(1.0, None, None, {}), "docker", "r")) <= {
        "host_load_1m"
    }


def test_a_qemu_of_this_run_is_ours_and_another_is_named_by_the_noise_check():
    mine = Proc("qemu-system-x86", 1, 0, 1, "qemu-system-x86_64 -name guest=vmbench-run7-x")
    other = Proc("qemu-system-x86", 1, 0, 1, "qemu-system-x86_64 -name guest=someone")
    procs = {10: mine, 11: other, 12: Proc("VBoxHeadless", 1, 0, 1)}
    assert hostload.foreign_hypervisors("run7", procs) == [
        "qemu-system-x86 (pid 11)",
        "VBoxHeadless (pid 12)",
    ]


def test_the_real_host_gives_every_row_and_our_own_cpu_is_not_other():
    """This process burns 1 s of CPU: it is ours, so it does not raise host_other_cpu_pct."""
    before = hostload.snapshot()
    stop = time.process_time() + 1.0
    while time.process_time() < stop:
        pass
    after = hostload.snapshot()
    found = hostload.measurements(before, after, "qemu", "r")
    assert {"host_load_1m", "host_other_cpu_pct", "host_steal_pct"} <= set(found)
    if Path("/proc/pressure/cpu").exists():
        assert "host_cpu_pressure_pct" in found
    used = hostload.ours_ticks(before, after, (), "r") / os.sysconf("SC_CLK_TCK")
    assert 0.9 <= used <= 1.5 * (after.at_s - before.at_s) + 0.1


def test_noise_check_names_a_load_above_half_the_cores(tmp_path):
    """Hogs this test starts (and kills by pid) push the load up; a 1-core count makes half
    of it 0.5, so the line must appear once the load passes that."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        deadline = time.monotonic() + 60
        while os.getloadavg()[0] <= 0.5 and time.monotonic() < deadline:
            time.sleep(1)
        lines = hostload.noise_lines("r", cores=1)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert any(line.startswith("load average ") and "half the 1 cores" in line for line in lines)


def test_every_engine_names_its_daemons():
    """An engine missing here would count every engine's daemons as the trial's own."""
    from bench.backends import engine_names

    assert set(engine_names()) <= set(hostload.ENGINE_DAEMONS)
