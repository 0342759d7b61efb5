#!/usr/bin/env bash
# Installs Debian's chromium (at /usr/bin/chromium) for the web UI's browser tests
# (tests/ui), when it is missing and apt-get can install it here: as root, with apt-get.
# Otherwise says so and leaves it: those tests then skip. Never fails the caller.
set -uo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no /usr/bin/chromium and not root with apt-get: the browser tests (tests/ui) will skip" >&2
  exit 0
fi
echo "install-chromium: installing Debian's chromium for the browser tests (tests/ui)" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "install-chromium: apt-get failed: the browser tests (tests/ui) will skip" >&2
fi
rm -f "$log"
exit 0
