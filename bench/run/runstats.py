"""What a run did, counted as it goes: the progress line, the last lines and the exit code
read it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Missing:
    """What this host lacks for an engine or a guest, and the command that gives it (or "").
    Kept apart so the end-of-run summary can repeat only the fix."""

    cause: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.cause}; fix: {self.fix}" if self.fix else self.cause


@dataclass
class RunStats:
    ok: int = 0
    failed: int = 0
    unsupported: int = 0  # trials not run: the engine, or this guest on it, cannot run here
    unavailable: dict[str, Missing] = field(default_factory=dict)
    # (backend, guest) -> why the engine cannot run this guest (it runs others)
    unsupported_guests: dict[tuple[str, str], str] = field(default_factory=dict)
    guests_unavailable: dict[str, Missing] = field(default_factory=dict)  # guest -> why not here
    down: dict[str, str] = field(default_factory=dict)  # backend -> why it stopped mid-run
    accels: dict[str, str] = field(default_factory=dict)  # backend -> accelerator that ran
    planned: int = 0  # trials this run plans so far (repetitions = "auto" adds rounds)
    to_do: dict[str, int] = field(default_factory=dict)  # backend -> planned trials not run yet
    budget_over: bool = False  # the time budget ended: trials were left unstarted
    # 'busybox/busybox ready N=1: qemu ready_s (±7.2 %)': groups short of their target
    above_target: list[str] = field(default_factory=list)

    @property
    def could_not_run(self) -> bool:
        """Something this host cannot run: an engine, a guest, a guest on an engine, a size."""
        return bool(self.unsupported or self.unavailable or self.guests_unavailable)

    def exit_code(self, strict: bool = False, claims_checked: int | None = None) -> int:
        """1 when a trial failed or timed out, when nothing of what it tried ran ok or no claim could be
        checked (``claims_checked`` = 0), and with ``strict`` when something could not run
        here; else 0: what could not run here is said, not failed."""
        attempted = self.ok + self.failed + self.unsupported  # 0: a resumed run had all done
        if self.failed or (attempted and not self.ok) or claims_checked == 0:
            return 1
        return 1 if strict and self.could_not_run else 0
