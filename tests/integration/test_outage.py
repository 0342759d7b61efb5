"""A real ``hydra.Worker`` rides out a database outage shorter than its lease.

The worker's store reaches the server through a ``hydra.testing.proxy.TCPProxy``; the
test starts workflows and reads results through a second store that does not. The proxy
then plays a server restart (every connection reset, new ones refused for 2 s) or a
network blip (every connection reset, reconnecting works at once), while a step body
runs or while the worker is idle. Promised (docs/semantics.md, "Running"): an outage
shorter than ``claim_timeout`` costs no attempt, re-runs no checkpointed step, and never
reaches workflow code (its ``except`` does not run).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import hydra
from hydra.testing.proxy import TCPProxy
from tests.conftest import StoreURLs

pytestmark = pytest.mark.slow

OUTAGE_S = 2.0
LEASE_S = 10.0


class ThreeSteps(hydra.Workflow[str]):
    """Three steps; the second waits for the test (``release``) once it has signalled
    that it is running (``entered_second``). Counts step bodies and compensations."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entered = Counter[str]()
        self.compensated = 0
        self.entered_second = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def _body(self, step: str, payload: str) -> str:
        with self._lock:
            self.entered[step] += 1
        if step == "two":
            self.entered_second.set()
            assert self.release.wait(LEASE_S), "the test never released step two"
        return f"{step}:{payload}"

    def run(self, ctx: hydra.WorkflowContext, payload: str) -> str:
        try:
            one = hydra.step(ctx, "one", lambda: self._body("one", payload))
            two = hydra.step(ctx, "two", lambda: self._body("two", payload))
            three = hydra.step(ctx, "three", lambda: self._body("three", payload))
        except Exception:
            with self._lock:
                self.compensated += 1  # what must never run because of the database
            raise
        return " ".join((one, two, three))


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request: pytest.FixtureRequest, store_urls: StoreURLs) -> str:
    """This session's isolated database on the PostgreSQL or the MySQL/MariaDB server."""
    url = store_urls.url(request.param)
    hydra.SQLStore(url, auto_migrate=True).close()  # the schema, before any proxying
    return url


@pytest.fixture
def proxy(server_url: str) -> Iterator[TCPProxy]:
    with TCPProxy.for_url(server_url) as p:
        yield p


class Setup:
    """A worker on a store behind the proxy, and an engine on a direct store."""

    def __init__(self, url: str, proxy: TCPProxy, *, poll_interval: float = 0.05) -> None:
        self.namespace = f"outage-{uuid.uuid4().hex[:12]}"
        self.workflow = ThreeSteps(f"three-{uuid.uuid4().hex[:8]}")
        self.direct_store = hydra.SQLStore(url)
        self.proxied_store = hydra.SQLStore(proxy.url_for(url))
        self.direct = hydra.Engine(self.direct_store, namespace=self.namespace)
        self.worker_engine = hydra.Engine(self.proxied_store, namespace=self.namespace)
        self.worker = hydra.Worker(
            self.worker_engine,
            concurrency=2,
            poll_interval=poll_interval,
            heartbeat_interval=0.2,
            claim_timeout=LEASE_S,
        )
        self.worker.register(self.workflow)

    def close(self) -> None:
        self.workflow.release.set()
        self.worker.shutdown(timeout=5)
        self.proxied_store.close()
        self.direct_store.close()

    def start(self, payload: str) -> str:
        return self.direct.start_workflow(self.workflow.name, payload, max_attempts=3)

    def assert_clean_run(self, eid: str, payload: str, timeout: float) -> None:
        ex = self.direct.wait(eid, timeout=timeout)
        assert ex.status == "completed", (ex.status, ex.error_type, ex.error_message)
        assert ex.output == f"one:{payload} two:{payload} three:{payload}"
        assert ex.attempt == 1, "the outage cost an attempt"
        assert self.workflow.compensated == 0, "a store failure reached the workflow's except"

    def assert_threads_alive(self) -> None:
        dead = [t.name for t in self.worker._threads if not t.is_alive()]
        assert not dead, f"worker threads died: {dead}"


@pytest.fixture
def setup(server_url: str, proxy: TCPProxy) -> Iterator[Setup]:
    s = Setup(server_url, proxy)
    try:
        yield s
    finally:
        s.close()


# What the worker logs when a store call raised to it (the run, claim or heartbeat gave up).
_GAVE_UP = ("claiming failed", "heartbeat failed", "crashed", "the database failed")


def _worker_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The worker loop's own failure warnings: a store call that gave up on the database."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and any(s in r.getMessage() for s in _GAVE_UP)
    ]


def _run_through_fault(
    setup: Setup, proxy: TCPProxy, fault: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hydra")
    setup.worker.start()
    eid = setup.start("p")
    assert setup.workflow.entered_second.wait(10), "step two never started"
    fault()
    # The second step returns into the fault: its checkpoint, the heartbeats and the rest
    # of the run meet dead connections, then (after an outage) refused ones.
    setup.workflow.release.set()
    setup.assert_clean_run(eid, "p", timeout=LEASE_S)
    assert setup.workflow.entered == {"one": 1, "two": 1, "three": 1}
    assert not _worker_warnings(caplog), _worker_warnings(caplog)
    setup.assert_threads_alive()
    # The store really met the fault (the test is not passing by luck).
    assert any("retrying database call" in r.getMessage() for r in caplog.records)


def test_a_server_outage_during_a_step_costs_nothing(
    setup: Setup, proxy: TCPProxy, caplog: pytest.LogCaptureFixture
) -> None:
    began = time.monotonic()
    _run_through_fault(setup, proxy, lambda: proxy.outage(OUTAGE_S), caplog)
    assert time.monotonic() - began >= OUTAGE_S  # it did wait out the refusal


def test_connections_cut_during_a_step_cost_nothing(
    setup: Setup, proxy: TCPProxy, caplog: pytest.LogCaptureFixture
) -> None:
    _run_through_fault(setup, proxy, proxy.cut, caplog)


def test_an_idle_worker_picks_up_work_started_during_an_outage(
    server_url: str, proxy: TCPProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hydra")
    postgres = server_url.startswith("postgresql")
    # On PostgreSQL the worker polls only every 30 s: what it picks up within seconds it
    # was told about by its LISTEN connection, which must come back after the outage and
    # make up for the NOTIFYs it missed meanwhile.
    setup = Setup(server_url, proxy, poll_interval=30.0 if postgres else 0.05)
    try:
        setup.workflow.release.set()
        setup.worker.start()
        time.sleep(0.3)  # idle: the first claim found nothing, the listener is listening
        proxy.outage(OUTAGE_S)
        eid = setup.start("during")  # through the direct store: arrives during the outage
        setup.assert_clean_run(eid, "during", timeout=OUTAGE_S + 4)
        setup.assert_threads_alive()
        # The worker is still woken at once (on PostgreSQL: its LISTEN works again).
        began = time.monotonic()
        eid = setup.start("after")
        setup.assert_clean_run(eid, "after", timeout=4)
        assert time.monotonic() - began < 3
        assert setup.workflow.entered == {"one": 2, "two": 2, "three": 2}
        assert not _worker_warnings(caplog), _worker_warnings(caplog)
        setup.assert_threads_alive()
    finally:
        setup.close()
