#!/usr/bin/env bash
# Installs Debian's bazel-bootstrap (Bazel 4.2.3, runs offline) when possible.
# Best effort: prints why and exits 1 when it cannot (not root, no apt-get).
set -u
if command -v bazel >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_bazel: apt-get not found; the Bazel check will be skipped" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_bazel: not root; the Bazel check will be skipped" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO apt-get install -y -qq bazel-bootstrap >/dev/null 2>&1 || {
  echo "install_bazel: apt-get install bazel-bootstrap failed; skipping" >&2
  exit 1
}
