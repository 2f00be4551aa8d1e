"""The one scenario-file builder: a [scenario] table from keyword values, plus raw TOML after it."""

from __future__ import annotations

import json
import math
from pathlib import Path

DEFAULTS = {"guests": ["busybox"], "repetitions": 1, "warmup": 0}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def scenario_text(scenario: dict, extra: str = "") -> str:
    lines = ["[scenario]"] + [f"{k} = {toml_value(v)}" for k, v in scenario.items()]
    return "\n".join(lines) + "\n" + extra


def write_scenario(
    folder: Path, name: str = "t", extra: str = "", filename: str | None = None, **keys
) -> Path:
    """``folder/<name>.toml`` (or ``filename``): a scenario named ``name`` with DEFAULTS under
    ``keys``; ``extra`` is raw TOML appended inside the [scenario] table or after it."""
    path = folder / (filename or f"{name}.toml")
    path.write_text(scenario_text({"name": name, **DEFAULTS, **keys}, extra))
    return path
