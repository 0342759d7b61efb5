"""The store contract (``hydra.testing.contract``) on every backend: one test per check.

A check that needs a capability the store lacks (``supports_notify``,
``shared_across_processes``) is skipped by that flag, never by backend name.
"""

from __future__ import annotations

import pytest

from hydra.testing import contract
from hydra.testing.contract import Check, StoreFactory


def run(check: Check, store_factory: StoreFactory) -> None:
    probe = store_factory()
    try:
        reason = contract.unsupported_reason(check, probe)
    finally:
        probe.close()
    if reason is not None:
        pytest.skip(reason)
    check(store_factory)


def test_every_check_has_a_test() -> None:
    names = {c.__name__.removeprefix("check_") for c in contract.ALL_CHECKS}
    tests = {n.removeprefix("test_") for n in globals() if n.startswith("test_")}
    assert names <= tests, f"checks without a test: {sorted(names - tests)}"


def test_create_get_list_roundtrip(store_factory: StoreFactory) -> None:
    run(contract.check_create_get_list_roundtrip, store_factory)


def test_get_missing(store_factory: StoreFactory) -> None:
    run(contract.check_get_missing, store_factory)


def test_idempotency_key(store_factory: StoreFactory) -> None:
    run(contract.check_idempotency_key, store_factory)


def test_idempotency_key_concurrent(store_factory: StoreFactory) -> None:
    run(contract.check_idempotency_key_concurrent, store_factory)


def test_list_executions(store_factory: StoreFactory) -> None:
    run(contract.check_list_executions, store_factory)


def test_records_are_copies(store_factory: StoreFactory) -> None:
    run(contract.check_records_are_copies, store_factory)


def test_names_are_exact(store_factory: StoreFactory) -> None:
    run(contract.check_names_are_exact, store_factory)


def test_find_execution_ids(store_factory: StoreFactory) -> None:
    run(contract.check_find_execution_ids, store_factory)


def test_first_claim(store_factory: StoreFactory) -> None:
    run(contract.check_first_claim, store_factory)


def test_claim_exclusive(store_factory: StoreFactory) -> None:
    run(contract.check_claim_exclusive, store_factory)


def test_takeover_exclusive(store_factory: StoreFactory) -> None:
    run(contract.check_takeover_exclusive, store_factory)


def test_claim_only_listed_workflows(store_factory: StoreFactory) -> None:
    run(contract.check_claim_only_listed_workflows, store_factory)


def test_claim_only_own_namespace(store_factory: StoreFactory) -> None:
    run(contract.check_claim_only_own_namespace, store_factory)


def test_claim_only_due(store_factory: StoreFactory) -> None:
    run(contract.check_claim_only_due, store_factory)


def test_claim_order_and_limit(store_factory: StoreFactory) -> None:
    run(contract.check_claim_order_and_limit, store_factory)


def test_claim_order_across_workflows(store_factory: StoreFactory) -> None:
    run(contract.check_claim_order_across_workflows, store_factory)


def test_claim_exclusive_across_workflows(store_factory: StoreFactory) -> None:
    run(contract.check_claim_exclusive_across_workflows, store_factory)


def test_lease_expiry_takeover(store_factory: StoreFactory) -> None:
    run(contract.check_lease_expiry_takeover, store_factory)


def test_claim_is_take_lease(store_factory: StoreFactory) -> None:
    run(contract.check_claim_is_take_lease, store_factory)


def test_heartbeat_extends_lease(store_factory: StoreFactory) -> None:
    run(contract.check_heartbeat_extends_lease, store_factory)


def test_save_step_extends_lease(store_factory: StoreFactory) -> None:
    run(contract.check_save_step_extends_lease, store_factory)


def test_fencing_after_takeover(store_factory: StoreFactory) -> None:
    run(contract.check_fencing_after_takeover, store_factory)


def test_fenced_write_races_takeover(store_factory: StoreFactory) -> None:
    run(contract.check_fenced_write_races_takeover, store_factory)


def test_cancel_fences_owner(store_factory: StoreFactory) -> None:
    run(contract.check_cancel_fences_owner, store_factory)


def test_cancel(store_factory: StoreFactory) -> None:
    run(contract.check_cancel, store_factory)


def test_release(store_factory: StoreFactory) -> None:
    run(contract.check_release, store_factory)


def test_owned_leases(store_factory: StoreFactory) -> None:
    run(contract.check_owned_leases, store_factory)


def test_sleep(store_factory: StoreFactory) -> None:
    run(contract.check_sleep, store_factory)


def test_retry(store_factory: StoreFactory) -> None:
    run(contract.check_retry, store_factory)


def test_timeout_caps_wake_at(store_factory: StoreFactory) -> None:
    run(contract.check_timeout_caps_wake_at, store_factory)


def test_finish_completed(store_factory: StoreFactory) -> None:
    run(contract.check_finish_completed, store_factory)


def test_finish_failed(store_factory: StoreFactory) -> None:
    run(contract.check_finish_failed, store_factory)


def test_finish_rejects_non_terminal_status(store_factory: StoreFactory) -> None:
    run(contract.check_finish_rejects_non_terminal_status, store_factory)


def test_save_step_upsert(store_factory: StoreFactory) -> None:
    run(contract.check_save_step_upsert, store_factory)


def test_list_steps_order(store_factory: StoreFactory) -> None:
    run(contract.check_list_steps_order, store_factory)


def test_step_attempts_recorded(store_factory: StoreFactory) -> None:
    run(contract.check_step_attempts_recorded, store_factory)


def test_step_attempt_rewrite_is_one_record(store_factory: StoreFactory) -> None:
    run(contract.check_step_attempt_rewrite_is_one_record, store_factory)


def test_step_attempts_fenced(store_factory: StoreFactory) -> None:
    run(contract.check_step_attempts_fenced, store_factory)


def test_next_wake_at(store_factory: StoreFactory) -> None:
    run(contract.check_next_wake_at, store_factory)


def test_namespace_isolation(store_factory: StoreFactory) -> None:
    run(contract.check_namespace_isolation, store_factory)


def test_large_payload(store_factory: StoreFactory) -> None:
    run(contract.check_large_payload, store_factory)


def test_max_value_bytes(store_factory: StoreFactory) -> None:
    run(contract.check_max_value_bytes, store_factory)


def test_shared_between_instances(store_factory: StoreFactory) -> None:
    run(contract.check_shared_between_instances, store_factory)


def test_notify_wakes_listener(store_factory: StoreFactory) -> None:
    run(contract.check_notify_wakes_listener, store_factory)


def test_no_listener_without_notify(store_factory: StoreFactory) -> None:
    run(contract.check_no_listener_without_notify, store_factory)


def test_retry_execution(store_factory: StoreFactory) -> None:
    run(contract.check_retry_execution, store_factory)


def test_cron_job_upsert(store_factory: StoreFactory) -> None:
    run(contract.check_cron_job_upsert, store_factory)


def test_cron_jobs_by_namespace_and_name(store_factory: StoreFactory) -> None:
    run(contract.check_cron_jobs_by_namespace_and_name, store_factory)


def test_cron_fire_claimed_once(store_factory: StoreFactory) -> None:
    run(contract.check_cron_fire_claimed_once, store_factory)


def test_cron_fire_concurrent(store_factory: StoreFactory) -> None:
    run(contract.check_cron_fire_concurrent, store_factory)


def test_database_time(store_factory: StoreFactory) -> None:
    run(contract.check_database_time, store_factory)
