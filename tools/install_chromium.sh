#!/usr/bin/env bash
# Installs Debian's chromium (headless screenshots of report.html in
# tests/test_report_browser.py) when it is missing.
# Best effort: prints why and exits 1 when it cannot (not root, no apt-get);
# the browser test is then skipped with that reason.
set -u
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: apt-get not found; the browser test will be skipped" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_chromium: not root; the browser test will be skipped" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
  echo "install_chromium: apt-get install chromium failed; skipping" >&2
  exit 1
}
