"""Tests of report.html / report.md rendering (report_html, report_md, reports).

One module fixture writes the plots and both reports of the hand-made
report (with a tuning.json beside it) once; the tests read them.
"""

import base64
import io
import json
import os
import re

from PIL import Image
import pytest

from report_samples import PARETO
from report_samples import sample_report
from report_samples import sample_tuning
from tf_compress.analysis import render_html
from tf_compress.analysis import render_markdown
from tf_compress.analysis import report_tables
from tf_compress.analysis import write_comparison
from tf_compress.analysis import write_reports
from tf_compress.analysis.report_plots import plot_accuracy_vs_size


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """write_reports on the sample report; returns (dir, artifacts, html, md)."""
  run_dir = tmp_path_factory.mktemp("run")
  (run_dir / "tuning.json").write_text(json.dumps(sample_tuning()))
  plot_accuracy_vs_size([{"size": 1, "accuracy": 0.5, "pareto": True}],
                        run_dir / "pareto.png")
  artifacts = write_reports(sample_report(), str(run_dir))
  html = (run_dir / "report.html").read_text(encoding="utf-8")
  md = (run_dir / "report.md").read_text(encoding="utf-8")
  return run_dir, artifacts, html, md


def _all_rows(report):
  for variant in report["variants"]:
    yield variant["name"], "keras"
    for export in variant["tflite"]:
      yield variant["name"], export["mode"]


def test_write_reports_returns_what_it_wrote(written):
  run_dir, artifacts, _, _ = written
  assert artifacts["html"] == "report.html"
  assert artifacts["markdown"] == "report.md"
  assert len(artifacts["plots"]) == 8
  for filename in artifacts["plots"].values():
    assert (run_dir / filename).is_file()
  assert not list(run_dir.glob(".partial-*"))  # atomic writes left nothing


def test_html_has_every_variant_and_export_row(written):
  _, _, html, _ = written
  rows = re.findall(r"<tr(?: class=\"pareto\")?><td>[^<]*</td><td>([^<]+)"
                    r"</td><td>([^<]+)</td>", html)
  expected = list(_all_rows(sample_report()))
  assert [r for r in rows if r in expected] == expected
  pareto_rows = [r for r in re.findall(
      r"<tr class=\"pareto\"><td>\u2605</td><td>([^<]+)</td><td>([^<]+)</td>",
      html) if r in expected]
  assert set(pareto_rows) == PARETO and len(pareto_rows) == 3


def test_html_embeds_one_image_per_plot(written):
  _, artifacts, html, _ = written
  images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
  # Every plot plus the tuning section's pareto.png.
  assert len(images) == len(artifacts["plots"]) + 1
  for data in images:
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
      assert image.format == "PNG" and image.size[0] > 100


def test_html_references_nothing_external(written):
  _, _, html, _ = written
  lowered = html.lower()
  for needle in ("http://", "https://", "<link", "@import", "url(",
                 "<script"):
    assert needle not in lowered, needle
  sources = re.findall(r'src="([^"]*)"', html)
  assert sources and all(s.startswith("data:image/png;base64,")
                         for s in sources)
  hrefs = re.findall(r'href="([^"]*)"', html)
  assert all(h.startswith("#") for h in hrefs)


def test_html_leads_with_the_headline_metrics(written):
  _, _, html, _ = written
  header = re.search(r"<tr><th>Pareto</th>(.*?)</tr>", html).group(1)
  cells = re.findall(r"<th>([^<]*)</th>", header)
  assert cells[:4] == ["variant", "format", "balanced acc.", "macro-F1"]
  assert cells.index("top-1") > cells.index("macro-F1")


def test_html_sections(written):
  _, _, html, _ = written
  # Who pays: the classes that fell, for the variant and for the export.
  assert "0 (zero): -5.0 pt, 2 (two): -3.0 pt" in html
  assert "pruned / int8" in html and "1 (one): -10.0 pt" in html
  # Sweeps, dataset analysis, tuning and reproducibility.
  assert "Sparsity sweep" in html and "pruned_75" in html
  assert "Slicing sweep" in html and "sliced_50" in html
  assert "Imbalance ratio".lower() in html.lower() and "5.0" in html
  assert "Per-channel statistics" in html and "Original image sizes" in html
  assert "Pareto-optimal trials" in html and "hypervolume 12.5" in html
  assert "best.flags" in html
  assert ("python -m tf_compress.train --dataset=toy.npz "
          "--prune_sparsity=0.5") in html
  assert "--noqat" in html and "--export=float32,int8" in html
  assert "tensorflow</td><td>2.21.0" in html


def test_html_neutralises_urls_and_escapes_markup():
  report = sample_report()
  report["command"] = ["train.py", "--dataset=https://example.org/x.npz"]
  report["variants"][1]["name"] = "<b>pruned</b>"
  html = render_html(report, {}, "/nonexistent")
  assert "https://" not in html and "<b>pruned</b>" not in html
  assert "&lt;b&gt;pruned&lt;/b&gt;" in html


def test_markdown_has_the_same_rows_and_existing_links(written):
  run_dir, artifacts, _, md = written
  rows = re.findall(r"^\| (?:\*\*)?[^|]*?(?:\*\*)? \| (?:\*\*)?([^|*]+)"
                    r"(?:\*\*)? \| (?:\*\*)?([^|*]+)(?:\*\*)? \|", md,
                    flags=re.M)
  expected = list(_all_rows(sample_report()))
  assert [r for r in rows if r in expected] == expected
  links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
  assert set(links) == set(artifacts["plots"].values()) | {"pareto.png"}
  for link in links:
    assert not os.path.isabs(link) and (run_dir / link).is_file()
  assert "## Who pays for compression" in md and "## Reproduce" in md


def test_markdown_without_optional_sections():
  report = sample_report()
  for key in ("sweeps", "headline_metrics", "command"):
    del report[key]
  md = render_markdown(report, {}, None)
  assert "## Sweeps" not in md and "## Tuning" not in md
  header = next(line for line in md.splitlines()
                if line.startswith("| Pareto"))
  assert header.index("top-1") < header.index("balanced acc.")


def test_multi_run_comparison(tmp_path):
  first, second = sample_report(), sample_report()
  second["variants"][1]["balanced_accuracy"] = 0.5
  artifacts = write_comparison([("run_a", first), ("run_b", second)],
                               str(tmp_path))
  html = (tmp_path / artifacts["html"]).read_text()
  assert '<th colspan="4">run_a</th><th colspan="4">run_b</th>' in html
  assert "https://" not in html and "<link" not in html
  table = report_tables.multi_run_table([("run_a", first), ("run_b", second)])
  pruned = next(r for r in table.rows if r[:2] == ["pruned", "keras"])
  assert pruned[2] == "95.00%" and pruned[6] == "50.00%"
  md = (tmp_path / artifacts["markdown"]).read_text()
  assert "run_a balanced acc." in md and "run_b balanced acc." in md
  assert html.count("data:image/png;base64,") == len(artifacts["plots"]) == 1
