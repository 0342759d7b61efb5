"""A hydra worker process for the multi-process tests (``test_multiprocess.py``).

Run as a script in a child process; the test module also imports it (by file path) so the
parent registers exactly the same workflows. Everything comes in by command-line
arguments. The child reports to a JSON-lines *result file*: ``ready`` once its workers
run, every record of the ``hydra`` logger at INFO and above (``abandoning execution ...``
when a run loses its lease), step events, and ``exit`` before it leaves.

Step bodies append ``f"{execution_id},{step},{pid}\\n"`` to a *ledger* file (``O_APPEND``,
one small write per line, so lines from several processes never interleave): the parent
counts step-body entries across processes from it.

The child never outlives its parent or ``--max-seconds``: it then exits on its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from functools import partial
from typing import Any

import hydra

THREE_STEPS = "mp-three-steps"
FIRST_SLOW_LAST = "mp-first-slow-last"
MODES = ("fast", "hang", "stop", "between")

# Held by the ``stop`` mode's ``slow`` step while it waits to be SIGSTOPped (see
# ``_wait_to_be_stopped``); the child's heartbeats take it too.
HEARTBEAT_GATE = threading.Lock()

_write_lock = threading.Lock()


def append_line(path: str, line: str) -> None:
    """One ``write(2)`` on an ``O_APPEND`` descriptor: atomic for small lines."""
    with _write_lock, open(path, "a") as f:
        f.write(line)
        f.flush()


def record_step(ledger: str, execution_id: str, step: str) -> None:
    append_line(ledger, f"{execution_id},{step},{os.getpid()}\n")


def report(result: str | None, event: str, **fields: Any) -> None:
    if result is None:
        return
    fields.update(event=event, pid=os.getpid(), t=time.time())
    append_line(result, json.dumps(fields, sort_keys=True) + "\n")


# -- workflows -----------------------------------------------------------------------------
def _plain_step(ledger: str, execution_id: str, step: str) -> dict[str, int]:
    record_step(ledger, execution_id, step)
    time.sleep(0.002)  # a little real work, so that the workers interleave
    return {"by": os.getpid()}


class ThreeSteps(hydra.Workflow[dict[str, Any]]):
    """Steps ``a``, ``b``, ``c``; each records itself and returns ``{"by": pid}``."""

    name = THREE_STEPS

    def __init__(self, ledger: str) -> None:
        self.ledger = ledger

    def run(self, ctx: hydra.WorkflowContext, req: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"n": req["n"]}
        for name in ("a", "b", "c"):
            out[name] = hydra.step(
                ctx, name, partial(_plain_step, self.ledger, ctx.execution_id, name)
            )
        return out


class FirstSlowLast(hydra.Workflow[dict[str, Any]]):
    """Steps ``first``, ``slow``, ``last``; what ``slow`` does depends on the process mode.

    ``fast``: returns ``{"by": pid}`` at once. ``hang``: blocks for 60 s (the test kills the
    process). ``stop``: waits to be SIGSTOPped and continued, sleeps until 3 s after it
    started, reports, then returns ``{"by": pid}`` (its checkpoint must be refused).
    ``between``: the workflow code waits to be SIGSTOPped and continued *between*
    ``first`` and ``slow`` (holding the heartbeat thread back meanwhile and after, so only
    the run's own lease guard can notice), then calls ``slow``, whose body must not run.
    """

    name = FIRST_SLOW_LAST

    def __init__(self, ledger: str, mode: str = "fast", result: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.ledger = ledger
        self.mode = mode
        self.result = result

    def run(self, ctx: hydra.WorkflowContext, req: dict[str, Any]) -> dict[str, Any]:
        eid = ctx.execution_id
        first = hydra.step(ctx, "first", partial(self._first, eid))
        if self.mode == "between":
            with HEARTBEAT_GATE:
                report(self.result, "between_entered", execution_id=eid)
                stopped_for = _wait_to_be_stopped()
                report(self.result, "between_continued", execution_id=eid, stopped=stopped_for)
                try:
                    slow = hydra.step(ctx, "slow", partial(self._slow, eid))
                finally:
                    report(self.result, "between_left", execution_id=eid)
        else:
            slow = hydra.step(ctx, "slow", partial(self._slow, eid))
        last = hydra.step(ctx, "last", partial(self._last, eid))
        return {"first": first, "slow": slow, "last": last}

    def _first(self, eid: str) -> dict[str, int]:
        record_step(self.ledger, eid, "first")
        return {"n": 1}  # no pid: whoever ran it, its checkpoint is the same

    def _last(self, eid: str) -> dict[str, int]:
        record_step(self.ledger, eid, "last")
        return {"by": os.getpid()}

    def _slow(self, eid: str) -> dict[str, int]:
        started = time.monotonic()
        if self.mode == "stop":
            with HEARTBEAT_GATE:
                record_step(self.ledger, eid, "slow")
                report(self.result, "slow_entered", execution_id=eid)
                stopped_for = _wait_to_be_stopped()
            report(self.result, "slow_continued", execution_id=eid, stopped_for=stopped_for)
            time.sleep(max(0.0, started + 3.0 - time.monotonic()))
            report(self.result, "slow_returning", execution_id=eid, by=os.getpid())
        else:
            record_step(self.ledger, eid, "slow")
            if self.mode == "hang":
                time.sleep(60)
        return {"by": os.getpid()}


def _wait_to_be_stopped(limit_s: float = 15.0, gap_s: float = 1.0) -> float:
    """Block until this process was stopped and continued; return how long it was stopped.

    The parent SIGSTOPs the child once it sees ``slow`` in the ledger. Meanwhile this step
    holds ``HEARTBEAT_GATE``, so the child cannot be frozen in the middle of a heartbeat
    transaction (which would keep the execution row locked, or SQLite's write lock, and
    block the taking-over worker). With ``concurrency=1`` the poller does not query while
    this run occupies the slot, and the run thread is in this function: a stop now
    freezes no database work. A jump of the monotonic clock shows the stop ended.
    """
    start = last = time.monotonic()
    while last - start < limit_s:
        time.sleep(0.01)
        now = time.monotonic()
        if now - last >= gap_s:
            return now - last
        last = now
    return 0.0


def workflows(ledger: str, mode: str, result: str | None = None) -> list[hydra.Workflow[Any]]:
    return [ThreeSteps(ledger), FirstSlowLast(ledger, mode, result)]


# -- the child process -----------------------------------------------------------------------
class ResultHandler(logging.Handler):
    """Copies ``hydra`` log records to the result file; notes abandoned runs."""

    def __init__(self, result: str) -> None:
        super().__init__(logging.INFO)
        self.result = result
        self.abandoned = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            report(
                self.result,
                "log",
                level=record.levelname,
                logger=record.name,
                msg=message,
                execution_id=getattr(record, "execution_id", None),
                worker_id=getattr(record, "worker_id", None),
            )
            if message.startswith("abandoning execution"):
                self.abandoned.set()
        except Exception:
            self.handleError(record)


def _gate_heartbeats(store: hydra.SQLStore) -> None:
    """The worker's heartbeat thread takes ``HEARTBEAT_GATE`` first (a run's own lease
    guard, which also extends its lease through ``heartbeat``, does not)."""
    beat = store.heartbeat

    def gated(*args: Any, **kwargs: Any) -> list[str]:
        if not threading.current_thread().name.startswith("hydra-heartbeat-"):
            return beat(*args, **kwargs)
        with HEARTBEAT_GATE:
            return beat(*args, **kwargs)

    store.heartbeat = gated  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument(
        "--worker-id",
        action="append",
        required=True,
        help="repeat for several workers in this process",
    )
    parser.add_argument("--mode", choices=MODES, default="fast")
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--heartbeat-interval", type=float, default=0.3)
    parser.add_argument("--claim-timeout", type=float, default=1.5)
    parser.add_argument(
        "--exit-after-abandon",
        action="store_true",
        help="exit 0 once a run was abandoned after losing its lease",
    )
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)

    deadline = time.monotonic() + args.max_seconds
    parent = os.getppid()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())

    handler = ResultHandler(args.result)
    hydra_logger = logging.getLogger("hydra")
    hydra_logger.setLevel(logging.INFO)
    hydra_logger.addHandler(handler)

    store = hydra.SQLStore(args.url, auto_migrate=True)
    if args.mode in ("stop", "between"):
        _gate_heartbeats(store)
    engine = hydra.Engine(store, namespace=args.namespace)
    workers = []
    for worker_id in args.worker_id:
        worker = hydra.Worker(
            engine,
            worker_id=worker_id,
            concurrency=args.concurrency,
            poll_interval=args.poll_interval,
            heartbeat_interval=args.heartbeat_interval,
            claim_timeout=args.claim_timeout,
        )
        for wf in workflows(args.ledger, args.mode, args.result):
            worker.register(wf)
        workers.append(worker)
    for worker in workers:
        worker.start()
    report(args.result, "ready", worker_ids=args.worker_id)

    code = 0
    reason = "sigterm"
    while not stop.wait(0.05):
        if args.exit_after_abandon and handler.abandoned.is_set():
            reason = "abandoned"
            break
        if os.getppid() != parent:
            code, reason = 2, "parent gone"
            break
        if time.monotonic() > deadline:
            code, reason = 3, "max-seconds"
            break
    for worker in workers:
        worker.shutdown(timeout=2)
    report(args.result, "exit", code=code, reason=reason)
    store.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # A ``hang`` step may still block a pool thread: do not wait for it at interpreter exit.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
