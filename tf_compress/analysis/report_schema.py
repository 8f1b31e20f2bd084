"""The results report's schema version and the names of a run's files.

A run directory holds `report.json` (the report, whose `schema_version` is
`REPORT_SCHEMA_VERSION`), `history.json` (the training curves' data),
`run.flags` (the flags that reproduce the run), the rendered reports
`report.html` and `report.md`, `predictions.npz` (the test labels and every
model's test predictions, for paired statistics), and, for a tuning study,
`tuning.json`. The
pipeline writes them and `report_writer` reads them, both by these names.
"""

__all__ = ["REPORT_SCHEMA_VERSION", "REPORT_NAME", "HISTORY_NAME",
           "FLAGFILE_NAME", "REPORT_HTML", "REPORT_MD", "COMPARISON_HTML",
           "COMPARISON_MD", "TUNING_NAME", "PREDICTIONS_NAME"]

# The newest report.json layout this tf_compress writes and reads; readers
# accept versions 1 to this one.
REPORT_SCHEMA_VERSION = 1

REPORT_NAME = "report.json"
HISTORY_NAME = "history.json"
FLAGFILE_NAME = "run.flags"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
COMPARISON_HTML = "comparison.html"
COMPARISON_MD = "comparison.md"
TUNING_NAME = "tuning.json"
PREDICTIONS_NAME = "predictions.npz"
