"""report.html in a real browser: headless Chromium renders it, not blank.

Chromium is installed by `make test` (tools/install_chromium.sh); when it is
missing the module fixture runs that script, and the test is skipped, with
the script's reason, only when it cannot be installed.
"""

import os
import pathlib
import shutil
import subprocess

import numpy as np
from PIL import Image
import pytest

from report_samples import sample_report
from tf_compress.analysis import write_reports

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_WIDTH, _HEIGHT = 1200, 2000


def _find_browser():
  return next((shutil.which(b) for b in _BROWSERS if shutil.which(b)), None)


@pytest.fixture(scope="module")
def browser():
  """The Chromium executable, installed first if needed."""
  found = _find_browser()
  if found is None:
    script = REPO_ROOT / "tools" / "install_chromium.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True,
                          text=True, timeout=900, check=False)
    found = _find_browser()
    if found is None:
      reason = proc.stderr.strip() or f"exit status {proc.returncode}"
      pytest.skip(f"Chromium could not be installed: {reason}")
  return found


def test_headless_chromium_renders_the_report(browser, tmp_path):
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  artifacts = write_reports(sample_report(), str(run_dir))
  page = run_dir / artifacts["html"]
  # Keep only the HTML: the page must not need the PNG files beside it.
  for filename in artifacts["plots"].values():
    (run_dir / filename).unlink()
  shot = tmp_path / "out.png"
  proc = subprocess.run(
      [browser, "--headless", "--no-sandbox", "--disable-gpu",
       "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
       f"--screenshot={shot}", f"--window-size={_WIDTH},{_HEIGHT}",
       page.as_uri()],
      capture_output=True, text=True, timeout=120, check=False,
      env=dict(os.environ, HOME=str(tmp_path)))
  assert shot.is_file(), proc.stderr[-2000:]
  with Image.open(shot) as image:
    assert image.size == (_WIDTH, _HEIGHT)
    pixels = np.asarray(image.convert("RGB"))
  colours = np.unique(pixels.reshape(-1, 3), axis=0)
  # Text, tables and the embedded plots: hundreds of colours, not one.
  assert len(colours) > 200, len(colours)
  not_white = np.any(pixels < 245, axis=2).mean()
  assert 0.03 < not_white < 0.9, not_white
  # The plots (2000 px down: the size plot and more) were decoded and drawn:
  # matplotlib's default blue (31, 119, 180) appears.
  blue = np.all(np.abs(pixels.astype(int) - (31, 119, 180)) < 12, axis=2)
  assert blue.sum() > 50
