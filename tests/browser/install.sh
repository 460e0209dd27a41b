#!/usr/bin/env bash
# The browser the oracle tests run: Debian's chromium, installed with apt when it is missing (needs root).
# pmtiles.js is vendored next to this script (tests/browser/pmtiles.js, npm pmtiles 4.5.0): nothing more to fetch.
set -euo pipefail
if command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "browser oracle: chromium is missing and installing it needs root: sudo apt-get install -y chromium" >&2
  exit 1
fi
echo "browser oracle: installing chromium from Debian's packages (~110 MB, about a minute)"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
chromium --version
