#!/usr/bin/env bash
# The demo: `hydra dev run examples/order.py` on the embedded SQLite database
# (.hydra/hydra.db in the current directory), with a live view of the two orders; it ends
# by printing a `hydra trace <id>` command for each, runnable from this same directory.
# Arguments go to `hydra dev run` (e.g. --fast-forward, --workers 2).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/bootstrap.sh"
example="$root/examples/order.py"
[ "$PWD" = "$root" ] && example=examples/order.py
exec "$root/.venv/bin/hydra" dev run "$example" "$@"
