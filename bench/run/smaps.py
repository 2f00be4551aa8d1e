"""A hypervisor's memory by what holds it: guest RAM, the TCG translation cache, the VMM.

``/proc/PID/smaps`` gives the PSS of every mapping of the hypervisor process. The mappings
are told apart by what they are, never by their sizes:

- guest RAM: the VM's RAM is a named memfd memory backend (``-object
  memory-backend-memfd``, libvirt's ``<memoryBacking><source type='memfd'/>``); QEMU names
  that file after the backend's type, so smaps shows ``/memfd:memory-backend-memfd (deleted)``;
- the TCG translation cache: the buffer QEMU's TCG writes generated host code into, the one
  anonymous mapping that is readable, writable and executable at once (``rwxp``; sized by
  ``-accel tcg,tb-size=N``), or, where QEMU splits writing from executing (split-wx), its
  ``/memfd:tcg-jit`` mapped twice. A KVM VM runs guest code natively and has neither;
- the VMM: everything else (QEMU's binary, libraries, heap, device state, firmware copies).

The parts come from the same sample tick as ``pss_bytes`` (smaps_rollup, read just before),
so they sum to it within rounding (each mapping's PSS is rounded down to a kB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# QEMU's hostmem-memfd names its file after the type, whatever the backend's id.
GUEST_RAM_MEMFD = "/memfd:memory-backend-memfd"
# QEMU's split-wx translation buffer (a memfd mapped once writable, once executable).
TCG_JIT_MEMFD = "/memfd:tcg-jit"
PARTS = ("vm_ram_pss_bytes", "tcg_cache_pss_bytes", "vmm_pss_bytes")
# Why a VM's memory rows have no split, when its RAM is not a memfd this module can name.
NO_MEMFD = (
    "no vm_ram/tcg_cache/vmm split: the hypervisor's guest RAM is not a named memfd "
    f"({GUEST_RAM_MEMFD} absent from its smaps)"
)
SPLIT_DENIED = (
    "no vm_ram/tcg_cache/vmm split: /proc/PID/smaps of another user's process (libvirt's "
    "qemu user) is readable by its owner and root only"
)
# What each part's rows say they are.
PART_DETAIL = {
    "vm_ram_pss_bytes": f"PSS of the guest RAM mapping ({GUEST_RAM_MEMFD}): the pages the guest "
    "touched",
    "tcg_cache_pss_bytes": "PSS of the TCG translation buffer (the anonymous rwx mapping): the "
    "emulator's generated code; 0 under KVM",
    "vmm_pss_bytes": "PSS of every other mapping of the hypervisor process (its binary, "
    "libraries, heap, device state)",
}


@dataclass(frozen=True)
class Mapping:
    """One smaps entry: its address range, permissions, path ('' anonymous) and PSS."""

    start: int
    end: int
    perms: str
    inode: int
    path: str
    pss_bytes: int

    @property
    def part(self) -> str:
        """Which part of a VM's memory this mapping holds (one of PARTS)."""
        if self.path.startswith(GUEST_RAM_MEMFD):
            return "vm_ram_pss_bytes"
        anonymous = self.inode == 0 and not self.path
        if (anonymous and self.perms.startswith("rwx")) or self.path.startswith(TCG_JIT_MEMFD):
            return "tcg_cache_pss_bytes"
        return "vmm_pss_bytes"


@dataclass(frozen=True)
class PssSplit:
    """A hypervisor's PSS in its three parts (bytes), and how many mappings each had."""

    vm_ram_pss_bytes: int
    tcg_cache_pss_bytes: int
    vmm_pss_bytes: int
    ram_mappings: int
    tcg_mappings: int

    @property
    def total_bytes(self) -> int:
        return self.vm_ram_pss_bytes + self.tcg_cache_pss_bytes + self.vmm_pss_bytes

    def sample(self) -> dict[str, int]:
        return {part: getattr(self, part) for part in PARTS}


def parse_smaps(text: str) -> list[Mapping]:
    """The mappings of a ``/proc/PID/smaps`` text, each with its PSS."""
    mappings: list[Mapping] = []
    head: list[str] | None = None
    pss = 0

    def close() -> None:
        if head is not None:
            start, _, end = head[0].partition("-")
            path = " ".join(head[5:]) if len(head) > 5 else ""
            inode = int(head[4]) if len(head) > 4 and head[4].isdigit() else 0
            mappings.append(Mapping(int(start, 16), int(end, 16), head[1], inode, path, pss))

    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if "-" in words[0] and not words[0].endswith(":"):
            close()
            head, pss = words, 0
        elif words[0] == "Pss:" and len(words) > 1:
            pss = int(words[1]) * 1024
    close()
    return mappings


def split_pss(text: str) -> PssSplit | None:
    """The three parts of a hypervisor's smaps text; None when no mapping is its guest RAM
    memfd (then the parts cannot be told apart without guessing)."""
    sums = dict.fromkeys(PARTS, 0)
    counts = dict.fromkeys(PARTS, 0)
    for mapping in parse_smaps(text):
        sums[mapping.part] += mapping.pss_bytes
        counts[mapping.part] += 1
    if not counts["vm_ram_pss_bytes"]:
        return None
    return PssSplit(
        **sums,
        ram_mappings=counts["vm_ram_pss_bytes"],
        tcg_mappings=counts["tcg_cache_pss_bytes"],
    )


def hypervisor_split(pid: int, sample: dict[str, int]) -> tuple[dict[str, int], str]:
    """``sample`` (one tick of a VM's memory) with the three parts added when it holds
    ``pss_bytes`` (a full tick), and why not otherwise ("" when added or not a full tick)."""
    if "pss_bytes" not in sample:
        return sample, ""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text(errors="replace")
    except PermissionError:
        return sample, SPLIT_DENIED
    except OSError:  # the process ended meanwhile: the tick keeps what it had
        return sample, ""
    split = split_pss(text)
    if split is None:
        return sample, NO_MEMFD
    return {**sample, **split.sample()}, ""
