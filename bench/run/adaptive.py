"""Repetitions that adapt: more rounds where the answer is not clear yet, within a time budget.

A scenario with ``repetitions = "auto"`` runs its ``min_repetitions`` rounds as planned
(bench.run.planning); then, one round at a time, the block (scenario, guest, workload,
instances) whose widest interval is furthest above target gets another round, every engine
of it in a fresh random order, until every group's median is known to ``target_ci_pct`` %
or the block has ``max_repetitions`` rounds. A group is (engine, metric) of the block's
warm trials, for the timings and sizes (units s and B); the interval is the 95 % bootstrap
CI of the median the report shows (bench.analysis.stats.median_ci), and "within target"
means both ends lie within ``target_ci_pct`` % of the median.

Each block of an auto scenario, and each block a time budget cut short, ends with one
``repetitions`` row per engine saying how many measured trials it got and why it stopped:
``target-reached``, ``max-reached`` or ``budget-over``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from bench.analysis.stats import median_ci
from bench.results import unit_of
from bench.run.hostload import HOST_METRICS
from bench.run.planning import PlannedTrial
from bench.run.scenario import Scenario

TARGET, MAXIMUM, BUDGET = "target-reached", "max-reached", "budget-over"
GATING_UNITS = ("s", "B")
MEASURED_PHASES = ("warm", "cold")  # rounds that count; only warm trials give the samples
COUNTED = ("ok", "failed", "timeout")  # outcomes of a trial that ran

BlockKey = tuple[str, str, str, int]  # scenario, guest, workload, instances


def ci_pct(values: list[float]) -> float:
    """How far the median's 95 % CI reaches from the median, in % of it (inf: no interval,
    and one value is no interval even when the report takes it as exact)."""
    if len(values) < 2:
        return math.inf
    ci = median_ci(values)
    if not ci.defined:
        return math.inf
    reach = max(ci.estimate - ci.low, ci.high - ci.estimate)
    if ci.estimate == 0:
        return 0.0 if reach == 0 else math.inf
    return reach / abs(ci.estimate) * 100


@dataclass
class Block:
    scenario: Scenario
    guest: str
    workload: str
    instances: int
    backends: tuple[str, ...]
    # (backend, metric) -> the values of its warm ok trials, in run order
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    trials: dict[str, set[int]] = field(default_factory=dict)  # backend -> measured trials
    ok: dict[str, int] = field(default_factory=dict)  # backend -> ok measured trials
    stopped: str = ""
    added: int = 0  # rounds added by this module

    @property
    def key(self) -> BlockKey:
        return (self.scenario.name, self.guest, self.workload, self.instances)

    @property
    def rounds(self) -> int:
        return max((len(t) for t in self.trials.values()), default=0)

    def widths(self, backends: Iterable[str] | None = None) -> dict[tuple[str, str], float]:
        """ci_pct of every group, of the given backends (default: all of the block's)."""
        keep = set(self.backends if backends is None else backends)
        return {g: ci_pct(v) for g, v in sorted(self.samples.items()) if g[0] in keep}

    def above_target(self, backends: Iterable[str] | None = None) -> list[str]:
        """'docker ready_s (7.2 %)' for each group whose interval is wider than the target."""
        target = self.scenario.target_ci_pct
        return [
            f"{b} {m} ({_pct(w)})"
            for (b, m), w in self.widths(backends).items()
            if not target or w > target
        ]


def _pct(width: float) -> str:
    return "no interval" if math.isinf(width) else f"±{width:.1f} %"


@dataclass(frozen=True)
class Stop:
    """Why one engine's trials of a block stopped (one ``repetitions`` row)."""

    block: Block
    backend: str
    reason: str
    trials: int
    widths: dict[str, float]  # metric -> ci_pct

    @property
    def marker(self) -> PlannedTrial:
        """The trial the row is written as: number 0, phase warm (the block's rounds)."""
        b = self.block
        return PlannedTrial(b.scenario, b.guest, self.backend, b.workload, b.instances, 0, "warm")

    @property
    def short_of_target(self) -> str:
        """'busybox/busybox ready: qemu ready_s (±7.2 %) (budget-over)', or "" when none is."""
        above = self.block.above_target([self.backend]) if self.reason != TARGET else []
        if not above:
            return ""
        b = self.block
        where = f"{b.scenario.name}/{b.guest} {b.workload}"
        where += f" N={b.instances}" if b.instances != 1 else ""
        return f"{where}: {', '.join(above)} ({self.reason})"

    @property
    def detail(self) -> str:
        words = [f"workload={self.block.workload}", f"stopped={self.reason}"]
        if self.block.scenario.auto:
            words.append(f"target_ci_pct={self.block.scenario.target_ci_pct:g}")
        shown = [f"{m}:{'inf' if math.isinf(w) else f'{w:.1f}'}" for m, w in self.widths.items()]
        if shown:
            words.append("ci_pct=" + ",".join(shown))
        return " ".join(words)


class Adaptive:
    """The blocks of a run, what their trials measured, and the rounds still worth running."""

    def __init__(self, trials: list[PlannedTrial]) -> None:
        """``trials``: the whole fixed plan of the run (done ones included when resuming)."""
        self.blocks: dict[BlockKey, Block] = {}
        self.next_trial: dict[tuple[str, str, str], int] = {}
        measured: dict[tuple[BlockKey, str], int] = {}  # (block, backend) -> planned trials
        for t in trials:
            key = (t.scenario.name, t.guest, t.workload, t.instances)
            block = self.blocks.get(key)
            if block is None:
                block = self.blocks[key] = Block(t.scenario, t.guest, t.workload, t.instances, ())
            if t.backend not in block.backends:
                block.backends += (t.backend,)
            if t.phase != "warmup":
                measured[key, t.backend] = measured.get((key, t.backend), 0) + 1
            self._bump(t.scenario.name, t.guest, t.backend, t.trial)
        # The measured rounds each block's fixed plan has (its engines may differ in count).
        self.planned: dict[BlockKey, int] = {}
        for (key, _), n in measured.items():
            self.planned[key] = max(self.planned.get(key, 0), n)

    def _bump(self, scenario: str, guest: str, backend: str, trial: int) -> None:
        key = (scenario, guest, backend)
        self.next_trial[key] = max(self.next_trial.get(key, 1), trial + 1)

    def observe(
        self,
        trial: PlannedTrial,
        status: str,
        measurements: Iterable[tuple[str, float]],
    ) -> None:
        """A trial's outcome: a measured trial counts as a round; a warm ok one gives samples."""
        block = self.blocks.get((trial.scenario.name, trial.guest, trial.workload, trial.instances))
        if block is None or trial.phase not in MEASURED_PHASES or status not in COUNTED:
            return
        self._bump(trial.scenario.name, trial.guest, trial.backend, trial.trial)
        block.trials.setdefault(trial.backend, set()).add(trial.trial)
        if status != "ok":
            return
        block.ok[trial.backend] = block.ok.get(trial.backend, 0) + 1
        if trial.phase != "warm":
            return
        for metric, value in measurements:
            if unit_of(metric) in GATING_UNITS and metric not in HOST_METRICS:
                block.samples.setdefault((trial.backend, metric), []).append(value)

    def observe_rows(self, rows: list[dict[str, str]], scenarios: dict[str, Scenario]) -> None:
        """What an earlier attempt of this run measured (--resume): the same as observe()."""
        trials: dict[tuple, tuple[PlannedTrial, str, list[tuple[str, float]]]] = {}
        for row in rows:
            words = row["detail"].split(maxsplit=1)
            workload = words[0].removeprefix("workload=") if words else ""
            scenario = scenarios.get(row["scenario"])
            if scenario is None or row["metric"] == "repetitions" or row["phase"] == "build":
                continue
            key = (row["scenario"], row["guest"], row["backend"], int(row["trial"]), workload)
            planned = PlannedTrial(
                scenario,
                row["guest"],
                row["backend"],
                workload,
                int(row["instances"]),
                int(row["trial"]),
                row["phase"],
            )
            _, _, values = trials.setdefault(key, (planned, row["status"], []))
            if row["value"]:
                values.append((row["metric"], float(row["value"])))
        for planned, status, values in trials.values():
            self.observe(planned, status, values)

    def _settle(self, block: Block, usable: list[str]) -> None:
        """Mark a block of an auto scenario stopped when its target or its maximum is reached."""
        if block.stopped or not block.scenario.auto:
            return
        if block.rounds < self.planned.get(block.key, 0):
            return  # its planned rounds are not all done yet
        if not block.above_target(usable):
            block.stopped = TARGET
        elif block.rounds >= block.scenario.max_repetitions:
            block.stopped = MAXIMUM

    def rounds(
        self, can_run: Callable[[str, str], bool], on_round: Callable[[list[str]], None]
    ) -> Iterator[PlannedTrial]:
        """Round after round for the open block with the widest interval (relative to its
        target), each engine once in a fresh random order; ends when no block needs one.
        ``can_run(backend, guest)``: False for an engine that cannot run the guest here."""
        while True:
            widest: tuple[float, Block] | None = None
            for block in self.blocks.values():
                usable = self._usable(block, can_run)
                self._settle(block, usable)
                if block.stopped or not block.scenario.auto or not usable:
                    continue
                width = max(block.widths(usable).values(), default=math.inf)
                score = width / block.scenario.target_ci_pct
                if widest is None or score > widest[0]:
                    widest = (score, block)
            if widest is None:
                return
            block = widest[1]
            order = list(self._usable(block, can_run))
            block.added += 1
            rng = random.Random(f"{block.scenario.seed}/{'/'.join(map(str, block.key))}")
            for _ in range(block.added):
                rng.shuffle(order)
            on_round(order)
            for backend in order:
                key = (block.scenario.name, block.guest, backend)
                number = self.next_trial.get(key, 1)
                self.next_trial[key] = number + 1
                yield PlannedTrial(
                    block.scenario,
                    block.guest,
                    backend,
                    block.workload,
                    block.instances,
                    number,
                    "warm",
                )

    def _usable(self, block: Block, can_run: Callable[[str, str], bool]) -> list[str]:
        """The block's engines worth another trial: runnable here, and not failing every one."""
        return [
            b
            for b in block.backends
            if can_run(b, block.guest) and not (block.trials.get(b) and not block.ok.get(b))
        ]

    def stops(self, budget_over: bool, can_run: Callable[[str, str], bool]) -> list[Stop]:
        """One Stop per engine of every auto block, and of every block the budget cut short."""
        found = []
        for block in self.blocks.values():
            usable = self._usable(block, can_run)
            self._settle(block, usable)
            short = block.rounds < self.planned.get(block.key, 0)
            if not block.stopped and budget_over and (block.scenario.auto or short):
                block.stopped = BUDGET
            if not block.stopped:
                continue
            for backend in usable:
                widths = {m: w for (b, m), w in block.widths([backend]).items()}
                trials = len(block.trials.get(backend, ()))
                found.append(Stop(block, backend, block.stopped, trials, widths))
        return found
