"""The reading side's views: charts, markdown, slides, terminal tables. Loads no engine."""
