"""The results CSV: one row per measured value, appended and flushed per trial.

The contract between the measuring side (runner, backends) and the reading side (dataset,
claims, charts): a CSV written on one host must be readable on any other, by any version.
``schema`` (columns, metrics and units, a row), ``facts`` (the declared key=value words of
``detail`` and their one parser), ``writer`` (append-only, whole trials) and ``reader`` (the
tolerant reader and its gate); everything is imported from here (docs/architecture.md).
"""

from bench.results.facts import DETAIL_KEYS, DetailKey, detail_reason, detail_word, parse_detail
from bench.results.reader import (
    MAX_FIELD_CHARS,
    MAX_INSTANCES,
    MAX_TRIAL,
    MAX_VALUE,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SIGNED_METRICS,
    BadLine,
    OptionalColumn,
    ResultsFile,
    ResultsSchemaError,
    read_results,
    read_rows,
)
from bench.results.schema import (
    ACCELS,
    COLUMNS,
    KINDS,
    METRIC_UNITS,
    PHASES,
    RUN_ID_RE,
    STATUSES,
    Row,
    check_run_id,
    unit_of,
)
from bench.results.writer import ResultsWriteError, ResultWriter

__all__ = [
    "ACCELS",
    "COLUMNS",
    "DETAIL_KEYS",
    "KINDS",
    "MAX_FIELD_CHARS",
    "MAX_INSTANCES",
    "MAX_TRIAL",
    "MAX_VALUE",
    "METRIC_UNITS",
    "OPTIONAL_COLUMNS",
    "PHASES",
    "REQUIRED_COLUMNS",
    "RUN_ID_RE",
    "SIGNED_METRICS",
    "STATUSES",
    "BadLine",
    "DetailKey",
    "OptionalColumn",
    "ResultWriter",
    "ResultsFile",
    "ResultsSchemaError",
    "ResultsWriteError",
    "Row",
    "check_run_id",
    "detail_reason",
    "detail_word",
    "parse_detail",
    "read_results",
    "read_rows",
    "unit_of",
]
