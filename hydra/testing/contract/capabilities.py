"""The contract of the ``Store`` as a whole: large values and ``max_value_bytes``, sharing
one database between instances, notifications, and the database's clock."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from hydra.status import Status
from hydra.store.base import Lease
from hydra.testing.contract._support import (
    LONG_LEASE,
    T0,
    Check,
    StoreFactory,
    assert_fields,
    assert_lease_lost,
    assert_same,
    claim_due,
    claim_exactly,
    create_one,
    fresh_namespace,
    get_row,
    opened,
    step_record,
)


def check_large_payload(make_store: StoreFactory) -> None:
    """A 5 MB input, step output and result round-trip byte for byte."""
    size = 5 * 1024 * 1024
    payload = os.urandom(size)
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns, input=payload)
        got = get_row(store, ns, eid).input
        assert got == payload, f"a {size}-byte input came back as {len(got)} bytes"
        claim = claim_exactly(store, ns, "w1", T0, eid)
        assert claim.execution.input == payload, "the claimed row's 5 MB input differs"
        output = payload[::-1]
        store.save_step(
            claim.lease, step_record(eid, output=output), now_ms=T0, lease_ms=LONG_LEASE
        )
        steps = store.list_steps(eid)
        assert len(steps) == 1 and steps[0].output == output, "a 5 MB step output differs"
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=output)
        assert get_row(store, ns, eid).output == output, "a 5 MB result differs"
        message = "x" * 100_000
        other = create_one(store, ns, created_at=T0 + 1)
        claim = claim_exactly(store, ns, "w1", T0 + 1, other)
        store.finish(
            claim.lease, status=Status.FAILED, now_ms=T0 + 2, error_type="E", error_message=message
        )
        assert get_row(store, ns, other).error_message == message, "a 100 kB error message differs"


def check_max_value_bytes(make_store: StoreFactory) -> None:
    """``max_value_bytes`` is None or a positive int, and honest: a value of exactly that
    size (every byte one a SQL string literal must escape) is stored as an input, a step
    output and a result of one execution, and read back byte for byte."""
    with opened(make_store) as store:
        limit = getattr(store, "max_value_bytes", "missing")
        assert limit is None or (
            isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
        ), f"max_value_bytes must be None or a positive int, got {limit!r}"
        if limit is None:
            return
        value = (b"\\'\"\x00" * (limit // 4 + 1))[:limit]
        ns = fresh_namespace()
        eid = create_one(store, ns, input=value)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        assert claim.execution.input == value, f"a {limit}-byte input differs"
        store.save_step(claim.lease, step_record(eid, output=value), now_ms=T0, lease_ms=LONG_LEASE)
        steps = store.list_steps(eid)
        assert len(steps) == 1 and steps[0].output == value, f"a {limit}-byte step output differs"
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=value)
        row = get_row(store, ns, eid)
        assert (row.input, row.output) == (value, value), f"a {limit}-byte result differs"


def check_shared_between_instances(make_store: StoreFactory) -> None:
    """Two store instances on one database see one state; claims stay exclusive."""
    with opened(make_store) as one, opened(make_store) as two:
        ns = fresh_namespace()
        eid = create_one(one, ns)
        assert_same(
            get_row(two, ns, eid), get_row(one, ns, eid), "the row seen through a second instance"
        )
        claim = claim_exactly(two, ns, "w2", T0, eid, lease_ms=1_000)
        assert_fields(
            get_row(one, ns, eid), "a claim made through the other instance", lease_owner="w2"
        )
        assert_lease_lost(
            lambda: one.save_step(
                Lease(eid, claim.lease.token - 1, "w1"), step_record(eid), now_ms=T0, lease_ms=1_000
            ),
            "save_step through another instance",
        )
        ids = {create_one(one, ns, run_at=T0 + i) for i in range(20)}
        barrier = threading.Barrier(4)

        def work(n: int) -> list[str]:
            store = (one, two)[n % 2]
            got: list[str] = []
            barrier.wait(timeout=30)
            while claims := claim_due(store, ns, f"w{n}", T0 + 100, limit=2):
                got.extend(c.execution.id for c in claims)
            return got

        with ThreadPoolExecutor(4) as pool:
            claimed = [x for part in pool.map(work, range(4)) for x in part]
        times = Counter(claimed)
        assert all(n == 1 for n in times.values()), f"claimed twice: {times.most_common(3)}"
        assert set(times) == ids, f"{len(ids - set(times))} executions never claimed"


def check_notify_wakes_listener(make_store: StoreFactory) -> None:
    """A store that supports_notify wakes a namespace's listener when work is created."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        listener = store.open_listener(ns)
        elsewhere = store.open_listener(fresh_namespace())
        assert listener is not None and elsewhere is not None, (
            "open_listener returned None on a store that supports_notify"
        )
        try:
            # A listener may subscribe lazily on its first wait.
            listener.wait(0.05)
            elsewhere.wait(0.05)
            create_one(store, ns)
            assert listener.wait(10.0) is True, "creating an execution did not wake its listener"
            assert elsewhere.wait(0.2) is False, "another namespace's listener was woken"
        finally:
            listener.close()
            elsewhere.close()
        assert listener.wait(0.01) is False, "a closed listener reported a notification"


def check_no_listener_without_notify(make_store: StoreFactory) -> None:
    """A store without notifications returns None from open_listener."""
    with opened(make_store) as store:
        got = store.open_listener(fresh_namespace())
        assert got is None, f"open_listener returned {got!r} but supports_notify is False"


#: how far a server's clock may be from this machine's (the suites' servers run here)
CLOCK_TOLERANCE_MS = 5_000


def check_database_time(make_store: StoreFactory) -> None:
    """database_time_ms: None (no server clock), or the server's time in Unix ms: an int
    within ``CLOCK_TOLERANCE_MS`` of this machine's clock (a server on this machine or
    one kept in time with it), never going backwards, moving in real time (read when the
    call runs, not frozen at some earlier start)."""
    with opened(make_store) as store:
        first = store.database_time_ms()
        if first is None:
            assert store.database_time_ms() is None, "database_time_ms: None, then a time"
            return
        readings = [first] + [store.database_time_ms() for _ in range(20)]
        local = time.time_ns() // 1_000_000
        for value in readings:
            assert isinstance(value, int) and not isinstance(value, bool), (
                f"database_time_ms returned {value!r}, not an int"
            )
        times: list[int] = [v for v in readings if v is not None]
        assert abs(times[-1] - local) <= CLOCK_TOLERANCE_MS, (
            f"database_time_ms is {times[-1] - local} ms from this machine's clock"
        )
        back = [(a, b) for a, b in itertools.pairwise(times) if b < a]
        assert not back, f"database_time_ms went backwards: {back}"
        time.sleep(0.05)
        later = store.database_time_ms()
        assert later is not None and later - times[-1] >= 40, (
            f"database_time_ms moved {later} - {times[-1]} ms in 50 ms of real time"
        )


#: the checks of this module, in order
CHECKS: list[Check] = [
    check_large_payload,
    check_max_value_bytes,
    check_shared_between_instances,
    check_notify_wakes_listener,
    check_no_listener_without_notify,
    check_database_time,
]
