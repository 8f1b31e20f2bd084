"""tf_compress.analysis.report_schema: the run directory's file names."""

import json

import pytest

from tf_compress import analysis
from tf_compress.analysis import report_schema
from tf_compress.errors import UserInputError


def test_names_and_version():
  assert report_schema.REPORT_SCHEMA_VERSION == 1
  assert (report_schema.REPORT_NAME, report_schema.HISTORY_NAME,
          report_schema.FLAGFILE_NAME, report_schema.REPORT_HTML,
          report_schema.REPORT_MD, report_schema.TUNING_NAME) == (
              "report.json", "history.json", "run.flags", "report.html",
              "report.md", "tuning.json")
  names = [getattr(report_schema, n) for n in report_schema.__all__
           if n.endswith(("_NAME", "_HTML", "_MD"))]
  assert len(set(names)) == len(names) == 9
  for name in report_schema.__all__:
    assert getattr(analysis, name) == getattr(report_schema, name)


def test_load_report_reads_the_versions_the_schema_names(tmp_path):
  report = {"variants": [{"name": "baseline"}]}
  path = tmp_path / report_schema.REPORT_NAME
  for version in range(1, report_schema.REPORT_SCHEMA_VERSION + 1):
    path.write_text(json.dumps({**report, "schema_version": version}))
    assert analysis.load_report(tmp_path)["schema_version"] == version
  path.write_text(json.dumps(
      {**report, "schema_version": report_schema.REPORT_SCHEMA_VERSION + 1}))
  with pytest.raises(UserInputError, match="schema versions 1 to 1"):
    analysis.load_report(tmp_path)
