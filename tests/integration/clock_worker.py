"""A hydra worker process whose wall clock is wrong, for ``test_clock_skew.py``.

Run as a script with ``--skew SECONDS``: before hydra (or anything else) is imported,
``time.time``, ``time.time_ns`` and ``datetime.datetime.now``/``utcnow`` are replaced by
versions that many seconds off, as on a machine whose clock is wrong. The monotonic
clock is left alone (as on such a machine). The test module imports this file by path
for the workflow names; nothing is patched then.

Step bodies append ``execution_id,step,phase,pid,label,true_ns`` lines to a *ledger*
(``O_APPEND``, one small write per line), ``phase`` being ``start`` or ``end`` and
``true_ns`` the *correct* wall time (the real ``time.time_ns``, kept before patching):
the parent measures sleeps and timeouts in real time from it, whichever worker ran what.
The child reports to a JSON-lines *result file*: ``ready`` (with the skew it really
has), every ``hydra`` log record at INFO and above, and ``exit``.
"""

from __future__ import annotations

import time

#: the real wall clock, whatever --skew does to ``time.time_ns``
TRUE_TIME_NS = time.time_ns


def install_skew(seconds: float) -> None:
    """Make this process's wall clock ``seconds`` off (before hydra is imported)."""
    import datetime as dt

    real_time, real_time_ns = time.time, time.time_ns
    skew_ns = round(seconds * 1e9)
    delta = dt.timedelta(seconds=seconds)
    time.time = lambda: real_time() + seconds
    time.time_ns = lambda: real_time_ns() + skew_ns

    class SkewedDatetime(dt.datetime):
        __slots__ = ()  # the size C extensions expect of datetime.datetime

        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> SkewedDatetime:
            return super().now(tz) + delta

        @classmethod
        def utcnow(cls) -> SkewedDatetime:
            return super().utcnow() + delta

    dt.datetime = SkewedDatetime  # type: ignore[misc]


if __name__ == "__main__":
    import sys

    if "--skew" in sys.argv:
        install_skew(float(sys.argv[sys.argv.index("--skew") + 1]))

# Imported after the patch when run as a script, so that ``from datetime import
# datetime`` anywhere below sees the skewed class.
import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402

STEPS = "clock-three-steps"
SLEEPER = "clock-sleeper"
SLEEPER_SKEWED = "clock-sleeper-skewed"
TIMEOUT = "clock-timeout"
TIMEOUT_AHEAD = "clock-timeout-ahead"
ALL = (STEPS, SLEEPER, SLEEPER_SKEWED, TIMEOUT, TIMEOUT_AHEAD)
#: how long the sleepers sleep and after how long the timeout workflows time out (s)
SLEEP_S = 3.0
TIMEOUT_S = 3.0
#: how long a timeout workflow's step blocks (longer than its timeout)
BLOCK_S = 6.0

_write_lock = threading.Lock()


def append_line(path: str, line: str) -> None:
    with _write_lock, open(path, "a") as f:
        f.write(line)
        f.flush()


class Ledger:
    def __init__(self, path: str, label: str) -> None:
        self.path = path
        self.label = label

    def record(self, execution_id: str, step: str, phase: str) -> None:
        append_line(
            self.path,
            f"{execution_id},{step},{phase},{os.getpid()},{self.label},{TRUE_TIME_NS()}\n",
        )


def _timed_step(ledger: Ledger, eid: str, step: str, seconds: float) -> dict[str, str]:
    ledger.record(eid, step, "start")
    time.sleep(seconds)
    ledger.record(eid, step, "end")
    return {"by": ledger.label}


class ThreeSteps(hydra.Workflow[dict[str, Any]]):
    """Steps ``a``, ``b``, ``c`` of 100-300 ms each."""

    name = STEPS

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def run(self, ctx: hydra.WorkflowContext, req: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"n": req["n"]}
        for step in ("a", "b", "c"):
            seconds = random.uniform(0.1, 0.3)
            body = partial(_timed_step, self.ledger, ctx.execution_id, step, seconds)
            out[step] = hydra.step(ctx, step, body)
        return out


class Sleeper(hydra.Workflow[dict[str, Any]]):
    """Step ``before``, a durable sleep of ``SLEEP_S``, step ``after``."""

    def __init__(self, name: str, ledger: Ledger) -> None:
        self.name = name
        self.ledger = ledger

    def run(self, ctx: hydra.WorkflowContext, req: dict[str, Any]) -> dict[str, Any]:
        eid = ctx.execution_id
        before = hydra.step(ctx, "before", partial(_timed_step, self.ledger, eid, "before", 0.0))
        hydra.sleep(ctx, SLEEP_S, name="nap")
        after = hydra.step(ctx, "after", partial(_timed_step, self.ledger, eid, "after", 0.0))
        return {"before": before, "after": after}


class Blocker(hydra.Workflow[dict[str, Any]]):
    """One step ``block`` that takes ``BLOCK_S``: started with ``timeout=TIMEOUT_S``."""

    def __init__(self, name: str, ledger: Ledger) -> None:
        self.name = name
        self.ledger = ledger

    def run(self, ctx: hydra.WorkflowContext, req: dict[str, Any]) -> dict[str, Any]:
        eid = ctx.execution_id
        return hydra.step(ctx, "block", partial(_timed_step, self.ledger, eid, "block", BLOCK_S))


def workflows(ledger: Ledger) -> dict[str, hydra.Workflow[Any]]:
    return {
        STEPS: ThreeSteps(ledger),
        SLEEPER: Sleeper(SLEEPER, ledger),
        SLEEPER_SKEWED: Sleeper(SLEEPER_SKEWED, ledger),
        TIMEOUT: Blocker(TIMEOUT, ledger),
        TIMEOUT_AHEAD: Blocker(TIMEOUT_AHEAD, ledger),
    }


def report(result: str, event: str, **fields: Any) -> None:
    fields.update(event=event, pid=os.getpid(), t_true=TRUE_TIME_NS() / 1e9)
    append_line(result, json.dumps(fields, sort_keys=True, default=str) + "\n")


class ResultHandler(logging.Handler):
    """Copies ``hydra`` log records (INFO and above) to the result file."""

    def __init__(self, result: str) -> None:
        super().__init__(logging.INFO)
        self.result = result

    def emit(self, record: logging.LogRecord) -> None:
        try:
            report(
                self.result,
                "log",
                level=record.levelname,
                logger=record.name,
                msg=record.getMessage(),
                execution_id=getattr(record, "execution_id", None),
                worker_id=getattr(record, "worker_id", None),
            )
        except Exception:
            self.handleError(record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--skew", type=float, default=0.0, help="seconds (patched at start-up)")
    parser.add_argument("--workflow", action="append", choices=ALL, required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--claim-timeout", type=float, default=10.0)
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

    ledger = Ledger(args.ledger, args.label)
    store = hydra.SQLStore(args.url, auto_migrate=True)
    engine = hydra.Engine(store, namespace=args.namespace)
    worker = hydra.Worker(
        engine,
        worker_id=f"{args.label}-{os.getpid()}",
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        heartbeat_interval=args.heartbeat_interval,
        claim_timeout=args.claim_timeout,
    )
    defined = workflows(ledger)
    for name in args.workflow:
        worker.register(defined[name])
    worker.start()
    report(
        args.result,
        "ready",
        label=args.label,
        worker_id=worker.worker_id,
        wall_skew_s=(time.time_ns() - TRUE_TIME_NS()) / 1e9,
        clock=repr(engine.clock),
    )

    code, reason = 0, "sigterm"
    while not stop.wait(0.05):
        if os.getppid() != parent:
            code, reason = 2, "parent gone"
            break
        if time.monotonic() > deadline:
            code, reason = 3, "max-seconds"
            break
    worker.shutdown(timeout=2)
    report(args.result, "exit", code=code, reason=reason)
    store.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # A blocking step may still hold a pool thread: do not wait for it at exit.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
