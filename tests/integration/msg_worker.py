"""A hydra worker process for ``test_message_kill.py``: executions waiting in
``hydra.receive`` while their worker is SIGKILLed.

Run as a script in a child process. The workflow ``mp-receiver`` receives ``count``
messages on topic ``m``; after each it runs a step ``after-<k>``. A *ledger* file (one
``O_APPEND`` write per line, so lines of several processes never interleave) gets
``<execution id>,received-<k>,<pid>`` from the workflow code right after each receive
returns (again on a replay) and ``<execution id>,after-<k>,<pid>`` from each step body.

``--mode hang-after-receive``: right after its first receive returns (the message taken
and checkpointed) the workflow code blocks, before the next step's checkpoint: the test
SIGKILLs the process there. ``fast``: nothing blocks.

The process prints ``ready`` once its worker runs, and never outlives its parent or
``--max-seconds``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from functools import partial
from typing import Any

import hydra

RECEIVER = "mp-receiver"
TOPIC = "m"
MODES = ("fast", "hang-after-receive")

_write_lock = threading.Lock()


def record(ledger: str, execution_id: str, what: str) -> None:
    """One small ``write(2)`` on an ``O_APPEND`` descriptor: atomic between processes."""
    with _write_lock, open(ledger, "a") as f:
        f.write(f"{execution_id},{what},{os.getpid()}\n")
        f.flush()


def _after(ledger: str, execution_id: str, k: int) -> int:
    record(ledger, execution_id, f"after-{k}")
    return k


class Receiver(hydra.Workflow[dict[str, Any]]):
    """Receives ``req["count"]`` messages of topic ``m``, a step after each; returns them."""

    name = RECEIVER

    def __init__(self, ledger: str, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.ledger = ledger
        self.mode = mode

    def run(self, ctx: hydra.WorkflowContext, req: dict[str, Any]) -> dict[str, Any]:
        eid = ctx.execution_id
        got = []
        for k in range(req["count"]):
            got.append(hydra.receive(ctx, TOPIC))
            record(self.ledger, eid, f"received-{k}")
            if self.mode == "hang-after-receive" and k == 0:
                time.sleep(60)  # the test kills the process here
            hydra.step(ctx, f"after-{k}", partial(_after, self.ledger, eid, k))
        return {"got": got}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--mode", choices=MODES, default="fast")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)

    deadline = time.monotonic() + args.max_seconds
    parent = os.getppid()
    store = hydra.SQLStore(args.url, auto_migrate=True)
    engine = hydra.Engine(store, namespace=args.namespace)
    worker = hydra.Worker(
        engine,
        worker_id=f"msg-kill-{os.getpid()}",
        concurrency=4,
        poll_interval=0.05,
        heartbeat_interval=0.3,
        claim_timeout=1.5,  # a takeover after a SIGKILL with a lease held: 1.5 s later
    )
    worker.register(Receiver(args.ledger, args.mode))
    worker.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.shutdown(timeout=2)
    store.close()
    os._exit(0)  # a hung run may still block a thread: do not wait for it


if __name__ == "__main__":
    sys.exit(main())
