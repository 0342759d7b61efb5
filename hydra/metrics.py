"""Prometheus metrics (prometheus-client): ``hydra.Metrics``.

``Engine(store, metrics=hydra.Metrics())`` counts what the engine and its workers do in
this process; ``Worker(engine, metrics_port=9464)`` serves them at ``/metrics`` (a worker
with a port on an engine without metrics gives the engine a ``Metrics`` of its own). Each
``Metrics`` registers on its own ``CollectorRegistry`` unless given one, so tests and
several engines never collide; pass ``registry=prometheus_client.REGISTRY`` to add hydra's
metrics to the registry your application already serves. One ``Metrics`` may be shared by
engines of several namespaces: every series carries a ``namespace`` label.

Labels stay bounded: namespace, workflow name, status, worker id, cron job name; never an
execution id or a step name. Counts are per process: sum them across processes in
PromQL. The run loop reports through an ``Observer`` (``MetricsObserver``); workers report
their polls, heartbeats, capacity and runs in flight directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hydra.events import Observer
from hydra.status import Status
from hydra.store.base import child_topic

#: the start of the topic a child's end travels on (its waits are counted apart)
CHILD_TOPIC_PREFIX = child_topic("")

if TYPE_CHECKING:
    from hydra.clock import Clock
    from hydra.events import RunInfo
    from hydra.store.base import Claim

WF = ("namespace", "workflow")
WORKER = ("namespace", "worker_id")
CRON = ("namespace", "cron_job")

# Workflows run from milliseconds to days (durable sleeps count).
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
    6 * 3600, 86400, 7 * 86400,
)  # fmt: skip
QUEUE_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip
# A receive may wait milliseconds (a message already there) or days (a person's decision).
WAIT_BUCKETS = (
    0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400,
)  # fmt: skip
STEP_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
)  # fmt: skip


# The series a metric family is scraped as, by type (prometheus-client's exposition).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


class Metrics:
    """hydra's Prometheus metrics, on ``registry`` (a fresh ``CollectorRegistry`` if None).

    Workflow series are labelled ``namespace`` and ``workflow`` (plus ``status`` where
    it says so), worker series ``namespace`` and ``worker_id``, cron series ``namespace``
    and ``cron_job`` (plus ``workflow`` where it says so). ``names()`` lists every metric
    name this exports.
    """

    #: every label any hydra series carries (histograms add ``le``)
    LABELS = frozenset((*WF, *WORKER, *CRON, "status"))

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # -- workflows ------------------------------------------------------------------
        self.workflows_started = Counter(
            "hydra_workflows_started",
            "Executions created by start_workflow (and cron) in this process",
            WF,
            registry=r,
        )
        self.workflows_completed = Counter(
            "hydra_workflows_completed",
            "Executions a worker ended, by final status (completed or failed)",
            (*WF, "status"),
            registry=r,
        )
        self.workflow_duration = Histogram(
            "hydra_workflow_duration_seconds",
            "Time from an execution's first start to its end (sleeps and retries included)",
            (*WF, "status"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.workflow_queue_time = Histogram(
            "hydra_workflow_queue_time_seconds",
            "Time a pending execution waited from its due time (start, or a workflow "
            "retry) until a worker claimed it",
            WF,
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "hydra_queue_wait_seconds",
            "Time a pending execution of a queue waited from its due time until a worker "
            "claimed it, including any time the queue's limits held it back",
            ("namespace", "queue"),
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.workflows_retried = Counter(
            "hydra_workflows_retried",
            "Workflow attempts that failed and were scheduled to run again",
            WF,
            registry=r,
        )
        self.workflows_sleeping = Counter(
            "hydra_workflow_sleeps",
            "Durable sleeps started (the execution went to sleeping)",
            WF,
            registry=r,
        )
        # -- messages -------------------------------------------------------------------
        self.messages_sent = Counter(
            "hydra_messages_sent",
            "Messages stored for an execution (engine.send, and hydra.send by the runs of "
            "this process's workers), by the sender's namespace",
            ("namespace",),
            registry=r,
        )
        self.messages_received = Counter(
            "hydra_messages_received",
            "Messages taken by a hydra.receive, by the receiving workflow",
            WF,
            registry=r,
        )
        self.message_wait = Histogram(
            "hydra_message_wait_seconds",
            "Time from an execution first reaching a hydra.receive until it got its "
            "message (0 when one was already there)",
            WF,
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.receive_timeouts = Counter(
            "hydra_receive_timeouts",
            "hydra.receive calls whose deadline passed with no message (WaitTimeoutError)",
            WF,
            registry=r,
        )
        # -- children -------------------------------------------------------------------
        self.child_wait = Histogram(
            "hydra_child_wait_seconds",
            "Time from a parent first reaching hydra.wait_child until its child's end "
            "reached it (0 when the child had already ended), by the parent's workflow",
            WF,
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.child_wait_timeouts = Counter(
            "hydra_child_wait_timeouts",
            "hydra.wait_child calls whose deadline passed before the child ended",
            WF,
            registry=r,
        )
        # -- steps ----------------------------------------------------------------------
        self.steps_executed = Counter(
            "hydra_steps_executed",
            "Step bodies run, by outcome (completed or failed)",
            (*WF, "status"),
            registry=r,
        )
        self.step_duration = Histogram(
            "hydra_step_duration_seconds",
            "Time a step body took, by outcome",
            (*WF, "status"),
            buckets=STEP_BUCKETS,
            registry=r,
        )
        # ``status`` is always "completed" (only completed steps are checkpointed): it
        # gives this the label set of hydra_steps_executed_total{status="completed"}, so
        # rate(hydra_steps_cached_total[5m]) / rate(hydra_steps_executed_total[5m])
        # matches series one to one, as the query is written in the Go README.
        self.steps_cached = Counter(
            "hydra_steps_cached",
            "Steps answered from their checkpoint on replay (their body did not run)",
            (*WF, "status"),
            registry=r,
        )
        self.steps_retried = Counter(
            "hydra_steps_retried",
            "Step attempts that failed and were scheduled to run again after a backoff",
            WF,
            registry=r,
        )
        # -- leases ---------------------------------------------------------------------
        self.lease_acquisitions = Counter(
            "hydra_lease_acquisitions",
            "Executions claimed (takeovers included)",
            WF,
            registry=r,
        )
        self.lease_takeovers = Counter(
            "hydra_lease_takeovers",
            "Executions claimed after their previous owner's lease expired (a crash or a "
            "hang); each uses up one workflow attempt",
            WF,
            registry=r,
        )
        self.leases_lost = Counter(
            "hydra_leases_lost",
            "Runs abandoned because their lease was gone (taken over or cancelled); "
            "nothing they wrote afterwards landed",
            WF,
            registry=r,
        )
        self.runs_interrupted = Counter(
            "hydra_runs_interrupted",
            "Runs stopped because the database failed under them; their executions "
            "resume from their checkpoints without using an attempt",
            WF,
            registry=r,
        )
        self.executions_parked = Counter(
            "hydra_executions_parked",
            "Runs that found the workflow's code no longer matching the execution's "
            "history (NonDeterminismError): the execution was parked, no attempt used, "
            "to be tried again after a growing delay",
            WF,
            registry=r,
        )
        # -- workers --------------------------------------------------------------------
        self.workflows_active = Gauge(
            "hydra_workflows_active",
            "Executions a worker is running now",
            WORKER,
            registry=r,
        )
        self.worker_concurrency = Gauge(
            "hydra_worker_concurrency_current",
            "Executions a worker may run at once (its concurrency); 0 once stopped",
            WORKER,
            registry=r,
        )
        self.worker_polls = Counter(
            "hydra_worker_polls",
            "Claim queries a worker made",
            WORKER,
            registry=r,
        )
        self.worker_heartbeats = Counter(
            "hydra_worker_heartbeats",
            "Heartbeats a worker sent (one per beat, for all its leases)",
            WORKER,
            registry=r,
        )
        self.runs_abandoned = Counter(
            "hydra_runs_abandoned",
            "Run threads a worker gave up on, stuck in workflow code past their "
            "execution's timeout (or after losing their lease): the slot was handed back",
            WORKER,
            registry=r,
        )
        self.leases_recovered = Counter(
            "hydra_leases_recovered",
            "Leases held under a worker's id by no run of it (a lost claim reply, a "
            "restart with the same id) that the worker gave back at once, no attempt used",
            WORKER,
            registry=r,
        )
        # -- cron -----------------------------------------------------------------------
        self.cron_fires = Counter(
            "hydra_cron_fires",
            "Cron slots fired by this process (each slot fires in exactly one process)",
            CRON,
            registry=r,
        )
        self.cron_failures = Counter(
            "hydra_cron_failures",
            "Cron handlers that raised, and cron workflows that could not be started",
            CRON,
            registry=r,
        )
        self.cron_unregistered_workflows = Counter(
            "hydra_cron_unregistered_workflow",
            "Cron slots that started a workflow no worker seems to run: this process does "
            "not register it and the execution of the job's previous slot was never claimed",
            (*CRON, "workflow"),
            registry=r,
        )

    def __repr__(self) -> str:
        return f"<hydra.Metrics on {self.registry!r}>"

    def names(self) -> set[str]:
        """Every hydra metric name as scraped (``_total``, ``_bucket``, ... included)."""
        return {
            family.name + suffix
            for family in self.registry.collect()
            if family.name.startswith("hydra_")
            for suffix in _SUFFIXES.get(family.type, ("",))
        }

    def observer(self, namespace: str, clock: Clock) -> Observer:
        """An observer that counts the runs of an engine of ``namespace``."""
        return MetricsObserver(self, namespace, clock)

    # -- reported by the engine, workers and cron schedulers -------------------------------
    def workflow_started(self, namespace: str, workflow: str) -> None:
        self.workflows_started.labels(namespace, workflow).inc()

    def worker_started(self, namespace: str, worker_id: str, concurrency: int) -> None:
        self.worker_concurrency.labels(namespace, worker_id).set(concurrency)
        self.workflows_active.labels(namespace, worker_id).set(0)

    def worker_stopped(self, namespace: str, worker_id: str) -> None:
        self.worker_concurrency.labels(namespace, worker_id).set(0)
        self.workflows_active.labels(namespace, worker_id).set(0)

    def worker_polled(self, namespace: str, worker_id: str) -> None:
        self.worker_polls.labels(namespace, worker_id).inc()

    def worker_heartbeat(self, namespace: str, worker_id: str) -> None:
        self.worker_heartbeats.labels(namespace, worker_id).inc()

    def run_began(self, namespace: str, worker_id: str) -> None:
        self.workflows_active.labels(namespace, worker_id).inc()

    def run_ended(self, namespace: str, worker_id: str) -> None:
        self.workflows_active.labels(namespace, worker_id).dec()

    def run_abandoned(self, namespace: str, worker_id: str) -> None:
        self.runs_abandoned.labels(namespace, worker_id).inc()

    def lease_recovered(self, namespace: str, worker_id: str) -> None:
        self.leases_recovered.labels(namespace, worker_id).inc()

    def cron_fired(self, namespace: str, job: str) -> None:
        self.cron_fires.labels(namespace, job).inc()

    def cron_failed(self, namespace: str, job: str) -> None:
        self.cron_failures.labels(namespace, job).inc()

    def cron_unregistered_workflow(self, namespace: str, job: str, workflow: str) -> None:
        self.cron_unregistered_workflows.labels(namespace, job, workflow).inc()


class MetricsObserver(Observer):
    """Counts the run loop's events into a ``Metrics`` (one of the engine's observers)."""

    def __init__(self, metrics: Metrics, namespace: str, clock: Clock) -> None:
        self.metrics = metrics
        self.namespace = namespace
        self.clock = clock

    def __repr__(self) -> str:
        return f"<MetricsObserver {self.namespace!r} into {self.metrics!r}>"

    def execution_started(self, execution_id: str, workflow_name: str) -> None:
        self.metrics.workflow_started(self.namespace, workflow_name)

    def message_sent(self, execution_id: str, topic: str, sender_id: str | None) -> None:
        self.metrics.messages_sent.labels(self.namespace).inc()

    def received(self, run: RunInfo, name: str, topic: str, waited_ms: int) -> None:
        labels = (self.namespace, run.workflow_name)
        if topic.startswith(CHILD_TOPIC_PREFIX):  # a wait_child got its child's end
            self.metrics.child_wait.labels(*labels).observe(max(waited_ms, 0) / 1000)
            return
        self.metrics.messages_received.labels(*labels).inc()
        self.metrics.message_wait.labels(*labels).observe(max(waited_ms, 0) / 1000)

    def wait_timed_out(self, run: RunInfo, name: str, topic: str) -> None:
        if topic.startswith(CHILD_TOPIC_PREFIX):
            self.metrics.child_wait_timeouts.labels(self.namespace, run.workflow_name).inc()
            return
        self.metrics.receive_timeouts.labels(self.namespace, run.workflow_name).inc()

    def claimed(self, claim: Claim) -> None:
        m, ex = self.metrics, claim.execution
        labels = (self.namespace, ex.workflow_name)
        m.lease_acquisitions.labels(*labels).inc()
        if claim.takeover:
            m.lease_takeovers.labels(*labels).inc()
        elif claim.previous_status == Status.PENDING and ex.updated_at >= ex.run_at:
            # A claim writes updated_at = now: the wait since the execution became due.
            waited = (ex.updated_at - ex.run_at) / 1000
            m.workflow_queue_time.labels(*labels).observe(waited)
            m.queue_wait.labels(self.namespace, ex.queue).observe(waited)

    def run_finished(self, claim: Claim, status: Status) -> None:
        ex = claim.execution
        labels = (self.namespace, ex.workflow_name, status.value)
        self.metrics.workflows_completed.labels(*labels).inc()
        started = ex.started_at if ex.started_at is not None else ex.updated_at
        end = self.clock.now_ms()
        self.metrics.workflow_duration.labels(*labels).observe(max(end - started, 0) / 1000)

    def run_retry_scheduled(self, claim: Claim) -> None:
        self.metrics.workflows_retried.labels(self.namespace, claim.execution.workflow_name).inc()

    def step_cached(self, run: RunInfo, name: str) -> None:
        self.metrics.steps_cached.labels(self.namespace, run.workflow_name, "completed").inc()

    def step_finished(self, run: RunInfo, name: str, status: str, duration_ms: int) -> None:
        labels = (self.namespace, run.workflow_name, status)
        self.metrics.steps_executed.labels(*labels).inc()
        self.metrics.step_duration.labels(*labels).observe(max(duration_ms, 0) / 1000)

    def step_retry_scheduled(self, run: RunInfo, name: str) -> None:
        self.metrics.steps_retried.labels(self.namespace, run.workflow_name).inc()

    def slept(self, run: RunInfo, name: str, wake_ms: int) -> None:
        self.metrics.workflows_sleeping.labels(self.namespace, run.workflow_name).inc()

    def lease_lost(self, claim: Claim) -> None:
        self.metrics.leases_lost.labels(self.namespace, claim.execution.workflow_name).inc()

    def run_interrupted(self, claim: Claim) -> None:
        ex = claim.execution
        self.metrics.runs_interrupted.labels(self.namespace, ex.workflow_name).inc()

    def run_parked(self, claim: Claim, error: str) -> None:
        ex = claim.execution
        self.metrics.executions_parked.labels(self.namespace, ex.workflow_name).inc()


__all__ = ["Metrics", "MetricsObserver"]
