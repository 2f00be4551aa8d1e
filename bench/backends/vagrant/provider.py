"""Which Vagrant provider runs a scenario, and why: libvirt or VirtualBox, by what boots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.backends.base import BackendError, BackendUnsupported

PROVIDERS = ("virtualbox", "libvirt")
BOOTS = ("kernel", "disk")


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
    fits: tuple[str, ...]
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
