#!/usr/bin/env bash
# Installs Debian's PostgreSQL server (initdb, pg_ctl, postgres) when it is
# missing; tests/test_tune_postgres.py starts a throwaway cluster with it.
# Debian keeps the server binaries in /usr/lib/postgresql/<version>/bin, off
# PATH, and a machine may have only the client (psql), so look for initdb.
# Best effort: prints why and exits 1 when it cannot (not root, no apt-get);
# the PostgreSQL tests are then skipped with that reason.
set -u
if command -v initdb >/dev/null 2>&1 ||
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_postgresql: apt-get not found; the PostgreSQL tests will be" \
    "skipped" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_postgresql: not root; the PostgreSQL tests will be" \
      "skipped" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO apt-get install -y -qq --no-install-recommends postgresql \
    >/dev/null 2>&1 || {
  echo "install_postgresql: apt-get install postgresql failed; skipping" >&2
  exit 1
}
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || {
  echo "install_postgresql: postgresql installed, but no initdb under" \
    "/usr/lib/postgresql/*/bin; skipping" >&2
  exit 1
}
