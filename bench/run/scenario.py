"""Scenario files (TOML) -> validated Scenario objects.

Every scenario key is declared once in a table below with its type, range and default, so
adding a key is one line; each engine declares its own ``[backend.X]`` keys in its module
(``Backend.options``), and the guests are the ones bench.guests can build. Every error names
the file, the key and what was expected.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.backends import engine_names, engines
from bench.errors import InputError
from bench.guests import ARCHES, GUEST_BUILDERS, split_guest_name
from bench.run.options import Option, hint, list_of, number_in, one_of, text, whole_in

WORKLOADS = ("ready", "idle", "cpu")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_REPETITIONS = 1000
MAX_INSTANCES = 256
# Suites include suites; deeper than this is a mistake (or a generated chain), and Python's
# recursion limit would end it with a traceback instead of a line naming the file.
MAX_SUITE_DEPTH = 32
AUTO = "auto"  # repetitions = "auto": rounds until every group's interval is narrow enough


def _repetitions(value: Any) -> int | str:
    """A whole number of measured rounds, or "auto" (min_repetitions .. max_repetitions)."""
    if value == AUTO:
        return AUTO
    try:
        return whole_in(1, MAX_REPETITIONS)(value)
    except ValueError:
        raise ValueError(
            f'expected a whole number from 1 to {MAX_REPETITIONS} or "auto", got {value!r}'
        ) from None


class ScenarioError(InputError):
    """Bad input in a scenario file: one line naming the file, the key and what is expected."""

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        self.path = str(path)
        self.key = key
        self.message = message
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + message)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError(
            f"expected a name of lower-case letters, digits and '-' (e.g. 'busybox'), got {value!r}"
        )
    return value


def _guest(value: Any) -> str:
    """A guest a builder in bench.guests makes, optionally for another architecture."""
    if isinstance(value, str) and split_guest_name(value)[0] in GUEST_BUILDERS:
        return value
    names = sorted(GUEST_BUILDERS)
    raise ValueError(
        f"expected one of {', '.join(names)}, optionally ending in "
        f"{' or '.join('-' + a for a in ARCHES)} for another architecture, "
        f"got {value!r}{hint(value, names)}"
    )


def _backend(value: Any) -> str:
    return one_of(engine_names())(value)


SCENARIO_KEYS: dict[str, Option] = {
    "name": Option(_name, required=True),
    "description": Option(text(), default=""),
    "guests": Option(list_of(_guest), required=True),
    "workloads": Option(list_of(one_of(WORKLOADS)), default=("ready", "idle")),
    "backends": Option(list_of(_backend), default=("docker", "qemu")),
    "repetitions": Option(_repetitions, default=10),
    # Only with repetitions = "auto": the rounds run at least and at most, and the target
    # half-width of each group's median's 95% CI, in % of the median.
    "min_repetitions": Option(whole_in(2, MAX_REPETITIONS), default=None),
    "max_repetitions": Option(whole_in(2, MAX_REPETITIONS), default=None),
    "target_ci_pct": Option(number_in(0.1, 100), default=None),
    "warmup": Option(whole_in(0, 100), default=1),
    "timeout_s": Option(number_in(1, 3600), default=120.0),
    "instances": Option(list_of(whole_in(1, MAX_INSTANCES)), default=(1,)),
    "memory_sample_s": Option(number_in(0.1, 600), default=2.0),
    "seed": Option(whole_in(0, 2**31), default=0),
}

# Keys every [backend.X] table accepts besides the ones its engine declares (its ``options``).
COMMON_BACKEND_KEYS: dict[str, Option] = {
    # Overrides [scenario] instances for this backend (density: many containers, few VMs).
    "instances": Option(list_of(whole_in(1, MAX_INSTANCES)), default=None),
}


def backend_keys() -> dict[str, dict[str, Option]]:
    """Every engine's allowed [backend.<name>] keys: the common ones, then its declared ones."""
    return {name: {**COMMON_BACKEND_KEYS, **cls.options} for name, cls in engines().items()}


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    description: str
    guests: tuple[str, ...]
    workloads: tuple[str, ...]
    backends: tuple[str, ...]
    repetitions: int
    warmup: int
    timeout_s: float
    instances: tuple[int, ...]
    memory_sample_s: float
    seed: int
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # repetitions = "auto": ``repetitions`` is then min_repetitions (the rounds always run),
    # and the runner adds rounds up to ``max_repetitions`` until ``target_ci_pct`` is met.
    auto: bool = False
    max_repetitions: int = 0
    target_ci_pct: float = 0.0

    def options(self, backend: str) -> dict[str, Any]:
        return self.backend_options.get(backend, {})

    def instances_for(self, backend: str) -> tuple[int, ...]:
        """The instance counts to run on ``backend``: its own list, else the scenario's."""
        return self.options(backend).get("instances") or self.instances

    def multi_instance(self, backend: str) -> bool:
        """A density scenario (any list but [1]): N instances started at once, measured together."""
        return self.instances_for(backend) != (1,)


def load(path: Path | str) -> list[Scenario]:
    """Load a scenario file, or a suite file whose ``[suite] include`` lists scenario files."""
    path = Path(path)
    data = _read_toml(path)
    if "suite" in data:
        return _load_suite(path, data, seen=(path.resolve(),))
    return [_parse(path, data)]


def _load_suite(path: Path, data: dict, seen: tuple[Path, ...]) -> list[Scenario]:
    _reject_unknown(path, "", data, ("suite",))
    suite = data["suite"]
    if not isinstance(suite, dict):
        raise ScenarioError(path, "suite", "expected a table")
    _reject_unknown(path, "suite.", suite, ("include", "description"))
    includes = suite.get("include")
    if (
        not isinstance(includes, list)
        or not includes
        or not all(isinstance(i, str) for i in includes)
    ):
        raise ScenarioError(path, "suite.include", "expected a list of scenario file names")
    scenarios: list[Scenario] = []
    for name in includes:
        child = (path.parent / name).resolve()
        if child in seen:
            raise ScenarioError(path, "suite.include", f"{name!r} includes itself")
        if not child.is_file():
            raise ScenarioError(path, "suite.include", f"no scenario file {name!r} next to it")
        child_data = _read_toml(child)
        if "suite" in child_data:
            if len(seen) >= MAX_SUITE_DEPTH:
                raise ScenarioError(
                    path,
                    "suite.include",
                    f"{name!r} is a suite {len(seen) + 1} levels deep; "
                    f"suite files nest at most {MAX_SUITE_DEPTH} deep",
                )
            scenarios += _load_suite(child, child_data, (*seen, child))
        else:
            scenarios.append(_parse(child, child_data))
    names = [s.name for s in scenarios]
    for name in names:
        if names.count(name) > 1:
            raise ScenarioError(path, "suite.include", f"scenario name {name!r} appears twice")
    return scenarios


def _read_toml(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(path, "", "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(path, "", "is a folder, expected a .toml scenario file") from None
    except OSError as e:
        raise ScenarioError(path, "", f"cannot read: {e.strerror}") from None
    except ValueError as e:  # e.g. a NUL byte in the file name
        raise ScenarioError(path, "", f"cannot read: {e}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError(path, "", "is not UTF-8 text, expected a TOML scenario file") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(path, "", f"is not valid TOML: {e}") from None


def _reject_unknown(
    path: Path, prefix: str, table: dict, allowed: tuple[str, ...] | list[str]
) -> None:
    for key in table:
        if key not in allowed:
            raise ScenarioError(
                path,
                prefix + str(key),
                f"unknown key{hint(key, allowed)}; allowed: {', '.join(allowed)}",
            )


def _check_table(path: Path, prefix: str, table: Any, keys: dict[str, Option]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ScenarioError(path, prefix.rstrip("."), "expected a table")
    _reject_unknown(path, prefix, table, list(keys))
    values: dict[str, Any] = {}
    for key, spec in keys.items():
        if key not in table:
            if spec.required:
                raise ScenarioError(path, prefix + key, "is required")
            values[key] = spec.default
            continue
        try:
            values[key] = spec.check(table[key])
        except ValueError as e:
            raise ScenarioError(path, prefix + key, str(e)) from None
    return values


def _parse(path: Path, data: dict) -> Scenario:
    _reject_unknown(path, "", data, ("scenario", "backend"))
    if "scenario" not in data:
        raise ScenarioError(path, "scenario", "is required: a [scenario] table")
    values = _check_table(path, "scenario.", data["scenario"], SCENARIO_KEYS)
    backend_tables = data.get("backend", {})
    if not isinstance(backend_tables, dict):
        raise ScenarioError(path, "backend", "expected tables like [backend.qemu]")
    allowed = backend_keys()
    _reject_unknown(path, "backend.", backend_tables, list(allowed))
    options = {
        name: _check_table(path, f"backend.{name}.", backend_tables.get(name, {}), keys)
        for name, keys in allowed.items()
    }
    scenario = Scenario(path=path, backend_options=options, **_repetition_values(path, values))
    alone = {"ready", "cpu"} & set(scenario.workloads)  # timed one instance at a time
    if alone and any(scenario.multi_instance(b) for b in scenario.backends):
        raise ScenarioError(
            path,
            "scenario.workloads",
            "a scenario with instances other than [1] measures idle instances together: "
            'expected workloads = ["idle"]',
        )
    return scenario


AUTO_DEFAULTS = {"min_repetitions": 5, "max_repetitions": 20, "target_ci_pct": 5.0}


def _repetition_values(path: Path, values: dict[str, Any]) -> dict[str, Any]:
    """The [scenario] values as Scenario fields: "auto" and its three keys checked together."""
    values = dict(values)
    given = {k: values.pop(k) for k in AUTO_DEFAULTS}
    if values["repetitions"] != AUTO:
        for key, value in given.items():
            if value is not None:
                raise ScenarioError(
                    path,
                    f"scenario.{key}",
                    f'only with repetitions = "auto" (repetitions is {values["repetitions"]})',
                )
        return values
    auto = {k: AUTO_DEFAULTS[k] if v is None else v for k, v in given.items()}
    if auto["max_repetitions"] < auto["min_repetitions"]:
        raise ScenarioError(
            path,
            "scenario.max_repetitions",
            f"expected at least min_repetitions ({auto['min_repetitions']}), "
            f"got {auto['max_repetitions']}",
        )
    return values | {
        "repetitions": auto["min_repetitions"],
        "auto": True,
        "max_repetitions": auto["max_repetitions"],
        "target_ci_pct": auto["target_ci_pct"],
    }
