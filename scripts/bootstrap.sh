#!/usr/bin/env bash
# Creates .venv and installs hydra (editable, with the PostgreSQL and MySQL drivers, the
# OpenTelemetry API, the web UI's extra and the dev tools) the first time, and again
# whenever pyproject.toml changes. Needs only python3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv/.hydra-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing hydra-workflows and its dev tools into .venv" >&2
  # pip's and setuptools' output (the editable-install notice box among it) goes to a log,
  # shown only when the install fails.
  log=.venv/bootstrap.log
  if ! { .venv/bin/python -m pip install -q --upgrade "pip>=25.1" &&
         .venv/bin/python -m pip install -q -e ".[postgres,mysql,otel,ui]" --group dev; } >"$log" 2>&1
  then
    cat "$log" >&2
    echo "bootstrap: installing into .venv failed (log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
  # The web UI's browser tests drive Debian's chromium: installed with the rest when it
  # can be (as root with apt-get), else those tests skip.
  ./scripts/install-chromium.sh
fi
