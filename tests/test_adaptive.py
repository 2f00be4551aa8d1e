"""repetitions = "auto" and the time budget, against a fake engine of fixed spread."""

import itertools
import time

import pytest
from helpers.fakes import OK_LINES, FakeBackend, run_with

from bench.run import runner as runner_mod
from bench.run.adaptive import ci_pct
from bench.run.runner import RunConfig, effective
from bench.run.scenario import load
from bench.run.trial import Measurement, TrialOutcome

# A fixed spread: about ±10 % around 1 s, the same sequence every run.
SPREAD = [1.0 + 0.02 * ((k * 7) % 11 - 5) for k in range(200)]


def auto_scenario(tmp_path, extra: str = "", backends='["docker", "qemu"]'):
    path = tmp_path / "auto.toml"
    path.write_text(
        f'[scenario]\nname = "a"\nguests = ["busybox"]\nworkloads = ["ready"]\n'
        f'backends = {backends}\nrepetitions = "auto"\nwarmup = 0\ntimeout_s = 5\n{extra}'
    )
    return path


def fixed_trials(monkeypatch, values: dict[str, list[float]], sleep_s: float = 0.0):
    """Each engine's trials give the next of its values as ready_s (the engine boundary
    faked one level up: the values, not a clock, decide when the answer is clear)."""
    counters = {name: itertools.count() for name in values}

    def fake_run_trial(backend, *_args, **_kwargs):
        time.sleep(sleep_s)
        value = values[backend.name][next(counters[backend.name])]
        return TrialOutcome("ok", accel="none", measurements=[Measurement("ready_s", value)])

    monkeypatch.setattr(runner_mod, "run_trial", fake_run_trial)


def engines():
    return {
        "docker": FakeBackend("docker", OK_LINES, built_now=False),
        "qemu": FakeBackend("qemu", OK_LINES, built_now=False),
    }


def stops(rows):
    return {
        r["backend"]: (float(r["value"]), r["detail"]) for r in rows if r["metric"] == "repetitions"
    }


def expected_stop(values: list[float], low: int, high: int, target: float) -> int:
    """The first round from ``low`` on whose interval is within target, else ``high``."""
    return next((n for n in range(low, high + 1) if ci_pct(values[:n]) <= target), high)


def test_auto_keys_and_their_defaults(tmp_path):
    [s] = load(auto_scenario(tmp_path))
    assert (s.auto, s.repetitions, s.max_repetitions, s.target_ci_pct) == (True, 5, 20, 5.0)
    [s] = load(auto_scenario(tmp_path, "min_repetitions = 3\nmax_repetitions = 9\n"))
    assert (s.repetitions, s.max_repetitions) == (3, 9)
    fixed = effective(s, RunConfig("r", "h", repetitions=4))
    assert (fixed.auto, fixed.repetitions) == (False, 4)  # --repetitions fixes the number
    assert not effective(s, RunConfig("r", "h", quick=True)).auto


def test_adaptive_rounds_stop_where_the_interval_reaches_the_target(
    tmp_path,
    monkeypatch,
    fake_guest,
):
    """A constant engine stops at min_repetitions, one of fixed spread where its median's
    interval first reaches the target; every added round visits both engines once."""
    target = 5.5
    wanted = expected_stop(SPREAD, 4, 30, target)
    assert 4 < wanted < 30  # the spread makes it go on past the minimum, and stop before max
    fixed_trials(monkeypatch, {"docker": [0.5] * 200, "qemu": SPREAD})
    extra = f"min_repetitions = 4\nmax_repetitions = 30\ntarget_ci_pct = {target}\n"
    stats, rows = run_with(tmp_path, monkeypatch, engines(), auto_scenario(tmp_path, extra))
    ready = [r for r in rows if r["metric"] == "ready_s"]
    assert sum(r["backend"] == "qemu" for r in ready) == wanted
    assert sum(r["backend"] == "docker" for r in ready) == wanted  # rounds visit both
    assert stats.ok == 2 * wanted and stats.planned == 2 * wanted
    assert [int(r["trial"]) for r in ready if r["backend"] == "qemu"] == list(range(1, wanted + 1))
    said = stops(rows)
    assert said["qemu"][0] == wanted and "stopped=target-reached" in said["qemu"][1]
    assert "target_ci_pct=5.5" in said["qemu"][1] and "ci_pct=ready_s:" in said["qemu"][1]
    assert stats.above_target == []


def test_adaptive_rounds_end_at_the_maximum_and_say_so(
    tmp_path,
    monkeypatch,
    fake_guest,
):
    wide = [1.0, 3.0] * 100  # never within 1 %
    fixed_trials(monkeypatch, {"docker": wide, "qemu": wide})
    extra = "min_repetitions = 3\nmax_repetitions = 6\ntarget_ci_pct = 1\n"
    stats, rows = run_with(tmp_path, monkeypatch, engines(), auto_scenario(tmp_path, extra))
    assert sum(r["metric"] == "ready_s" for r in rows) == 12
    said = stops(rows)
    assert {b: (n, "stopped=max-reached" in d) for b, (n, d) in said.items()} == {
        "docker": (6, True),
        "qemu": (6, True),
    }
    assert len(stats.above_target) == 2 and "(max-reached)" in stats.above_target[0]


def test_a_time_budget_starts_no_trial_once_spent_and_names_the_groups_above_target(
    tmp_path,
    monkeypatch,
    fake_guest,
):
    wide = [1.0, 3.0] * 100
    fixed_trials(monkeypatch, {"docker": wide, "qemu": wide}, sleep_s=0.3)
    extra = "min_repetitions = 3\nmax_repetitions = 100\ntarget_ci_pct = 1\n"
    config = RunConfig("run1", "host1", time_budget_s=2.0)
    started = time.monotonic()
    stats, rows = run_with(
        tmp_path, monkeypatch, engines(), auto_scenario(tmp_path, extra), config=config
    )
    took_s = time.monotonic() - started
    assert took_s < 2.0 + 0.3 + 1.5  # the budget, the trial in flight, the run's own set-up
    assert stats.budget_over
    n = sum(r["metric"] == "ready_s" for r in rows)
    assert 4 <= n <= 8  # about 2 s / 0.3 s
    assert all("stopped=budget-over" in d for _, d in stops(rows).values())
    assert len(stops(rows)) == 2
    assert any("docker ready_s" in line for line in stats.above_target)


def test_ci_pct_is_the_reach_of_the_medians_interval():
    assert ci_pct([2.0, 2.0, 2.0]) == 0.0
    assert ci_pct([1.0]) == pytest.approx(float("inf"))
    assert 0 < ci_pct(SPREAD[:20]) < ci_pct(SPREAD[:5])
