"""One clock per database: workers whose wall clocks are a minute wrong change nothing.

Three worker processes (``clock_worker.py``) share one PostgreSQL or MariaDB database: one
with its wall clock 60 s behind, one correct, one 60 s ahead (``time.time``,
``time.time_ns`` and ``datetime.now`` patched at start-up; see ``clock_worker.py``).
Leases are short (``claim_timeout`` 10 s, heartbeats every second), so a worker that
judged leases by its own clock would take over every live lease of the others at once.

Measured in real time (the ledger's timestamps come from the unpatched clock):

- 30 executions of three 100-300 ms steps: all complete on attempt 1, every step body
  runs exactly once, and no worker takes anything over;
- sleeps of 3 s last 3 s (±1 s, never less), also when started and woken by the skewed
  workers only;
- a timeout of 3 s on a step that blocks for 6 s fires after 3 s (never earlier, at
  most 1 s later), also when the worker running it is the one 60 s ahead.

On a worker that read its own wall clock (hydra before ``DatabaseClock``) every one of
these fails. SQLite is not run here: its workers share one machine, hence one clock.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hydra
from tests.conftest import StoreURLs

WORKER_SCRIPT = Path(__file__).parent / "clock_worker.py"


def _load_worker_module() -> Any:
    name = "hydra_tests_clock_worker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, WORKER_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cw = _load_worker_module()

pytestmark = pytest.mark.slow

SKEW_S = 60.0
#: label -> (wall clock skew in seconds, workflows it runs)
ROLES: dict[str, tuple[float, tuple[str, ...]]] = {
    "behind": (-SKEW_S, (cw.STEPS, cw.SLEEPER, cw.SLEEPER_SKEWED, cw.TIMEOUT)),
    "correct": (0.0, (cw.STEPS, cw.SLEEPER, cw.TIMEOUT)),
    "ahead": (SKEW_S, (cw.STEPS, cw.SLEEPER, cw.SLEEPER_SKEWED, cw.TIMEOUT, cw.TIMEOUT_AHEAD)),
}
COUNTS = {cw.STEPS: 30, cw.SLEEPER: 4, cw.SLEEPER_SKEWED: 3, cw.TIMEOUT: 2, cw.TIMEOUT_AHEAD: 1}
#: how much earlier than asked a sleep may end in real time: the clock's precision (well
#: under a millisecond here; the wake time is computed after step "before" ended)
EARLY_SLACK_S = 0.05
#: a timeout counts from the claim, a little before the step's ledger line: how much
#: earlier than asked it may seem to fire, measured from that line (the exact check is on
#: the database's times: completed_at - started_at >= the timeout)
TIMEOUT_EARLY_SLACK_S = 0.25
#: how much later than asked: polling (50 ms), claiming, replaying
LATE_SLACK_S = 1.0


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request: pytest.FixtureRequest, store_urls: StoreURLs) -> str:
    """This session's isolated PostgreSQL schema / MariaDB database (skipped if unset)."""
    return store_urls.url(request.param)


class Child:
    """One ``clock_worker.py`` process with its result file and output log."""

    def __init__(self, tmp_path: Path, label: str, args: list[str]) -> None:
        self.label = label
        self.result = tmp_path / f"{label}.result.jsonl"
        self.log = tmp_path / f"{label}.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), "--result", str(self.result), *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.result.exists():
            return []
        lines = self.result.read_text().splitlines(keepends=True)
        out = [json.loads(line) for line in lines if line.endswith("\n")]
        return [e for e in out if kind is None or e["event"] == kind]

    def describe(self) -> str:
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return (
            f"{self.label}: pid {self.proc.pid} returncode {self.proc.poll()}\n"
            f"--- output ---\n{log[-3000:]}\n--- events ---\n"
            + "\n".join(json.dumps(e) for e in self.events()[-30:])
        )

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            self._log_file.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.stop()


def read_ledger(path: Path) -> list[tuple[str, str, str, int, str, float]]:
    """``(execution_id, step, phase, pid, label, true time in s)`` per complete line."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            eid, step, phase, pid, label, ns = line.strip().split(",")
            out.append((eid, step, phase, int(pid), label, int(ns) / 1e9))
    return out


def test_skewed_worker_clocks_share_the_database_time(
    server_url: str, children: list[Child], tmp_path: Path
) -> None:
    namespace = f"clock-{uuid.uuid4().hex}"
    ledger = tmp_path / "ledger.txt"
    for label, (skew, names) in ROLES.items():
        args = ["--url", server_url, "--namespace", namespace, "--label", label]
        args += ["--skew", str(skew), "--ledger", str(ledger), "--max-seconds", "60"]
        args += ["--claim-timeout", "10", "--heartbeat-interval", "1", "--concurrency", "4"]
        for name in names:
            args += ["--workflow", name]
        children.append(Child(tmp_path, label, args))

    store = hydra.SQLStore(server_url, auto_migrate=True)
    try:
        engine = hydra.Engine(store, namespace=namespace)
        deadline = time.monotonic() + 20
        while not all(c.events("ready") for c in children):
            for c in children:
                assert c.proc.poll() is None, c.describe()
            assert time.monotonic() < deadline, "\n".join(c.describe() for c in children)
            time.sleep(0.05)
        # The patch works: each child's wall clock is off by its skew (real time aside).
        for c in children:
            ready = c.events("ready")[0]
            assert abs(ready["wall_skew_s"] - ROLES[c.label][0]) < 0.5, ready

        kinds: dict[str, str] = {}
        for name, count in COUNTS.items():
            for n in range(count):
                timeout = cw.TIMEOUT_S if name in (cw.TIMEOUT, cw.TIMEOUT_AHEAD) else None
                kinds[engine.start_workflow(name, {"n": n}, timeout=timeout)] = name

        # Watch until every execution ends, noting (in real time) when each one did.
        ended_at: dict[str, float] = {}
        deadline = time.monotonic() + 40
        while len(ended_at) < len(kinds) and time.monotonic() < deadline:
            for row in engine.list_executions(limit=len(kinds) + 10):
                if row.id in kinds and row.terminal and row.id not in ended_at:
                    ended_at[row.id] = time.time()
            time.sleep(0.02)
        executions = {eid: engine.get_execution(eid) for eid in kinds}
    finally:
        store.close()
    for c in children:
        c.stop()

    entries = read_ledger(ledger)
    problems: list[str] = []
    if len(ended_at) < len(kinds):
        stuck = Counter(
            (kinds[e], ex.status.value) for e, ex in executions.items() if e not in ended_at
        )
        problems.append(f"not finished after 40 s: {dict(stuck)}")

    # Every step body ran once, and the three-step executions never lost an attempt.
    starts = Counter((eid, step) for eid, step, phase, *_ in entries if phase == "start")
    twice = {key: n for key, n in starts.items() if n > 1}
    if twice:
        problems.append(f"step bodies ran more than once: {twice}")
    by_label: dict[str, set[str]] = defaultdict(set)
    for eid, _step, _phase, _pid, label, _t in entries:
        by_label[kinds[eid]].add(label)
    for eid, ex in executions.items():
        if kinds[eid] not in (cw.TIMEOUT, cw.TIMEOUT_AHEAD) and (
            ex.status != hydra.Status.COMPLETED
            or ex.attempt != 1
            or any(s.attempts != 1 for s in ex.steps)
        ):
            problems.append(
                f"{kinds[eid]} {eid}: {ex.status.value} on attempt {ex.attempt} "
                f"({ex.error_type}: {ex.error_message}), steps "
                f"{[(s.name, s.attempts) for s in ex.steps]}"
            )
    if by_label[cw.STEPS] != set(ROLES):
        problems.append(f"not every worker ran steps: only {sorted(by_label[cw.STEPS])}")

    # No worker took over a live lease (a timed-out execution is claimed to be failed:
    # that claim is logged as a takeover and is expected).
    timeouts = {e for e, k in kinds.items() if k in (cw.TIMEOUT, cw.TIMEOUT_AHEAD)}
    for c in children:
        for e in c.events("log"):
            if e["msg"].startswith("took over") and e["execution_id"] not in timeouts:
                problems.append(f"{c.label} {e['msg']}")

    # Sleeps: from the end of step "before" to the start of step "after", in real time.
    measured: list[str] = []
    at = {(eid, step, phase): (label, t) for eid, step, phase, _pid, label, t in entries}
    for eid, kind in kinds.items():
        if kind not in (cw.SLEEPER, cw.SLEEPER_SKEWED):
            continue
        before, after = at.get((eid, "before", "end")), at.get((eid, "after", "start"))
        if before is None or after is None:
            problems.append(f"{kind} {eid}: before {before}, after {after}")
            continue
        slept = after[1] - before[1]
        who = f"slept by {before[0]}, woken by {after[0]}"
        measured.append(f"{kind}: slept {slept:.3f} s ({who})")
        if not cw.SLEEP_S - EARLY_SLACK_S <= slept <= cw.SLEEP_S + LATE_SLACK_S:
            problems.append(f"{kind} {eid}: a {cw.SLEEP_S:g} s sleep lasted {slept:.2f} s ({who})")
        if kind == cw.SLEEPER_SKEWED and {before[0], after[0]} - {"behind", "ahead"}:
            problems.append(f"{kind} {eid}: {who}")

    # Timeouts: from the start of the blocking step to the execution's failure, real time.
    for eid in timeouts:
        ex, kind = executions[eid], kinds[eid]
        block = at.get((eid, "block", "start"))
        if block is None or eid not in ended_at:
            problems.append(f"{kind} {eid}: block step {block}, {ex.status.value}")
            continue
        fired = ended_at[eid] - block[1]
        measured.append(f"{kind}: timed out {fired:.3f} s after its step began (run by {block[0]})")
        if ex.status != hydra.Status.FAILED or ex.error_type != "WorkflowTimeoutError":
            problems.append(f"{kind} {eid}: {ex.status.value} {ex.error_type} {ex.error_message}")
        if not cw.TIMEOUT_S - TIMEOUT_EARLY_SLACK_S <= fired <= cw.TIMEOUT_S + LATE_SLACK_S:
            problems.append(
                f"{kind} {eid}: a {cw.TIMEOUT_S:g} s timeout fired after {fired:.2f} s "
                f"(run by {block[0]})"
            )
        # On the database's time base: never before started_at + timeout.
        assert ex.started_at is not None and ex.completed_at is not None
        ran_s = (ex.completed_at - ex.started_at).total_seconds()
        if ran_s < cw.TIMEOUT_S:
            problems.append(
                f"{kind} {eid}: failed {ran_s:.3f} s after its start by the stored times "
                f"(run by {block[0]})"
            )
        if kind == cw.TIMEOUT_AHEAD and block[0] != "ahead":
            problems.append(f"{kind} {eid}: run by {block[0]}")

    print("\n".join(measured))  # shown by pytest -rP
    assert not problems, "\n".join(problems) + "\n\n" + "\n\n".join(c.describe() for c in children)
