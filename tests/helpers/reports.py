"""Result CSVs with known answers for the report, chart, compare and slide tests.

Written with the real ResultWriter so the fixtures are exactly what the runner produces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.results import ResultWriter, Row, unit_of

MIB = 1024**2
# A real default-suite run on the development machines (TCG, 2 cores), with its host.json
# beside it: the report, claims, charts and slides are tested on what the runner really wrote.
REAL_RUN = Path(__file__).parents[1] / "data" / "default-suite" / "results.csv"
# A real run of every kind of engine and boot mode (tests/data/README.md), same host id.
SPECTRUM_RUN = Path(__file__).parents[1] / "data" / "spectrum-run" / "results.csv"


def row(
    host: str,
    backend: str,
    metric: str,
    value: float | None,
    *,
    phase: str = "warm",
    trial: int = 0,
    instances: int = 1,
    guest: str = "busybox",
    scenario: str = "busybox",
    accel: str | None = None,
    status: str = "ok",
    detail: str = "workload=idle",
) -> Row:
    if accel is None:
        accel = "none" if backend in ("docker", "podman") else "kvm"
    return Row(
        run_id="run1",
        host_id=host,
        scenario=scenario,
        guest=guest,
        backend=backend,
        accel=accel,
        instances=instances,
        trial=trial,
        phase=phase,
        metric=metric,
        value=value,
        unit=unit_of(metric),
        status=status,
        detail=detail,
        started_at="2024-05-21T10:00:00Z",
    )


def ready_rows(
    host: str, backend: str, values: list[float] | np.ndarray, phase: str = "warm", **kw: object
) -> list[Row]:
    return [
        row(host, backend, "ready_s", float(v), phase=phase, trial=i, **kw)
        for i, v in enumerate(values)
    ]


def full_host(
    host: str,
    *,
    container_ready: float = 0.5,
    vm_ready: float = 5.0,
    accel: str = "kvm",
    vms: tuple[str, ...] = ("qemu", "vagrant"),
    n: int = 10,
    seed: int = 1,
) -> list[Row]:
    """A host with every claim measured: containers clearly smaller, faster, denser."""
    rng = np.random.default_rng(seed)
    compat = {"scenario": "compat"}
    cloud = "6.1.0-56-cloud-amd64"
    rows: list[Row] = []
    rows += ready_rows(host, "docker", rng.normal(container_ready, 0.02, n))
    rows += ready_rows(host, "docker", [container_ready * 1.5], phase="cold")
    rows += ready_rows(host, "docker", [99.0], phase="warmup")  # must be ignored
    size = {"detail": "artefact=image"}
    rows += [
        row(host, "docker", "image_bytes", 1.5 * MIB, phase="build", **size),
        row(host, "docker", "image_compressed_bytes", 0.7 * MIB, phase="build", **size),
        row(host, "docker", "rootfs_bytes", 1.2 * MIB, phase="build", **size),
        row(host, "docker", "pss_bytes", 1.0 * MIB),
        row(host, "docker", "shim_pss_bytes", 6.0 * MIB),
        row(host, "docker", "kernel_matches_host", 1, detail=kernels("6.1.0-18-amd64")),
        row(host, "docker", "kernel_matches_host", 1, detail=kernels("6.1.0-18-amd64"), **compat),
        row(
            host,
            "docker",
            "runs_foreign_arch",
            0,
            guest="busybox-arm64",
            detail="workload=ready guest_arch=arm64 host_arch=amd64 exec format error: exec /bin/sh",
            **compat,
        ),
    ]
    for k in (1, 2, 4, 8):
        for t in range(2):
            mem = 3 * MIB * k + rng.normal(0, 0.5 * MIB)
            rows.append(row(host, "docker", "host_used_delta_bytes", mem, instances=k, trial=t))
    if "qemu" in vms:
        rows += ready_rows(host, "qemu", rng.normal(vm_ready, 0.2, n), accel=accel)
        rows += ready_rows(host, "qemu", [vm_ready * 1.2], phase="cold", accel=accel)
        rows += [
            row(
                host,
                "qemu",
                "trial",
                None,
                status="timeout",
                trial=n,
                accel=accel,
                detail="no READY within 120 s",
            ),
            row(host, "qemu", "image_bytes", 30 * MIB, phase="build", accel=accel, **size),
            row(host, "qemu", "kernel_bytes", 8 * MIB, phase="build", accel=accel, **size),
            row(host, "qemu", "initramfs_bytes", 22 * MIB, phase="build", accel=accel, **size),
            row(host, "qemu", "image_compressed_bytes", 25 * MIB, phase="build", accel=accel),
            row(host, "qemu", "pss_bytes", 200 * MIB, accel=accel),
            row(host, "qemu", "kernel_matches_host", 0, accel=accel, detail=kernels(cloud)),
            row(
                host, "qemu", "kernel_matches_host", 0, accel=accel, detail=kernels(cloud), **compat
            ),
            row(
                host,
                "qemu",
                "runs_foreign_arch",
                1,
                accel="tcg",  # a foreign-arch VM is always emulated
                guest="busybox-arm64",
                detail="guest_arch=arm64 arch=aarch64 host_arch=amd64 system emulation",
                **compat,
            ),
        ]
        for k in (1, 2, 4, 8):
            for t in range(2):
                mem = 250 * MIB * k + rng.normal(0, 5 * MIB)
                rows.append(
                    row(
                        host,
                        "qemu",
                        "host_used_delta_bytes",
                        mem,
                        instances=k,
                        trial=t,
                        accel=accel,
                    )
                )
    if "vagrant" in vms:
        va = "virtualbox"
        for i in range(4):
            ready = 40 + rng.normal(0, 1)
            rows += [
                row(host, "vagrant", "ready_s", ready, trial=i, accel=va),
                row(host, "vagrant", "guest_uptime_s", 5 + rng.normal(0, 0.2), trial=i, accel=va),
                row(host, "vagrant", "up_returned_s", ready + 12, trial=i, accel=va),
            ]
        rows += [
            row(host, "vagrant", "image_bytes", 300 * MIB, phase="build", accel=va, **size),
            row(host, "vagrant", "disk_bytes", 280 * MIB, phase="build", accel=va, **size),
            row(host, "vagrant", "kernel_bytes", 8 * MIB, phase="build", accel=va, **size),
            row(host, "vagrant", "import_s", 20.0, phase="build", accel=va),
        ]
    return rows


def kernels(guest_kernel: str, host_kernel: str = "6.1.0-18-amd64") -> str:
    """A kernel_matches_host detail as the runner writes it."""
    return f"workload=ready guest_kernel={guest_kernel} host_kernel={host_kernel}"


def write_csv(
    path: Path, rows: list[Row], host_json: dict | None = None, raw_tail: str = ""
) -> Path:
    """Write rows (and host.json beside them); raw_tail is appended verbatim after them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with ResultWriter(path) as writer:
        writer.write(rows)
    if raw_tail:
        with open(path, "a", encoding="utf-8") as f:
            f.write(raw_tail)
    if host_json is not None:
        (path.parent / "host.json").write_text(json.dumps(host_json), encoding="utf-8")
    return path


def host_meta(host: str, cpu: str = "Intel(R) Xeon(R) Gold 6230", accel: str = "kvm") -> dict:
    return {
        "hostname": host,
        "cpu_model": cpu,
        "cpu_count": 8,
        "mem_total_bytes": 16 * 1024**3,
        "kernel": "6.1.0-18-amd64",
        "os": "Debian GNU/Linux 12",
        "versions": {"docker": "24.0.5", "qemu": "7.2.9", "vagrant": "2.3.4"},
        "accel": accel,
    }
