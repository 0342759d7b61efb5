"""The contract of ``CronStore``: cron job definitions and fired slots."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from hydra.store.base import (
    CronFire,
    CronJobRow,
    Store,
)
from hydra.testing.contract._support import (
    T0,
    Check,
    StoreFactory,
    assert_same,
    fresh_id,
    fresh_namespace,
    opened,
)


def _upsert_job(
    store: Store,
    ns: str,
    name: str,
    *,
    now: int = T0,
    spec: str = "0 2 * * *",
    timezone: str | None = "Europe/Berlin",
    workflow: str | None = "report",
    payload: bytes | None = b'{"kind": "daily"}',
) -> CronJobRow:
    return store.upsert_cron_job(
        ns,
        name,
        spec=spec,
        timezone=timezone,
        workflow_name=workflow,
        payload=payload,
        now_ms=now,
    )


def check_cron_job_upsert(make_store: StoreFactory) -> None:
    """upsert_cron_job inserts a job, keeps it as is when registered again unchanged, and
    replaces the definition (updated_at = now, next_run_at cleared) when it changed."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        expected = CronJobRow(
            namespace=ns,
            name="nightly-report",
            spec="0 2 * * *",
            timezone="Europe/Berlin",
            workflow_name="report",
            payload=b'{"kind": "daily"}',
            enabled=True,
            created_at=T0,
            updated_at=T0,
            next_run_at=None,
        )
        row = _upsert_job(store, ns, "nightly-report")
        assert_same(row, expected, "upsert_cron_job of a new job")
        assert type(row.payload) is bytes, f"payload is {type(row.payload)}, not bytes"
        assert row.enabled is True, f"enabled is {row.enabled!r}, not True"
        assert_same(store.list_cron_jobs(ns), [expected], "list_cron_jobs after the first upsert")

        store.set_cron_next_run(ns, "nightly-report", T0 + 3_600_000)
        expected.next_run_at = T0 + 3_600_000
        assert_same(store.list_cron_jobs(ns), [expected], "after set_cron_next_run")

        # The same definition again (a worker restarting): nothing changes, so the slots
        # missed while it was down are still due.
        again = _upsert_job(store, ns, "nightly-report", now=T0 + 60_000)
        assert_same(again, expected, "upsert_cron_job of an unchanged definition")

        for change, fields in (
            ({"spec": "30 2 * * *"}, {"spec": "30 2 * * *"}),
            ({"spec": "30 2 * * *", "timezone": None}, {"timezone": None}),
            (
                {"spec": "30 2 * * *", "timezone": None, "payload": b"{}"},
                {"payload": b"{}"},
            ),
            (
                {"spec": "30 2 * * *", "timezone": None, "workflow": None, "payload": None},
                {"workflow_name": None, "payload": None},
            ),
        ):
            now = expected.updated_at + 1_000
            store.set_cron_next_run(ns, "nightly-report", now + 5)
            changed = _upsert_job(store, ns, "nightly-report", now=now, **change)
            expected = dataclasses.replace(expected, updated_at=now, next_run_at=None, **fields)
            assert_same(changed, expected, f"upsert_cron_job changing {sorted(fields)}")
            assert_same(
                store.list_cron_jobs(ns), [expected], f"list after changing {sorted(fields)}"
            )


def check_cron_jobs_by_namespace_and_name(make_store: StoreFactory) -> None:
    """list_cron_jobs lists one namespace's jobs by name; names compare exactly."""
    with opened(make_store) as store:
        ns, other = fresh_namespace(), fresh_namespace()
        for name in ("b-job", "c-job", "a-job"):
            _upsert_job(store, ns, name, workflow=None, payload=None)
        _upsert_job(store, other, "a-job", spec="@hourly")
        names = [r.name for r in store.list_cron_jobs(ns)]
        assert names == ["a-job", "b-job", "c-job"], f"list_cron_jobs gave {names}"
        listed = store.list_cron_jobs(other)
        assert [(r.name, r.spec) for r in listed] == [("a-job", "@hourly")], (
            f"the other namespace lists {[(r.name, r.spec) for r in listed]}"
        )
        assert store.list_cron_jobs(fresh_namespace()) == [], "an empty namespace lists cron jobs"
        assert store.list_cron_jobs(ns.upper()) == [], "namespaces compared without case"
        _upsert_job(store, ns, "A-job", spec="@daily")
        specs = {r.name: r.spec for r in store.list_cron_jobs(ns)}
        assert (specs.get("a-job"), specs.get("A-job")) == ("0 2 * * *", "@daily"), (
            f"job names that differ only in case were taken as one: {specs}"
        )
        # next_run_at of an unknown job is silently ignored.
        store.set_cron_next_run(ns, "no-such-job", T0)


def check_cron_fire_claimed_once(make_store: StoreFactory) -> None:
    """claim_cron_fire is True once per (namespace, job, slot); last_cron_fire is the fire
    with the latest slot."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        slot = T0 + 3_600_000
        assert store.last_cron_fire(ns, "job") is None, "a job that never fired has a fire"
        first = store.claim_cron_fire(ns, "job", slot, now_ms=slot + 5, worker_id="w1")
        assert first is True, "the first claim of a slot returned False"
        for worker, now in (("w2", slot + 6), ("w1", slot + 7)):
            again = store.claim_cron_fire(ns, "job", slot, now_ms=now, worker_id=worker)
            assert again is False, f"a second claim of the slot (by {worker}) returned True"
        assert_same(
            store.last_cron_fire(ns, "job"),
            CronFire(ns, "job", slot, slot + 5, "w1", None),
            "last_cron_fire after one fire",
        )
        eid = fresh_id()
        later = slot + 3_600_000
        assert store.claim_cron_fire(
            ns, "job", later, now_ms=later + 1, worker_id="w2", execution_id=eid
        ), "the next slot could not be claimed"
        # An older slot (catching up) is its own slot; the latest stays the latest.
        assert store.claim_cron_fire(ns, "job", T0, now_ms=later + 2, worker_id="w3"), (
            "an older slot could not be claimed"
        )
        assert_same(
            store.last_cron_fire(ns, "job"),
            CronFire(ns, "job", later, later + 1, "w2", eid),
            "last_cron_fire after fires of three slots",
        )
        for what, args in (
            ("another job", (ns, "other-job")),
            ("a job whose name differs in case", (ns, "Job")),
            ("another namespace", (fresh_namespace(), "job")),
            ("a namespace that differs in case", (ns.upper(), "job")),
        ):
            got = store.claim_cron_fire(*args, slot, now_ms=slot, worker_id="w1")
            assert got is True, f"the same slot of {what} was taken as already fired"
        assert_same(
            store.last_cron_fire(ns, "Job"),
            CronFire(ns, "Job", slot, slot, "w1", None),
            "last_cron_fire of a job whose name differs in case",
        )


def check_cron_fire_concurrent(make_store: StoreFactory) -> None:
    """Eight threads claiming the same slots at once: each slot is claimed exactly once."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        threads, slots = 8, [T0 + i * 60_000 for i in range(10)]
        barrier = threading.Barrier(threads)

        def race(n: int) -> list[int]:
            won = []
            barrier.wait(timeout=30)
            for slot in slots:
                if store.claim_cron_fire(ns, "tick", slot, now_ms=slot + n, worker_id=f"w{n}"):
                    won.append(slot)
            return won

        with ThreadPoolExecutor(threads) as pool:
            wins = Counter(slot for won in pool.map(race, range(threads)) for slot in won)
        assert all(n == 1 for n in wins.values()), f"slots claimed twice: {wins.most_common(3)}"
        assert sorted(wins) == slots, f"{len(set(slots) - set(wins))} slots never claimed"
        last = store.last_cron_fire(ns, "tick")
        assert last is not None and last.slot_at == slots[-1], f"last_cron_fire is {last}"


#: the checks of this module, in order
CHECKS: list[Check] = [
    check_cron_job_upsert,
    check_cron_jobs_by_namespace_and_name,
    check_cron_fire_claimed_once,
    check_cron_fire_concurrent,
]
