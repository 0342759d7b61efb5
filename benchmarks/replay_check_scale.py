"""How fast ``hydra.testing.replay_check`` goes through a large backlog (issue 14).

Stores N executions (default 10,000), each asleep after 5 checkpoints (4 steps and a
sleep), inserted directly into the tables in batches, then times ``replay_check`` over
them against the same code on SQLite (a temporary file) and PostgreSQL (a scratch
database, created and dropped here). Prints one JSON object; ``--out FILE`` writes it too.

    .venv/bin/python benchmarks/replay_check_scale.py --executions 10000 \\
        --backends sqlite,postgres --out benchmarks/results/replay-check-scale.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import hydra
from hydra.store.sql import schema
from hydra.testing import replay_check

STEPS = 4
NAMESPACE = "replay-bench"
BATCH = 1000
START_MS = 1_900_000_000_000
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@hydra.workflow("bench")
def bench(ctx: hydra.WorkflowContext, _: None) -> str:
    for i in range(STEPS):
        hydra.step(ctx, f"step-{i}", lambda: "ok")
    hydra.sleep(ctx, timedelta(days=1), name="nap")
    return hydra.step(ctx, "last", lambda: "done")


def _execution(eid: str) -> dict[str, Any]:
    wake = START_MS + 86_400_000
    return {
        "id": eid, "namespace": NAMESPACE, "workflow_name": "bench", "status": "sleeping",
        "input_data": b"null", "output_data": None, "error_type": None, "error_message": None,
        "attempt": 1, "max_attempts": 3, "retry_backoff_ms": 1000, "timeout_ms": None,
        "timeout_at": None, "idempotency_key": None, "created_at": START_MS,
        "started_at": START_MS, "completed_at": None, "updated_at": START_MS,
        "run_at": START_MS, "sleep_until": wake, "next_retry_at": None, "wake_at": wake,
        "lease_owner": None, "lease_token": 1, "lease_expires_at": None,
        "trigger_type": "api", "trigger_source": None, "wait_topic": None, "parent_id": None,
        "parks": 0,
    }  # fmt: skip


def _step(eid: str, name: str, order: int, output: bytes, done_ms: int) -> dict[str, Any]:
    sleep = name == "nap"
    return {
        "execution_id": eid, "step_name": name, "step_order": order,
        "status": "sleeping" if sleep else "completed", "attempts": 1, "output_data": output,
        "error_type": None, "error_message": None, "started_at": START_MS,
        "completed_at": done_ms, "updated_at": START_MS, "kind": "sleep" if sleep else "step",
        "detail": None,
    }  # fmt: skip


def _steps(eid: str) -> list[dict[str, Any]]:
    wake = START_MS + 86_400_000
    rows = [_step(eid, f"step-{i}", i, b'"ok"', START_MS) for i in range(STEPS)]
    return [*rows, _step(eid, "nap", STEPS, str(wake).encode(), wake)]


def fill(store: hydra.SQLStore, count: int) -> float:
    """Insert ``count`` sleeping executions with their checkpoints; seconds taken."""
    began = time.perf_counter()
    for first in range(0, count, BATCH):
        ids = [str(uuid.uuid4()) for _ in range(min(BATCH, count - first))]
        with store.engine.begin() as conn:
            conn.execute(schema.executions.insert(), [_execution(i) for i in ids])
            conn.execute(schema.steps.insert(), [s for i in ids for s in _steps(i)])
    return time.perf_counter() - began


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    name = f"hydra_replay_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(["createdb", "-U", "postgres", "-h", "127.0.0.1", name], check=True)
    try:
        yield PG_ADMIN + name
    finally:
        subprocess.run(["dropdb", "-U", "postgres", "-h", "127.0.0.1", name], check=True)


def measure(backend: str, count: int) -> dict[str, Any]:
    with database(backend) as url:
        store = hydra.SQLStore(url, auto_migrate=True)
        try:
            insert_s = fill(store, count)
            began = time.perf_counter()
            report = replay_check([bench], store, namespace=NAMESPACE)
            seconds = time.perf_counter() - began
        finally:
            store.close()
    assert report.ok and report.checked == count, report.format()
    return {
        "backend": backend,
        "executions": count,
        "checkpoints_each": STEPS + 1,
        "insert_seconds": round(insert_s, 3),
        "check_seconds": round(seconds, 3),
        "executions_per_second": round(count / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = [measure(b, args.executions) for b in args.backends.split(",") if b]
    document = {"benchmark": "replay_check_scale", "hydra": hydra.__version__, "runs": results}
    text = json.dumps(document, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
