#!/usr/bin/env bash
# Installs everything pytp and its tests need on a fresh Debian machine:
# the system tools (GNU tar, mt-st, mtx, sg3-utils, PostgreSQL for the shared-
# catalog tests) and pytp itself with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(tar mt-st mtx sg3-utils lsscsi mbuffer postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's postgresql package starts a cluster of its own; the tests start
# their own server on a free loopback port and do not need it.

python3 -m pip install -q --disable-pip-version-check -e ".[test]"
