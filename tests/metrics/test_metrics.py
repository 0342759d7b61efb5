"""hydra's Prometheus metrics: exact counter values after runs with retries, a crash
takeover, a zombie worker, a sleep and cron fires (on the fake clock, on every store); the
Go README's PromQL queries evaluated on two scrapes; a worker serving ``/metrics``."""

from __future__ import annotations

import math
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

import hydra
from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment
from hydra.testing.memory import MemoryStore
from tests.waiting import wait_until

from .scrape import Scrape, divide, labels, parse, rate, scrape, value, values

WAIT = 20.0


# -- workflows whose runs are known exactly ---------------------------------------------
class FlakyStep(hydra.Workflow[None]):
    """fetch fails twice (two step retries, 1 s then 2 s), then fetch and save succeed."""

    name = "flaky-step"

    def __init__(self) -> None:
        self.failures = 2

    def fetch(self) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("flaky")
        return "data"

    def run(self, ctx: hydra.WorkflowContext, _: None) -> str:
        retry = hydra.RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1))
        data = hydra.step(ctx, "fetch", self.fetch, retry=retry)
        return hydra.step(ctx, "save", lambda: f"saved {data}")


class FlakyWorkflow(hydra.Workflow[None]):
    """Attempt 1 runs step one and then fails outside any step; attempt 2 replays one."""

    name = "flaky-workflow"

    def run(self, ctx: hydra.WorkflowContext, _: None) -> str:
        one = hydra.step(ctx, "one", lambda: 1)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return f"one={one}"


@hydra.workflow("crashy")
def crashy(ctx: hydra.WorkflowContext, _: None) -> str:
    a = hydra.step(ctx, "a", lambda: "a")
    return a + hydra.step(ctx, "b", lambda: "b")


@hydra.workflow("sleeper")
def sleeper(ctx: hydra.WorkflowContext, _: None) -> str:
    before = hydra.step(ctx, "before", lambda: "x")
    hydra.sleep(ctx, timedelta(hours=1))
    return before + hydra.step(ctx, "after", lambda: "y")


@hydra.workflow("doomed")
def doomed(ctx: hydra.WorkflowContext, _: None) -> None:
    raise hydra.NonRetryableError("never works")


@hydra.workflow("zombie")
def zombie(ctx: hydra.WorkflowContext, _: None) -> str:
    return hydra.step(ctx, "work", lambda: "done")


@hydra.workflow("replayer")
def replayer(ctx: hydra.WorkflowContext, _: None) -> str:
    a = hydra.step(ctx, "a", lambda: "a")
    b = hydra.step(ctx, "b", lambda: "b")
    hydra.sleep(ctx, timedelta(minutes=5))
    return a + b + hydra.step(ctx, "c", lambda: "c")


@pytest.fixture
def env(store_factory: Callable[[], Store]) -> TestEnvironment:
    return TestEnvironment(
        store=store_factory(),
        namespace=f"shop-{uuid.uuid4().hex[:8]}",
        metrics=hydra.Metrics(CollectorRegistry()),
        workers=2,
    )


def run_everything(env: TestEnvironment) -> None:
    """Six workflows and two cron jobs, with every kind of event once or more."""
    for wf in (FlakyStep(), FlakyWorkflow(), crashy, sleeper, doomed, zombie):
        env.register(wf)
    nightly_calls: list[datetime] = []

    def broken(ctx: hydra.CronContext) -> None:
        raise RuntimeError("cron handler fails")

    env.engine.register_cron(
        "0 3 * * *", "nightly", lambda ctx: nightly_calls.append(ctx.scheduled_at)
    )
    env.engine.register_cron("0 3 * * *", "broken", broken)
    env.crash("b", "during")  # crashy's worker dies in step b
    ids = {
        name: env.start(name, None, max_attempts=3, retry_backoff=timedelta(seconds=1))
        for name in ("flaky-step", "flaky-workflow", "crashy", "sleeper", "doomed")
    }
    env.run_until_all_complete()
    # A zombie: paused inside "work" past its lease; another worker takes over and
    # finishes; the zombie wakes up and its checkpoint is fenced out.
    env.pause("work", "during")
    ids["zombie"] = env.start("zombie", None)
    env.run_until_complete(ids["zombie"])
    assert env.resume() == ["lost"]
    statuses = {name: env.execution(eid).status for name, eid in ids.items()}
    assert statuses == {
        "flaky-step": "completed",
        "flaky-workflow": "completed",
        "crashy": "completed",
        "sleeper": "completed",
        "doomed": "failed",
        "zombie": "completed",
    }, env.format_history()
    env.advance(timedelta(hours=4))  # past 03:00: each cron job fires once
    assert len(nightly_calls) == 1


def test_every_counter_after_retries_a_takeover_a_zombie_a_sleep_and_cron(
    env: TestEnvironment,
) -> None:
    run_everything(env)
    s = scrape(env.engine.metrics.registry)  # type: ignore[union-attr]
    ns = env.engine.namespace

    def by_workflow(name: str, **where: str) -> dict[str, float]:
        return {k[0]: v for k, v in values(s, name, "workflow", namespace=ns, **where).items()}

    six = ["crashy", "doomed", "flaky-step", "flaky-workflow", "sleeper", "zombie"]
    assert by_workflow("hydra_workflows_started_total") == dict.fromkeys(six, 1)
    assert by_workflow("hydra_workflows_completed_total", status="completed") == {
        "crashy": 1,
        "flaky-step": 1,
        "flaky-workflow": 1,
        "sleeper": 1,
        "zombie": 1,
    }
    assert by_workflow("hydra_workflows_completed_total", status="failed") == {"doomed": 1}
    assert by_workflow("hydra_workflows_retried_total") == {"flaky-workflow": 1}
    assert by_workflow("hydra_workflow_sleeps_total") == {"sleeper": 1}
    # Step bodies: fetch failed twice then worked, save; one; a and b (b's crashed attempt
    # recorded nothing); before and after; work (the zombie's copy was never recorded).
    assert by_workflow("hydra_steps_executed_total", status="completed") == {
        "crashy": 2,
        "flaky-step": 2,
        "flaky-workflow": 1,
        "sleeper": 2,
        "zombie": 1,
    }
    assert by_workflow("hydra_steps_executed_total", status="failed") == {"flaky-step": 2}
    assert by_workflow("hydra_steps_retried_total") == {"flaky-step": 2}
    # Replays: one (attempt 2), a (after the takeover), before (after the sleep).
    assert by_workflow("hydra_steps_cached_total", status="completed") == {
        "crashy": 1,
        "flaky-workflow": 1,
        "sleeper": 1,
    }
    # Claims: one per run. flaky-step ran 3 times, flaky-workflow twice (a retry),
    # crashy twice (a takeover), sleeper twice, zombie twice (a takeover), doomed once.
    assert by_workflow("hydra_lease_acquisitions_total") == {
        "crashy": 2,
        "doomed": 1,
        "flaky-step": 3,
        "flaky-workflow": 2,
        "sleeper": 2,
        "zombie": 2,
    }
    assert by_workflow("hydra_lease_takeovers_total") == {"crashy": 1, "zombie": 1}
    assert by_workflow("hydra_leases_lost_total") == {"zombie": 1}
    # Queue time is measured on claims of pending executions: every first claim, plus
    # flaky-workflow's retry. On the fake clock each waited exactly 0 s.
    assert by_workflow("hydra_workflow_queue_time_seconds_count") == {
        "crashy": 1,
        "doomed": 1,
        "flaky-step": 1,
        "flaky-workflow": 2,
        "sleeper": 1,
        "zombie": 1,
    }
    assert set(by_workflow("hydra_workflow_queue_time_seconds_sum").values()) == {0.0}
    # Durations from first start to end, exact on the fake clock: step backoffs 1 s + 2 s,
    # a 1 s workflow retry backoff, two 60 s lease expiries, a 1 h sleep.
    assert by_workflow("hydra_workflow_duration_seconds_sum", status="completed") == {
        "crashy": 60.0,
        "flaky-step": 3.0,
        "flaky-workflow": 1.0,
        "sleeper": 3600.0,
        "zombie": 60.0,
    }
    assert by_workflow("hydra_workflow_duration_seconds_count", status="failed") == {"doomed": 1}
    assert (
        value(
            s,
            "hydra_workflow_duration_seconds_bucket",
            namespace=ns,
            workflow="sleeper",
            status="completed",
            le="3600.0",
        )
        == 1
    )
    assert by_workflow("hydra_step_duration_seconds_count", status="failed") == {"flaky-step": 2}
    # Cron: each job fired its 03:00 slot once; the broken handler's error was counted.
    assert values(s, "hydra_cron_fires_total", "cron_job", namespace=ns) == {
        ("broken",): 1,
        ("nightly",): 1,
    }
    assert values(s, "hydra_cron_failures_total", "cron_job", namespace=ns) == {("broken",): 1}
    # Simulated workers are not hydra.Workers: no worker series.
    assert "hydra_worker_polls_total" not in s and "hydra_workflows_active" not in s


def test_the_go_readme_queries_on_two_scrapes(env: TestEnvironment) -> None:
    """rate(cached[5m]) / rate(executed[5m]) and the average-duration query, evaluated as
    PromQL would on two scrapes five minutes apart."""
    run_everything(env)
    registry = env.engine.metrics.registry  # type: ignore[union-attr]
    ns = env.engine.namespace
    first = scrape(registry)
    env.register(replayer)
    eid = env.start("replayer", None)
    env.run_until_complete(eid)  # a and b run; 5 min sleep; a and b replay, c runs
    second = scrape(registry)
    window = 300.0

    hit_rate = divide(
        rate(first, second, "hydra_steps_cached_total", window),
        rate(first, second, "hydra_steps_executed_total", window),
    )
    mine = labels(namespace=ns, workflow="replayer", status="completed")
    assert hit_rate[mine] == pytest.approx(2 / 3)  # 2 replayed per 3 executed
    # Series matched one to one: failed steps are never cached, so they have no match;
    # workflows idle in the window give 0/0.
    assert all(dict(ls)["status"] == "completed" for ls in hit_rate)
    assert math.isnan(hit_rate[labels(namespace=ns, workflow="crashy", status="completed")])

    average = divide(
        rate(first, second, "hydra_workflow_duration_seconds_sum", window),
        rate(first, second, "hydra_workflow_duration_seconds_count", window),
    )
    assert average[mine] == pytest.approx(300.0)  # the 5 min sleep
    throughput = rate(first, second, "hydra_workflows_completed_total", window)
    assert throughput[mine] == pytest.approx(1 / window)
    assert throughput[labels(namespace=ns, workflow="sleeper", status="completed")] == 0


def test_metrics_on_separate_registries_do_not_collide() -> None:
    a, b = hydra.Metrics(), hydra.Metrics()
    assert a.registry is not b.registry
    shared = CollectorRegistry()
    c = hydra.Metrics(registry=shared)
    assert c.registry is shared
    with pytest.raises(ValueError, match="Duplicated"):
        hydra.Metrics(registry=shared)  # one Metrics per registry: share the object instead
    for m in (a, b, c):
        m.workflow_started("ns", "wf")
    a.workflow_started("ns", "wf")
    series = {"namespace": "ns", "workflow": "wf"}
    counts = [
        m.registry.get_sample_value("hydra_workflows_started_total", series) for m in (a, b, c)
    ]
    assert counts == [2, 1, 1]


def test_one_metrics_serves_engines_of_several_namespaces() -> None:
    metrics = hydra.Metrics()
    store = MemoryStore()
    for ns in ("eu", "us"):
        hydra.Engine(store, namespace=ns, metrics=metrics).start_workflow("wf", None)
    s = scrape(metrics.registry)
    assert values(s, "hydra_workflows_started_total", "namespace") == {("eu",): 1, ("us",): 1}


def test_an_engine_without_metrics_counts_nothing() -> None:
    engine = hydra.Engine(MemoryStore())
    assert engine.metrics is None
    engine.start_workflow("wf", None)


# -- a real worker serving /metrics -----------------------------------------------------
def http_scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return parse(response.read().decode())


def test_a_worker_with_a_metrics_port_serves_them(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    metrics = hydra.Metrics()
    clock = FakeClock(datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC))  # between cron slots
    engine = hydra.Engine(
        store, namespace=f"m-{uuid.uuid4().hex[:8]}", clock=clock, metrics=metrics
    )
    ns = engine.namespace
    inside, release = threading.Event(), threading.Event()

    @hydra.workflow("blocking")
    def blocking(ctx: hydra.WorkflowContext, _: None) -> str:
        def body() -> str:
            inside.set()
            release.wait(WAIT)
            return "ok"

        return hydra.step(ctx, "body", body)

    fired = threading.Event()
    engine.register_cron("* * * * *", "tick", lambda ctx: fired.set())
    worker = hydra.Worker(
        engine,
        worker_id="w1",
        concurrency=4,
        metrics_port=0,
        poll_interval=0.005,
        heartbeat_interval=0.01,
        claim_timeout=30,
    )
    worker.register(blocking)
    worker_labels = {"namespace": ns, "worker_id": "w1"}
    with worker:
        port = worker.metrics_port
        assert port is not None and port > 0
        eid = engine.start_workflow("blocking", None)
        assert inside.wait(WAIT)

        def beats() -> float:
            return value(http_scrape(port), "hydra_worker_heartbeats_total", **worker_labels) or 0

        wait_until(lambda: beats() >= 1, "a heartbeat was counted")
        during = http_scrape(port)
        release.set()
        engine.wait(eid, timeout=WAIT)
        clock.advance(timedelta(minutes=1))
        assert fired.wait(WAIT)
        tick = {"namespace": ns, "cron_job": "tick"}
        wait_until(
            lambda: value(http_scrape(port), "hydra_cron_fires_total", **tick) == 1,
            "the cron fire was counted",
        )
        after = http_scrape(port)
    # The Go README's utilisation query while one run of four was in flight.
    utilisation = divide(
        during["hydra_workflows_active"], during["hydra_worker_concurrency_current"]
    )
    assert utilisation == {labels(**worker_labels): 0.25}
    assert value(after, "hydra_workflows_active", **worker_labels) == 0
    assert (value(after, "hydra_worker_polls_total", **worker_labels) or 0) >= 1
    completed = {"namespace": ns, "workflow": "blocking", "status": "completed"}
    assert value(after, "hydra_workflows_completed_total", **completed) == 1
    assert value(after, "hydra_lease_acquisitions_total", namespace=ns, workflow="blocking") == 1
    # Stopped: capacity 0, and the port is closed.
    assert metrics.registry.get_sample_value("hydra_worker_concurrency_current", worker_labels) == 0
    with pytest.raises(urllib.error.URLError):
        http_scrape(port)


def test_a_metrics_port_on_an_engine_without_metrics_gives_it_some() -> None:
    engine = hydra.Engine(MemoryStore(), namespace="plain")
    with hydra.Worker(engine, worker_id="w", metrics_port=0, poll_interval=0.005) as worker:
        assert isinstance(engine.metrics, hydra.Metrics)
        s = http_scrape(worker.metrics_port)  # type: ignore[arg-type]
        assert value(s, "hydra_worker_concurrency_current", namespace="plain", worker_id="w") == 10


SHIFTY_CODE = {"renamed": False}


@hydra.workflow("shifty")
def shifty(ctx: hydra.WorkflowContext, _: None) -> str:
    """Its first step is renamed by a "deploy" while an execution sleeps past it."""
    hydra.step(ctx, "charge-card" if SHIFTY_CODE["renamed"] else "charge", lambda: 5)
    hydra.sleep(ctx, timedelta(minutes=1), name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def test_each_park_counts_once_and_uses_no_workflow_retry(env: TestEnvironment) -> None:
    SHIFTY_CODE["renamed"] = False
    env.register(shifty)
    eid = env.start("shifty", None)
    env.run_until_idle()
    assert env.execution(eid).status == "sleeping"
    registry = env.engine.metrics.registry  # type: ignore[union-attr]
    ns = env.engine.namespace

    def parked() -> float | None:
        return value(
            scrape(registry), "hydra_executions_parked_total", namespace=ns, workflow="shifty"
        )

    assert parked() is None  # no series before the first park
    try:
        SHIFTY_CODE["renamed"] = True  # the deploy
        env.advance(timedelta(minutes=1))  # the nap ends; the replay finds "charge-card"
        assert env.execution(eid).error_type == "NonDeterminismError"
        assert parked() == 1
        env.advance(timedelta(minutes=1))  # the next try parks it again
        assert parked() == 2
    finally:
        SHIFTY_CODE["renamed"] = False  # the fix
    assert env.run_until_complete(eid).output == "shipped"
    s = scrape(registry)
    assert parked() == 2
    assert value(s, "hydra_workflows_retried_total", namespace=ns, workflow="shifty") is None
    assert (
        value(
            s,
            "hydra_workflows_completed_total",
            namespace=ns,
            workflow="shifty",
            status="completed",
        )
        == 1
    )


class Quick(hydra.Workflow[None]):
    name = "quick"

    def run(self, ctx: hydra.WorkflowContext, _: None) -> str:
        return hydra.step(ctx, "one", lambda: "done")


def test_queue_wait_counts_the_time_a_rate_limit_held_an_execution_back(
    env: TestEnvironment,
) -> None:
    env.engine.register_queue(
        hydra.Queue("partner", rate_limit=hydra.RateLimit(1, per=timedelta(seconds=30)))
    )
    env.register(Quick())
    for _ in range(3):
        env.start("quick", None, queue="partner")
    env.start("quick", None)
    env.run_until_all_complete()
    s = scrape(env.engine.metrics.registry)  # type: ignore[union-attr]
    ns = env.engine.namespace
    # The partner queue's three first starts went at 0 s, 30 s and 60 s: 90 s of waiting.
    assert value(s, "hydra_queue_wait_seconds_count", namespace=ns, queue="partner") == 3
    assert value(s, "hydra_queue_wait_seconds_sum", namespace=ns, queue="partner") == 90.0
    assert value(s, "hydra_queue_wait_seconds_sum", namespace=ns, queue="default") == 0.0
