#!/usr/bin/env bash
# The demo: runs the order example on the embedded SQLite database (.hydra/hydra.db).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/python examples/order.py "$@"
