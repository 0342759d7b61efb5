#!/usr/bin/env bash
# The whole test suite. PostgreSQL / MariaDB tests run when HYDRA_TEST_POSTGRES_URL /
# HYDRA_TEST_MYSQL_URL are set (and fail, not skip, if those servers are unreachable).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
