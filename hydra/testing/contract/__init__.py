"""The Store contract: what every store implementation must do, as plain check functions.

Modelled on trio's ``check_*`` conformance helpers: each ``check_<behaviour>`` takes a
zero-argument factory that makes a fresh store (connected to a migrated database, for a
SQL store), exercises one behaviour through the public ``Store`` interface only, and fails
with an ``AssertionError`` that says what went wrong. There is no pytest dependency, so a
third-party store can run the suite from any test runner::

    from hydra.testing.contract import run_all

    def test_my_store_follows_the_contract():
        run_all(lambda: MyStore(...))

The checks are grouped like the protocols ``Store`` combines, one module each:
``executions`` (``ExecutionStore``), ``steps`` (``StepStore``), ``leases``
(``LeaseStore``), ``messages`` (``MessageStore``), ``children`` (``ChildStore``),
``cron`` (``CronStore``), ``queues`` (``QueueStore`` and the claim under queue limits)
and
``capabilities`` (the store as a whole);
``CHECKS_BY_PROTOCOL`` maps each protocol's name to its checks, ``ALL_CHECKS`` lists them
all, and every check is importable from here.

Every check works in its own fresh namespace, so many checks (and many runs) can share
one database. All times are fixed Unix milliseconds passed in explicitly, as the engine
does: a store never reads a clock (``check_database_time`` reads the one clock a store
may report, its server's).

Checks that need a capability (``Store.supports_notify``, ``Store.shared_across_processes``)
are listed in ``REQUIRES``; ``run_all`` skips the ones a store does not support, and
``unsupported_reason`` tells a test runner why.
"""

from __future__ import annotations

from hydra.store.base import Store
from hydra.testing.contract import (
    capabilities,
    children,
    cron,
    executions,
    leases,
    messages,
    queues,
    steps,
)
from hydra.testing.contract._support import Check, StoreFactory, opened
from hydra.testing.contract.capabilities import (
    check_database_time,
    check_large_payload,
    check_max_value_bytes,
    check_no_listener_without_notify,
    check_notify_wakes_listener,
    check_shared_between_instances,
)
from hydra.testing.contract.children import (
    check_cancel_sends_a_child_s_end,
    check_child_end_before_the_wait_is_kept,
    check_child_end_wakes_a_waiting_parent,
    check_purge_keeps_a_parent_with_an_unfinished_child,
    check_purge_keeps_the_ancestors_of_an_unfinished_grandchild,
    check_start_child_fenced,
    check_start_child_keeps_trace_context,
    check_start_child_once,
)
from hydra.testing.contract.cron import (
    check_cron_fire_claimed_once,
    check_cron_fire_concurrent,
    check_cron_job_upsert,
    check_cron_jobs_by_namespace_and_name,
)
from hydra.testing.contract.executions import (
    check_cancel,
    check_create_get_list_roundtrip,
    check_find_execution_ids,
    check_get_missing,
    check_idempotency_key,
    check_idempotency_key_concurrent,
    check_list_executions,
    check_list_namespaces,
    check_names_are_exact,
    check_namespace_isolation,
    check_next_wake_at,
    check_purge,
    check_purge_ids_of_any_characters,
    check_records_are_copies,
    check_retry_execution,
    check_trace_context_roundtrip,
)
from hydra.testing.contract.leases import (
    check_cancel_fences_owner,
    check_claim_exclusive,
    check_claim_exclusive_across_workflows,
    check_claim_is_take_lease,
    check_claim_only_due,
    check_claim_only_listed_workflows,
    check_claim_only_own_namespace,
    check_claim_order_across_workflows,
    check_claim_order_and_limit,
    check_fenced_write_races_takeover,
    check_fencing_after_takeover,
    check_finish_completed,
    check_finish_failed,
    check_finish_rejects_non_terminal_status,
    check_first_claim,
    check_heartbeat_extends_lease,
    check_lease_expiry_takeover,
    check_owned_leases,
    check_park,
    check_release,
    check_retry,
    check_sleep,
    check_takeover_exclusive,
    check_timeout_caps_wake_at,
)
from hydra.testing.contract.messages import (
    check_events,
    check_receive_fenced,
    check_receive_repeated_returns_the_same_message,
    check_receive_suspends_and_a_send_wakes_it,
    check_receive_without_deadline,
    check_send_and_receive_in_order,
    check_send_from_run,
    check_send_from_run_wakes_the_receiver,
    check_send_idempotency,
    check_send_races_a_suspending_receive,
    check_send_to_unknown_or_finished,
    check_sleep_is_not_woken_by_a_message,
    check_step_kind_and_detail,
)
from hydra.testing.contract.queues import (
    check_a_full_key_does_not_hold_up_other_keys,
    check_cancel_frees_the_slot,
    check_concurrency_limit_holds_and_frees,
    check_key_concurrency,
    check_list_executions_by_queue_time_and_key,
    check_lowered_concurrency_drains_first,
    check_priority_then_fifo,
    check_queue_registration_is_stored,
    check_rate_limit_is_exact_and_resumes_are_free,
    check_resumes_are_not_behind_rate_limited_first_starts,
    check_takeover_keeps_the_slot,
    check_unregistered_queue_and_stats,
    check_worker_concurrency,
)
from hydra.testing.contract.steps import (
    check_list_steps_order,
    check_save_step_extends_lease,
    check_save_step_upsert,
    check_step_attempt_rewrite_is_one_record,
    check_step_attempts_fenced,
    check_step_attempts_recorded,
)

#: each protocol of ``hydra.store.base`` (and ``Store`` for the store as a whole) and its
#: checks
CHECKS_BY_PROTOCOL: dict[str, list[Check]] = {
    "ExecutionStore": executions.CHECKS,
    "StepStore": steps.CHECKS,
    "LeaseStore": leases.CHECKS,
    "MessageStore": messages.CHECKS,
    "ChildStore": children.CHECKS,
    "CronStore": cron.CHECKS,
    "QueueStore": queues.CHECKS,
    "Store": capabilities.CHECKS,
}
#: every check, grouped by protocol
ALL_CHECKS: list[Check] = [check for checks in CHECKS_BY_PROTOCOL.values() for check in checks]

#: check name -> (store attribute, value it must have) for checks that need a capability
REQUIRES: dict[str, tuple[str, bool]] = {
    check_shared_between_instances.__name__: ("shared_across_processes", True),
    check_notify_wakes_listener.__name__: ("supports_notify", True),
    check_no_listener_without_notify.__name__: ("supports_notify", False),
}


def unsupported_reason(check: Check, store: Store) -> str | None:
    """Why ``check`` does not apply to ``store`` (a capability flag), or None if it does."""
    need = REQUIRES.get(check.__name__)
    if need is None:
        return None
    flag, value = need
    if bool(getattr(store, flag)) == value:
        return None
    return f"{type(store).__name__}.{flag} is {not value}"


def run_all(make_store: StoreFactory) -> list[str]:
    """Run every check that applies; return the names of those skipped for a capability."""
    with opened(make_store) as probe:
        skipped = [c.__name__ for c in ALL_CHECKS if unsupported_reason(c, probe) is not None]
    for check in ALL_CHECKS:
        if check.__name__ not in skipped:
            check(make_store)
    return skipped


__all__ = [
    "ALL_CHECKS",
    "CHECKS_BY_PROTOCOL",
    "REQUIRES",
    "Check",
    "StoreFactory",
    "check_a_full_key_does_not_hold_up_other_keys",
    "check_cancel",
    "check_cancel_fences_owner",
    "check_cancel_frees_the_slot",
    "check_cancel_sends_a_child_s_end",
    "check_child_end_before_the_wait_is_kept",
    "check_child_end_wakes_a_waiting_parent",
    "check_claim_exclusive",
    "check_claim_exclusive_across_workflows",
    "check_claim_is_take_lease",
    "check_claim_only_due",
    "check_claim_only_listed_workflows",
    "check_claim_only_own_namespace",
    "check_claim_order_across_workflows",
    "check_claim_order_and_limit",
    "check_concurrency_limit_holds_and_frees",
    "check_create_get_list_roundtrip",
    "check_cron_fire_claimed_once",
    "check_cron_fire_concurrent",
    "check_cron_job_upsert",
    "check_cron_jobs_by_namespace_and_name",
    "check_database_time",
    "check_events",
    "check_fenced_write_races_takeover",
    "check_fencing_after_takeover",
    "check_find_execution_ids",
    "check_finish_completed",
    "check_finish_failed",
    "check_finish_rejects_non_terminal_status",
    "check_first_claim",
    "check_get_missing",
    "check_heartbeat_extends_lease",
    "check_idempotency_key",
    "check_idempotency_key_concurrent",
    "check_key_concurrency",
    "check_large_payload",
    "check_lease_expiry_takeover",
    "check_list_executions",
    "check_list_executions_by_queue_time_and_key",
    "check_list_namespaces",
    "check_list_steps_order",
    "check_lowered_concurrency_drains_first",
    "check_max_value_bytes",
    "check_names_are_exact",
    "check_namespace_isolation",
    "check_next_wake_at",
    "check_no_listener_without_notify",
    "check_notify_wakes_listener",
    "check_owned_leases",
    "check_park",
    "check_priority_then_fifo",
    "check_purge",
    "check_purge_ids_of_any_characters",
    "check_purge_keeps_a_parent_with_an_unfinished_child",
    "check_purge_keeps_the_ancestors_of_an_unfinished_grandchild",
    "check_queue_registration_is_stored",
    "check_rate_limit_is_exact_and_resumes_are_free",
    "check_receive_fenced",
    "check_receive_repeated_returns_the_same_message",
    "check_receive_suspends_and_a_send_wakes_it",
    "check_receive_without_deadline",
    "check_records_are_copies",
    "check_release",
    "check_resumes_are_not_behind_rate_limited_first_starts",
    "check_retry",
    "check_retry_execution",
    "check_save_step_extends_lease",
    "check_save_step_upsert",
    "check_send_and_receive_in_order",
    "check_send_from_run",
    "check_send_from_run_wakes_the_receiver",
    "check_send_idempotency",
    "check_send_races_a_suspending_receive",
    "check_send_to_unknown_or_finished",
    "check_shared_between_instances",
    "check_sleep",
    "check_sleep_is_not_woken_by_a_message",
    "check_start_child_fenced",
    "check_start_child_keeps_trace_context",
    "check_start_child_once",
    "check_step_attempt_rewrite_is_one_record",
    "check_step_attempts_fenced",
    "check_step_attempts_recorded",
    "check_step_kind_and_detail",
    "check_takeover_exclusive",
    "check_takeover_keeps_the_slot",
    "check_timeout_caps_wake_at",
    "check_trace_context_roundtrip",
    "check_unregistered_queue_and_stats",
    "check_worker_concurrency",
    "run_all",
    "unsupported_reason",
]
