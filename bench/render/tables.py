"""Every CSV the reading side writes, through one writer that neutralises formulas.

A lab passes summary.csv, claims.csv and the others around and opens them in spreadsheets; a
cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
there (OWASP: CSV injection). Host ids, guests and reasons come from input CSVs anyone may
have edited, so such a cell gets a leading ``'`` unless it is a number (``-1.5`` stays one).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def neutral_cell(value: object) -> object:
    """``value``, or ``'value`` when a spreadsheet would read the text as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def neutralised(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell that a spreadsheet would run as a formula prefixed."""
    out = df.copy()
    for column in out.columns:
        if out[column].dtype == object or isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(object).map(neutral_cell)
        elif pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(neutral_cell)
    out.columns = [neutral_cell(str(c)) for c in out.columns]
    return out


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` to ``path`` (no index), formulas neutralised: every CSV of the reading side."""
    neutralised(df).to_csv(path, index=False)
    return Path(path)
