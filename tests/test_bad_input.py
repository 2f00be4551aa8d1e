"""Every bad input gets one line naming the file, the key and what is expected; exit 2;
no traceback; nothing started.

The property test drives the CLI's own scenario loading in-process (``cli.main``), with the
runner replaced by a tripwire: if a malformed file ever got as far as starting trials, the
test fails.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from unittest import mock

import pytest
from helpers.scenarios import scenario_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import cli
from bench.backends import engine_names
from bench.guests import GUEST_BUILDERS
from bench.run import runner, scenario
from bench.run.scenario import MAX_SUITE_DEPTH, NAME_RE, SCENARIO_KEYS, WORKLOADS, backend_keys

BASE = {
    "name": "ok",
    "guests": ["busybox"],
    "workloads": ["ready"],
    "backends": ["docker"],
    "repetitions": 1,
    "warmup": 0,
    "timeout_s": 10,
}


def run_cli(path: Path, results: Path) -> tuple[int, str]:
    """``vmbench run PATH`` in-process; the runner must never be reached."""
    err = io.StringIO()
    tripwire = mock.patch.object(
        runner.Runner, "run", side_effect=AssertionError("a malformed scenario started a run")
    )
    with tripwire, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["run", str(path), "--results-dir", str(results)])
    return code, err.getvalue()


def assert_one_line_error(code: int, err: str, path: Path, results: Path) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    line = err.strip()
    assert "\n" not in line, f"more than one line: {err!r}"
    assert line.startswith(f"vmbench: {path}"), line
    assert not results.exists(), "a results folder was created for bad input"
    return line


not_a_name = st.one_of(
    st.text(max_size=80).filter(lambda s: not NAME_RE.match(s)),
    st.sampled_from(["../escape", "a/b", "/etc", "..", "x;rm -rf ~", "$(id)", "A"]),
    st.integers(),
    st.lists(st.just("busybox"), min_size=1),
)
not_a_list_of = {  # lists of things that are not allowed members, or not lists at all
    key: st.one_of(
        st.lists(st.text(max_size=20).filter(lambda v, a=allowed: v not in a), min_size=1),
        st.just([]),
        st.text(max_size=20),
        st.integers(),
    )
    for key, allowed in (
        ("guests", tuple(GUEST_BUILDERS)),
        ("backends", engine_names()),
        ("workloads", WORKLOADS),
    )
}
BAD_VALUES = {
    "name": not_a_name,
    **not_a_list_of,
    "repetitions": st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=1001),
        st.floats(),
        st.text(max_size=5).filter(lambda t: t != "auto"),
    ),
    "min_repetitions": st.one_of(st.integers(max_value=1), st.integers(min_value=1001), st.text()),
    "max_repetitions": st.one_of(st.integers(max_value=1), st.booleans(), st.floats()),
    "target_ci_pct": st.one_of(
        st.floats(max_value=0.0999), st.floats(min_value=100.001), st.text()
    ),
    "warmup": st.one_of(st.integers(max_value=-1), st.integers(min_value=101), st.booleans()),
    "timeout_s": st.one_of(
        st.floats(max_value=0.999), st.floats(min_value=3600.001), st.just(math.nan), st.text()
    ),
    "instances": st.one_of(
        st.lists(st.integers(max_value=0), min_size=1, max_size=4),
        st.lists(st.integers(min_value=257), min_size=1, max_size=4),
        st.just([]),
        st.just([1, 1]),
        st.integers(min_value=1, max_value=8),
    ),
    "memory_sample_s": st.one_of(st.floats(max_value=0.0999), st.floats(min_value=600.001)),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31 + 1)),
    "description": st.one_of(st.integers(), st.text(min_size=201), st.just("two\nlines")),
}
assert set(BAD_VALUES) == set(SCENARIO_KEYS), "a new scenario key needs a bad-value strategy"

key_name = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
BREAKERS = ["name = ", "[scenario", 'name = "dup"', "= 1", "x = [1,", "guests = ['a' 'b']"]


@st.composite
def malformed(draw) -> tuple[bytes, str | None]:
    """A broken scenario file, and the key its error message must name (None: any)."""
    kind = draw(st.sampled_from(["value", "unknown", "missing", "backend", "syntax", "binary"]))
    scenario = dict(BASE)
    if kind == "value":
        key = draw(st.sampled_from(sorted(BAD_VALUES)))
        scenario[key] = draw(BAD_VALUES[key])
        return scenario_text(scenario).encode(), f"scenario.{key}"
    if kind == "unknown":
        key = draw(key_name.filter(lambda k: k not in SCENARIO_KEYS))
        scenario[key] = 1
        return scenario_text(scenario).encode(), f"scenario.{key}"
    if kind == "missing":
        key = draw(st.sampled_from(["name", "guests"]))
        del scenario[key]
        return scenario_text(scenario).encode(), f"scenario.{key}"
    if kind == "backend":
        table = draw(st.sampled_from(sorted(backend_keys())))
        key = draw(key_name.filter(lambda k, t=table: k not in backend_keys()[t]))
        extra = f"[backend.{table}]\n{key} = 1\n"
        return scenario_text(scenario, extra).encode(), f"backend.{table}.{key}"
    if kind == "syntax":
        breaker = draw(st.sampled_from(BREAKERS))
        return scenario_text(scenario, breaker + "\n").encode(), None
    return draw(st.binary(min_size=1, max_size=200)), None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=malformed())
def test_malformed_scenario_files_get_one_line_and_exit_2(tmp_path, case):
    data, key = case
    path = tmp_path / "scenario.toml"
    path.write_bytes(data)
    results = tmp_path / "results"
    code, err = run_cli(path, results)
    line = assert_one_line_error(code, err, path, results)
    if key is not None:
        try:
            tomllib.loads(data.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return  # the generated value broke the TOML itself: the message says so instead
        assert f": {key}: " in line, line


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[scenario]\nname='x'\nguests=['busybox']\nrepetitons=3\n", "did you mean 'repetitions'"),
        ("[scenario]\nname='x'\nguests=['busybox']\nrepetitions=-1\n", "from 1 to 1000"),
        ("[scenario]\nname='x'\nguests=['busybox']\ntimeout_s=0\n", "scenario.timeout_s"),
        ("[scenario]\nname='x'\nguests=['busybox']\ninstances=[100000]\n", "from 1 to 256"),
        ("[scenario]\nname='x'\nguests=['busybx']\n", "did you mean 'busybox'"),
        ("[scenario]\nname='x'\nguests=['busybox']\nbackends=['qmeu']\n", "did you mean 'qemu'"),
        ("[scenario]\nname='x'\nguests=['debian', 'debian']\n", "no repeated items"),
        ("[scenario]\nname='../../etc'\nguests=['busybox']\n", "scenario.name"),
        ("[scenario]\nname='x'\nguests=['busybox']\nrepetitions='10'\n", "got '10'"),
        ("[scenario]\nname='x'\nguests=['busybox']\nrepetitions='Auto'\n", 'or "auto"'),
        (
            "[scenario]\nname='x'\nguests=['busybox']\nrepetitions=5\ntarget_ci_pct=5\n",
            'scenario.target_ci_pct: only with repetitions = "auto"',
        ),
        (
            "[scenario]\nname='x'\nguests=['busybox']\nrepetitions='auto'\nmin_repetitions=8\n"
            "max_repetitions=4\n",
            "scenario.max_repetitions: expected at least min_repetitions (8), got 4",
        ),
        (
            "[scenario]\nname='x'\nguests=['busybox']\nrepetitions='auto'\ntarget_ci=5\n",
            "did you mean 'target_ci_pct'",
        ),
        ("[scenario]\nname='x'\n[backend.qemu]\nmemory_mb=1\n", "scenario.guests: is required"),
        ("[scenario\n", "is not valid TOML"),
    ],
)
def test_typical_mistakes_name_the_key_and_the_fix(tmp_path, text, expected):
    path = tmp_path / "s.toml"
    path.write_text(text)
    results = tmp_path / "results"
    line = assert_one_line_error(*run_cli(path, results), path, results)
    assert expected in line


def test_garbage_and_missing_files(tmp_path):
    results = tmp_path / "results"
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert "not UTF-8" in assert_one_line_error(*run_cli(garbage, results), garbage, results)
    missing = tmp_path / "missing.toml"
    assert "no such file" in assert_one_line_error(*run_cli(missing, results), missing, results)
    assert "is a folder" in assert_one_line_error(*run_cli(tmp_path, results), tmp_path, results)


def cli_usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in err and "\n" not in err.strip(), err
    return err.strip()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--resume", "../../etc"], "run id '../../etc' is not valid"),
        (["run", "--resume", "a/b"], "is not valid"),
        (["clean", "--run", ".."], "is not valid"),
        (["clean", "--run", "-x"], "expected one argument"),
        (["run", "--backends", "dokcer"], "unknown backend 'dokcer'"),
        (["run", "--repetitions", "-3"], "expected 1 to 1000"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_command_lines_are_one_line(argv, expected, capsys):
    assert expected in cli_usage_error(argv, capsys)


def test_bad_results_dir_and_resume_targets(tmp_path, capsys):
    scenario = tmp_path / "s.toml"
    scenario.write_text(scenario_text(BASE))
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert cli.main(["run", str(scenario), "--results-dir", str(a_file)]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err
    results = tmp_path / "results"
    assert cli.main(["run", "--resume", "nosuchrun", "--results-dir", str(results)]) == 2
    assert "no " in capsys.readouterr().err
    assert cli.main(["run", str(scenario), "--resume", "x", "--results-dir", str(results)]) == 2
    assert "give no scenario files" in capsys.readouterr().err
    assert not results.exists()


def test_no_shell_anywhere_in_bench():
    """Scenario values reach argv lists only; nothing in bench/ hands a string to a shell."""
    root = Path(cli.__file__).parents[1]  # all of bench/
    offenders = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(|\bcommands\.", line)
    ]
    assert offenders == []


def test_shell_like_values_are_refused_or_inert(tmp_path):
    """A name that looks like injection is refused; a description is only text."""
    results = tmp_path / "results"
    bad = tmp_path / "bad.toml"
    bad.write_text(scenario_text({**BASE, "name": "x; touch /tmp/pwned"}))
    assert "scenario.name" in assert_one_line_error(*run_cli(bad, results), bad, results)
    from bench.run.scenario import load

    sentinel = tmp_path / "pwned"
    ok = tmp_path / "ok.toml"
    ok.write_text(
        scenario_text({**BASE, "description": f"$(touch {sentinel}); `touch {sentinel}`"})
    )
    (loaded,) = load(ok)
    assert loaded.description.startswith("$(touch")
    assert not sentinel.exists()


@pytest.mark.parametrize("engine", ["qemu", "vagrant", "docker"])
def test_an_unknown_engine_option_names_the_file_the_key_and_the_engines_keys(tmp_path, engine):
    from bench.backends import engine as engine_class

    path = tmp_path / "s.toml"
    path.write_text(scenario_text(BASE, f"[backend.{engine}]\nmemroy_mib = 256\n"))
    results = tmp_path / "results"
    line = assert_one_line_error(*run_cli(path, results), path, results)
    allowed = ["instances", *engine_class(engine).options]
    assert line.startswith(f"vmbench: {path}: backend.{engine}.memroy_mib: unknown key")
    assert line.endswith(f"allowed: {', '.join(allowed)}")
    assert ("did you mean 'memory_mib'" in line) == ("memory_mib" in allowed)


def test_a_suite_chain_of_1000_files_is_refused_in_one_line(tmp_path):
    """Suites nest at most MAX_SUITE_DEPTH deep: a generated chain of 1000 suites gets one
    line naming the file where the limit was reached (not a RecursionError), exit 2."""
    count = 1000
    for i in range(count):
        (tmp_path / f"s{i:04d}.toml").write_text(f'[suite]\ninclude = ["s{i + 1:04d}.toml"]\n')
    (tmp_path / f"s{count:04d}.toml").write_text(scenario_text(BASE))
    results = tmp_path / "results"
    argv = ["run", str(tmp_path / "s0000.toml"), "--results-dir", str(results)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line, f"more than one line: {proc.stderr!r}"
    deepest = tmp_path / f"s{MAX_SUITE_DEPTH - 1:04d}.toml"
    assert line.startswith(f"vmbench: {deepest}: suite.include: "), line
    assert f"nest at most {MAX_SUITE_DEPTH} deep" in line
    assert not results.exists()
    # A chain MAX_SUITE_DEPTH files deep (the last one a scenario) still loads.
    (tmp_path / f"s{MAX_SUITE_DEPTH - 1:04d}.toml").write_text(scenario_text(BASE))
    [loaded] = scenario.load(tmp_path / "s0000.toml")
    assert loaded.name == BASE["name"]
