"""Scenario files (TOML) -> validated Scenario objects.

Every key is declared once in a table below with its type, range and default, so adding a
key is one line, and every error names the file, the key and what was expected.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GUESTS = ("busybox", "debian", "debian-systemd")
# A guest name may end in -<arch> to build it for another architecture: "busybox-arm64".
GUEST_ARCHES = ("amd64", "arm64")
WORKLOADS = ("ready", "idle")
BACKENDS = ("docker", "qemu", "vagrant")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_REPETITIONS = 1000
MAX_INSTANCES = 256


class ScenarioError(Exception):
    """Bad input in a scenario file: one line naming the file, the key and what is expected."""

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        self.path = str(path)
        self.key = key
        self.message = message
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class Key:
    """One allowed key: how to check it and its default (None = required)."""

    check: Callable[[Any], Any]
    default: Any = None
    required: bool = False


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    return check


def _float_in(low: float, high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number from {low} to {high}, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}, got {value!r}")
        return float(value)

    return check


def _text(max_len: int = 200) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or "\n" in value:
            raise ValueError(f"expected one line of text of at most {max_len} characters")
        return value

    return check


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError(
            f"expected a name of lower-case letters, digits and '-' (e.g. 'busybox'), got {value!r}"
        )
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(
                f"expected one of {', '.join(choices)}, got {value!r}{_hint(value, choices)}"
            )
        return value

    return check


def _list_of(item: Callable[[Any], Any], min_len: int = 1, max_len: int = 64) -> Callable:
    def check(value: Any) -> tuple:
        if not isinstance(value, list) or not min_len <= len(value) <= max_len:
            raise ValueError(f"expected a list of {min_len} to {max_len} items, got {value!r}")
        items = tuple(item(v) for v in value)
        if len(set(items)) != len(items):
            raise ValueError(f"expected no repeated items, got {value!r}")
        return items

    return check


def _file_url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("file://") or len(value) > 1000:
        raise ValueError(
            f"expected a file:// URL of a .box file (vmbench never downloads boxes), got {value!r}"
        )
    return value


def _guest(value: Any) -> str:
    if isinstance(value, str):
        base, _, arch = value.rpartition("-")
        if base in GUESTS and arch in GUEST_ARCHES:
            return value
    if value in GUESTS:
        return value
    raise ValueError(
        f"expected one of {', '.join(GUESTS)}, optionally ending in "
        f"{' or '.join('-' + a for a in GUEST_ARCHES)} for another architecture, "
        f"got {value!r}{_hint(value, GUESTS)}"
    )


def _hint(value: Any, choices: tuple[str, ...] | list[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


SCENARIO_KEYS: dict[str, Key] = {
    "name": Key(_name, required=True),
    "description": Key(_text(), default=""),
    "guests": Key(_list_of(_guest), required=True),
    "workloads": Key(_list_of(_one_of(WORKLOADS)), default=("ready", "idle")),
    "backends": Key(_list_of(_one_of(BACKENDS)), default=("docker", "qemu")),
    "repetitions": Key(_int_in(1, MAX_REPETITIONS), default=10),
    "warmup": Key(_int_in(0, 100), default=1),
    "timeout_s": Key(_float_in(1, 3600), default=120.0),
    "instances": Key(_list_of(_int_in(1, MAX_INSTANCES)), default=(1,)),
    "memory_sample_s": Key(_float_in(0.1, 600), default=2.0),
    "seed": Key(_int_in(0, 2**31), default=0),
}

# Keys every [backend.X] table accepts besides its own.
COMMON_BACKEND_KEYS: dict[str, Key] = {
    # Overrides [scenario] instances for this backend (density: many containers, few VMs).
    "instances": Key(_list_of(_int_in(1, MAX_INSTANCES)), default=None),
}

BACKEND_KEYS: dict[str, dict[str, Key]] = {
    "docker": {},
    "qemu": {
        "memory_mib": Key(_int_in(32, 65536), default=256),
        "cpus": Key(_int_in(1, 64), default=1),
        "machine": Key(_one_of(("pc", "q35")), default="pc"),
        "accel": Key(_one_of(("auto", "kvm", "tcg")), default="auto"),
        "tb_size_mib": Key(_int_in(0, 4096), default=0),
    },
    "vagrant": {
        "provider": Key(_one_of(("auto", "virtualbox", "libvirt")), default="auto"),
        "memory_mib": Key(_int_in(32, 65536), default=256),
        "cpus": Key(_int_in(1, 64), default=1),
        "accel": Key(_one_of(("auto", "kvm", "tcg")), default="auto"),  # libvirt only
        # A box of your own instead of one made from the guest (VirtualBox needs one):
        "box": Key(_text(), default=""),
        "box_url": Key(_file_url, default=""),
    },
}


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
        return _load_suite(path, data, seen={path.resolve()})
    return [_parse(path, data)]


def _load_suite(path: Path, data: dict, seen: set[Path]) -> list[Scenario]:
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
            scenarios += _load_suite(child, child_data, seen | {child})
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
                f"unknown key{_hint(key, list(allowed))}; allowed: {', '.join(allowed)}",
            )


def _check_table(path: Path, prefix: str, table: Any, keys: dict[str, Key]) -> dict[str, Any]:
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
    _reject_unknown(path, "backend.", backend_tables, list(BACKEND_KEYS))
    options = {
        name: _check_table(
            path, f"backend.{name}.", backend_tables.get(name, {}), {**COMMON_BACKEND_KEYS, **keys}
        )
        for name, keys in BACKEND_KEYS.items()
    }
    scenario = Scenario(path=path, backend_options=options, **values)
    if "ready" in scenario.workloads and any(scenario.multi_instance(b) for b in scenario.backends):
        raise ScenarioError(
            path,
            "scenario.workloads",
            "a scenario with instances other than [1] measures idle instances together: "
            'expected workloads = ["idle"]',
        )
    return scenario
