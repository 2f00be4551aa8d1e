"""Declared facts: the key=value words of the ``detail`` column, each declared once with
its type and meaning, and the one parser the reading side uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetailKey:
    """A fact a row carries in its ``detail`` as ``key=value``: declared here once, so the
    writers (runner, trials, engines) and the readers (dataset, claims, charts) agree on it.

    ``column``: the dataset parses it into a typed column of that name (a fact every row of
    a kind has); the others stay in the row's parsed ``facts``."""

    name: str
    type: type  # str, int or float: what parse_detail returns for its value
    meaning: str
    column: bool = False


DETAIL_KEYS: dict[str, DetailKey] = {
    key.name: key
    for key in (
        DetailKey(
            "workload", str, "what the guest ran (ready, idle, ...): every trial's rows", True
        ),
        DetailKey("boot", str, "how a VM booted: kernel, bios, uefi or disk", True),
        DetailKey("guest_init", str, "the guest's PID 1 as its READY line names it", True),
        DetailKey("guest_kernel", str, "the kernel release the guest reported", True),
        DetailKey("host_kernel", str, "the host's kernel release beside it", True),
        DetailKey("guest_arch", str, "the architecture a foreign-arch guest was built for", True),
        DetailKey("host_arch", str, "the host's architecture (dpkg name: amd64, arm64)", True),
        DetailKey("shim", str, "the process a shim_pss_bytes row measured (conmon, ...)", True),
        DetailKey("readiness", str, "what READY means: serial-marker or ssh-reachable", True),
        DetailKey("marker", str, "banner: READY is another system's boot banner", True),
        DetailKey("os", str, "the system a guest that is not Linux boots (memtest86+)", True),
        DetailKey("artefact", str, "which file a size row measured (kernel, disk, ...)", True),
        DetailKey("instance", str, "k/n: the k-th of n instances started together"),
        DetailKey("arch", str, "the architecture the guest's uname -m reported"),
        DetailKey("kernel", str, "the kernel a foreign-arch guest reported"),
        DetailKey("memory_mib", int, "the guest RAM a VM was given (MiB)"),
        DetailKey("machine", str, "the qemu machine type and its options"),
        DetailKey("provider", str, "Vagrant's provider (libvirt, virtualbox)"),
        DetailKey("box", str, "the Vagrant box a trial booted"),
        DetailKey("domain_type", str, "libvirt's domain type (kvm, qemu)"),
        DetailKey("container", str, "the container's short id"),
        DetailKey("runs", str, "what a container runs as PID 1"),
        DetailKey("tag", str, "the container image's tag"),
        DetailKey("podman_flags", str, "extra flags podman needed on this host"),
        DetailKey("virtual_bytes", int, "a disk image's virtual size"),
        DetailKey("scenario_guest", str, "the guest a scenario planned (a resumed run's check)"),
        DetailKey("banner", str, "another system's banner, quoted (its first word as a fact)"),
        # A repetitions row (repetitions = "auto", a time budget): why its group stopped.
        DetailKey("stopped", str, "target-reached, max-reached or budget-over"),
        DetailKey("target_ci_pct", float, "the scenario's target: CI within this % of the median"),
        DetailKey("ci_pct", str, "metric:% of each group, how far its median's CI reaches"),
    )
}
# A value may end a clause ("boot=disk: ...", "(arch=aarch64)"): that punctuation is not part
# of it.
_VALUE_END = ":;,)"


def parse_detail(detail: str) -> dict[str, str | int | float]:
    """The declared facts of a ``detail`` field, typed (``DETAIL_KEYS``): the one parser.

    Other words (free text, an error's reason) and keys this version does not declare are
    left out; a value that does not parse as its type is left out too, never guessed."""
    facts: dict[str, str | int | float] = {}
    for word in str(detail).split():
        key, sep, value = word.partition("=")
        declared = DETAIL_KEYS.get(key) if sep else None
        if declared is None or key in facts:
            continue
        value = value.rstrip(_VALUE_END)
        if declared.type is str:
            facts[key] = value
            continue
        try:
            facts[key] = declared.type(value)
        except ValueError:
            continue
    return facts


def detail_reason(detail: str) -> str:
    """A failed or unsupported trial's reason: its detail less the leading key=value words
    every row of the trial carries (workload=, boot=)."""
    words = str(detail).split()
    start = next((i for i, word in enumerate(words) if "=" not in word), len(words))
    return " ".join(words[start:])


def detail_word(key: str, value: object) -> str:
    """``key=value`` for a declared key (KeyError for one that is not): for the writers."""
    return f"{DETAIL_KEYS[key].name}={value}"
