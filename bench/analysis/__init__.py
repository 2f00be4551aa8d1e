"""The reading side's analysis: result CSVs -> tables, statistics, verdicts. Loads no engine."""
