"""A store call rides out pooled connections that the server dropped (as after a restart).

The engines ``SQLStore`` creates have no ``pool_pre_ping``: a checked-out connection is
not tested first, so the first statement on a dead one fails, and ``SQLStore._run`` must
retry the whole transaction on a fresh connection. Here every connection in the store's
pool is killed on the server (``pg_terminate_backend`` / ``KILL``: only this store's
connections, found by their backend ids) before each kind of call, hot-path writes
included.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Integer, cast, create_engine, literal, select, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.pool import NullPool

from hydra.status import Status, StepStatus
from hydra.store.base import EventRow, NewExecution, NewMessage, StepRow
from hydra.store.sql import SQLStore
from hydra.store.sql.driver import CoreTx, Tx
from hydra.store.sql.statements import INSERT_EXECUTION
from hydra.testing.proxy import TCPProxy
from tests.conftest import StoreURLs

NS = "reconnect"
POOLED = 3


def _kill_pool(store: SQLStore, url: str) -> list[int]:
    """Open ``POOLED`` connections through the store's pool, then kill them server-side."""
    postgres = store.engine.dialect.name == "postgresql"
    conns = [store.engine.connect() for _ in range(POOLED)]
    query = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
    ids = []
    for c in conns:
        # A connection killed in an earlier round that no call has used since (the hot
        # path runs on the driver pool's connections) fails here and is discarded.
        with contextlib.suppress(DBAPIError):
            ids.append(int(c.exec_driver_sql(query).scalar_one()))
    for c in conns:
        c.close()  # back to the pool, still open on our side
    # The hot path's own connections (hydra/store/sql/driver.py), idle between calls.
    driver = store._driver
    if driver is not None:
        ids += [fairy.driver_connection.info.backend_pid for fairy in driver._idle]
    assert ids
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            for i in ids:
                if postgres:
                    conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": i})
                else:
                    conn.exec_driver_sql(f"KILL {i}")
            # Termination is asynchronous: wait until the server no longer lists them.
            listing = (
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:ids)"
                if postgres
                else "SELECT count(*) FROM information_schema.processlist WHERE id IN :ids"
            )
            params: dict[str, Any] = {"ids": ids if postgres else tuple(ids)}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                listed = conn.execute(text(listing), params).scalar_one()
                # PostgreSQL reads pg_stat_activity once per transaction: end it, or every
                # poll sees the backends as they were at the first one.
                conn.commit()
                if not listed:
                    break
                time.sleep(0.02)
    finally:
        admin.dispose()
    return ids


def test_calls_retry_on_connections_killed_by_the_server(
    sql_store_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    if sql_store_factory.backend == "sqlite":
        pytest.skip("SQLite has no server to drop connections")
    store: SQLStore = sql_store_factory()
    assert not store.engine.pool._pre_ping  # what this test guards
    url = sql_store_factory.url
    now = int(time.time() * 1000)
    eid = uuid.uuid4().hex
    new = NewExecution(
        id=eid,
        namespace=NS,
        workflow_name="wf",
        input=b"in",
        max_attempts=1,
        retry_backoff_ms=1_000,
        timeout_ms=None,
        idempotency_key=None,
        run_at_ms=now,
        created_at_ms=now,
    )
    caplog.set_level(logging.WARNING, logger="hydra.store")

    _kill_pool(store, url)
    assert store.create_execution(new) == (eid, True)
    _kill_pool(store, url)
    [claim] = store.claim(NS, ["wf"], "w1", now_ms=now, lease_ms=60_000, limit=5)
    lease = claim.lease
    _kill_pool(store, url)
    step = StepRow(eid, "s1", 0, StepStatus.COMPLETED, 1, b"out", started_at=now, completed_at=now)
    store.save_step(lease, step, now_ms=now, lease_ms=60_000)
    _kill_pool(store, url)
    assert store.heartbeat([lease], now_ms=now, lease_ms=60_000) == []
    _kill_pool(store, url)
    store.finish(lease, status=Status.COMPLETED, now_ms=now, output=b"done")
    _kill_pool(store, url)
    row = store.get_execution(NS, eid)
    assert row is not None and row.status is Status.COMPLETED and row.output == b"done"
    assert [s.output for s in store.list_steps(eid)] == [b"out"]

    retried = [r for r in caplog.records if "retrying database call" in r.getMessage()]
    # Each call met a dead connection and was retried (not merely lucky with a fresh one).
    assert len(retried) >= 6, [r.getMessage() for r in retried]


# -- outages through a proxy: refused and cut connections ---------------------------------
def _new_execution(namespace: str, eid: str | None = None) -> NewExecution:
    now = int(time.time() * 1000)
    return NewExecution(
        id=eid or uuid.uuid4().hex,
        namespace=namespace,
        workflow_name="wf",
        input=b"in",
        max_attempts=1,
        retry_backoff_ms=1_000,
        timeout_ms=None,
        idempotency_key=None,
        run_at_ms=now,
        created_at_ms=now,
    )


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request: pytest.FixtureRequest, store_urls: StoreURLs) -> str:
    url = store_urls.url(request.param)
    SQLStore(url, auto_migrate=True).close()  # the schema, before any proxying
    return url


@pytest.fixture
def proxied(server_url: str) -> Iterator[tuple[TCPProxy, SQLStore]]:
    with TCPProxy.for_url(server_url) as proxy:
        store = SQLStore(proxy.url_for(server_url))
        try:
            yield proxy, store
        finally:
            store.close()


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying database call" in r.getMessage()]


@pytest.mark.slow
def test_every_kind_of_call_rides_out_an_outage(
    proxied: tuple[TCPProxy, SQLStore], caplog: pytest.LogCaptureFixture
) -> None:
    """Hot-path calls (the driver path on PostgreSQL, Core on MySQL) and Core calls alike
    wait out a server that refuses connections, then succeed."""
    proxy, store = proxied
    caplog.set_level(logging.WARNING, logger="hydra.store")
    ns = f"outage-{uuid.uuid4().hex[:8]}"
    new = _new_execution(ns)
    assert store.create_execution(new) == (new.id, True)  # warm: pooled connections exist
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("get_execution (hot path)", lambda: store.get_execution(ns, new.id)),
        ("list_executions (Core)", lambda: store.list_executions(ns)),
        ("create_execution (hot path write)", lambda: store.create_execution(_new_execution(ns))),
        ("next_wake_at (Core)", lambda: store.next_wake_at(ns, ["wf"])),
    ]
    for what, call in calls:
        caplog.clear()
        proxy.outage(0.6)
        began = time.monotonic()
        call()
        assert time.monotonic() - began >= 0.5, what
        assert any("refused" in m.lower() for m in _retries(caplog)), (what, _retries(caplog))
    assert len(store.list_executions(ns)) == 2


def test_a_driver_path_checkout_failure_is_retried(
    store_urls: StoreURLs, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL's driver path: connecting fails (refused) on checkout; the call is
    retried like any lost connection instead of raising psycopg's own error."""
    url = store_urls.url("postgres")
    SQLStore(url, auto_migrate=True).close()
    caplog.set_level(logging.WARNING, logger="hydra.store")
    with TCPProxy.for_url(url) as proxy:
        store = SQLStore(proxy.url_for(url))
        try:
            assert store._driver is not None
            # The pooled connections die with the cut; every new one is refused for 0.5 s.
            proxy.outage(0.5)
            began = time.monotonic()
            assert store.get_execution(NS, "no-such-execution") is None
            assert time.monotonic() - began >= 0.4
            assert any("Connection refused" in m for m in _retries(caplog)), _retries(caplog)
        finally:
            store.close()


def test_a_checkout_failure_past_the_window_is_a_dbapi_error(store_urls: StoreURLs) -> None:
    """After ``reconnect_window`` the call gives up with SQLAlchemy's error type (flagged
    as a lost connection), the same on the driver path as on Core."""
    url = store_urls.url("postgres")
    SQLStore(url, auto_migrate=True).close()
    with TCPProxy.for_url(url) as proxy:
        store = SQLStore(proxy.url_for(url), reconnect_window=0.3)
        try:
            store.get_execution(NS, "warm")
            proxy.outage(30)
            for call in (
                lambda: store.get_execution(NS, "x"),  # driver path
                lambda: store.list_executions(NS),  # Core
            ):
                began = time.monotonic()
                with pytest.raises(DBAPIError) as info:
                    call()
                assert 0.25 <= time.monotonic() - began < 3
                assert info.value.connection_invalidated
                assert "Connection refused" in str(info.value.orig)
        finally:
            store.close()


def test_errors_that_are_not_disconnects_are_not_retried(
    sql_store_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A duplicate key (IntegrityError) or a bad value (DataError) is raised on the first
    try, on the driver path and on Core."""
    store: SQLStore = sql_store_factory()
    caplog.set_level(logging.WARNING, logger="hydra.store")
    new = _new_execution(NS)
    store.create_execution(new)
    params = {
        f"n_{k}": v
        for k, v in {
            "id": new.id,
            "namespace": NS,
            "workflow_name": "wf",
            "status": "pending",
            "input_data": b"",
            "attempt": 0,
            "max_attempts": 1,
            "retry_backoff_ms": 0,
            "timeout_ms": None,
            "idempotency_key": None,
            "created_at": 0,
            "updated_at": 0,
            "run_at": 0,
            "wake_at": 0,
            "lease_token": 0,
            "trigger_type": "api",
            "trigger_source": None,
            "parent_id": None,
            "queue_name": "default",
            "priority": 0,
            "concurrency_key": None,
            "claim_lane": "f12147483648:default",
            "trace_context": None,
        }.items()
    }
    tries = 0

    def duplicate(tx: Tx) -> int:
        nonlocal tries
        tries += 1
        return tx.rowcount(INSERT_EXECUTION, params)

    for single in (True, False):
        tries = 0
        with pytest.raises(IntegrityError):
            store._run_hot(duplicate, single=single)
        assert tries == 1
    tries = 0
    with pytest.raises(IntegrityError):
        store._run(lambda conn: duplicate(CoreTx(conn)))
    assert tries == 1
    if sql_store_factory.backend == "postgres":
        bad = select(cast(literal("not a number"), Integer))

        def data_error(tx: Tx) -> Any:
            nonlocal tries
            tries += 1
            return tx.rows(bad, {})

        tries = 0
        with pytest.raises(DataError):
            store._run_hot(data_error, single=True, write=False)
        assert tries == 1
    assert not _retries(caplog)


def test_reconnect_window_is_validated(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    for bad, error in (
        (-1, ValueError),
        (timedelta(seconds=-1), ValueError),
        ("30", TypeError),
        (True, TypeError),
    ):
        with pytest.raises(error, match="reconnect_window"):
            SQLStore(url, reconnect_window=bad)  # type: ignore[arg-type]
    for good, seconds in ((timedelta(seconds=5), 5.0), (0, 0.0), (2.5, 2.5)):
        store = SQLStore(url, reconnect_window=good)
        try:
            assert store.reconnect_window_s == seconds
        finally:
            store.close()
    store = SQLStore(url)
    try:
        assert store.reconnect_window_s == 30.0
    finally:
        store.close()


@pytest.mark.slow
def test_the_listener_survives_an_outage(store_urls: StoreURLs) -> None:
    """PostgreSQL's LISTEN connection: cut and refused, it reconnects without spinning,
    reports a wake-up once back (NOTIFYs sent meanwhile are lost), and wakes on new
    NOTIFYs again."""
    url = store_urls.url("postgres")
    direct = SQLStore(url, auto_migrate=True)
    ns = f"listen-{uuid.uuid4().hex[:8]}"
    with TCPProxy.for_url(url) as proxy:
        store = SQLStore(proxy.url_for(url))
        listener = store.open_listener(ns)
        assert listener is not None
        try:
            direct.create_execution(_new_execution(ns))  # NOTIFYs the namespace
            assert listener.wait(5)
            proxy.outage(1.0)
            began = time.monotonic()
            waits = 0
            woke = False
            while time.monotonic() - began < 6 and not woke:
                waits += 1
                woke = listener.wait(0.5)
            assert woke, "the listener never came back"
            assert time.monotonic() - began >= 0.9  # not before the refusal ended
            assert waits < 25, f"{waits} waits in the outage: the listener spins"
            direct.create_execution(_new_execution(ns))
            assert listener.wait(5), "no NOTIFY after the reconnect"
        finally:
            listener.close()
            store.close()
            direct.close()


# -- a write whose reply was lost: committed, then retried -------------------------------
def _lose_replies(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """After ``arm()``, the next writing transaction commits and then fails as if the
    connection had dropped before the reply came back: the store retries a write that
    already happened (on either path)."""
    armed = [False]

    def lost() -> DBAPIError:
        orig = Exception("server closed the connection unexpectedly (simulated)")
        return DBAPIError.instance(None, None, orig, Exception, connection_invalidated=True)  # type: ignore[return-value]

    driver = store._driver
    if driver is not None:
        driver_tx = driver.transaction

        @contextlib.contextmanager
        def transaction(*, write: bool, single: bool) -> Iterator[Any]:
            with driver_tx(write=write, single=single) as tx:
                yield tx
            if write and armed[0]:
                armed[0] = False
                raise lost()

        monkeypatch.setattr(driver, "transaction", transaction)
    core_tx = store._tx

    @contextlib.contextmanager
    def tx(write: bool, **options: Any) -> Iterator[Any]:
        with core_tx(write, **options) as conn:
            yield conn
        if write and armed[0]:
            armed[0] = False
            raise lost()

    monkeypatch.setattr(store, "_tx", tx)

    def arm() -> None:
        armed[0] = True

    return arm


def test_writes_retried_after_a_lost_reply_stay_correct(
    sql_store_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each write commits, its reply is lost, and it runs again: the retry recognises
    its own earlier commit (no LeaseLostError, no duplicate, the right answer)."""
    store: SQLStore = sql_store_factory()
    caplog.set_level(logging.WARNING, logger="hydra.store")
    ns = f"lost-reply-{uuid.uuid4().hex[:8]}"
    lose = _lose_replies(store, monkeypatch)
    new = _new_execution(ns)
    # The execution's own due time: a clock read before it could be a millisecond early,
    # and a claim at that time would find nothing due.
    now = new.run_at_ms

    lose()
    assert store.create_execution(new) == (new.id, True)
    assert len(store.list_executions(ns)) == 1
    [claim] = store.claim(ns, ["wf"], "w1", now_ms=now, lease_ms=60_000, limit=5)
    lease = claim.lease
    step = StepRow(new.id, "s1", 0, StepStatus.COMPLETED, 1, b"1", started_at=now, completed_at=now)
    lose()
    store.save_step(lease, step, now_ms=now, lease_ms=60_000)
    lose()
    assert store.heartbeat([lease], now_ms=now, lease_ms=60_000) == []
    nap = StepRow(new.id, "nap", 1, StepStatus.SLEEPING, 1, b"0", started_at=now, completed_at=now)
    lose()
    store.suspend(lease, wake_at_ms=now + 1, now_ms=now, step=nap)
    [claim] = store.claim(ns, ["wf"], "w1", now_ms=now + 2, lease_ms=60_000, limit=5)
    lose()
    store.schedule_retry(
        claim.lease, run_at_ms=now + 3, error_type="E", error_message="m", now_ms=now + 2
    )
    [claim] = store.claim(ns, ["wf"], "w1", now_ms=now + 4, lease_ms=60_000, limit=5)
    assert claim.execution.attempt == 2  # the retried schedule_retry counted once
    lose()
    store.finish(claim.lease, status=Status.COMPLETED, now_ms=now + 5, output=b"done")
    row = store.get_execution(ns, new.id)
    assert row is not None and row.status is Status.COMPLETED and row.output == b"done"
    assert [s.name for s in store.list_steps(new.id)] == ["s1", "nap"]

    lose()
    assert store.claim_cron_fire(ns, "job", now, now_ms=now, worker_id="w1")
    assert not store.claim_cron_fire(ns, "job", now, now_ms=now + 1, worker_id="w2")
    # Every write above met the lost reply and was retried.
    assert len(_retries(caplog)) == 7, _retries(caplog)


def test_step_attempts_written_again_after_a_lost_reply_stay_one_each(
    sql_store_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed attempt saved with suspend, then the completed one with save_step, each
    committed with its reply lost and run again: one record per attempt, no
    LeaseLostError."""
    store: SQLStore = sql_store_factory()
    caplog.set_level(logging.WARNING, logger="hydra.store")
    ns = f"lost-reply-{uuid.uuid4().hex[:8]}"
    lose = _lose_replies(store, monkeypatch)
    new = _new_execution(ns)
    now = new.run_at_ms
    store.create_execution(new)
    [first] = store.claim(ns, ["wf"], "w1", now_ms=now, lease_ms=60_000, limit=5)
    failed = StepRow(new.id, "charge", 0, StepStatus.RETRYING, 1, None, "E", "boom", now, now + 1)
    lose()
    store.suspend(first.lease, wake_at_ms=now + 2, now_ms=now + 1, step=failed)
    [second] = store.claim(ns, ["wf"], "w1", now_ms=now + 2, lease_ms=60_000, limit=5)
    done = StepRow(new.id, "charge", 0, StepStatus.COMPLETED, 2, b"1", None, None, now + 2, now + 3)
    lose()
    store.save_step(second.lease, done, now_ms=now + 3, lease_ms=60_000)
    assert len(_retries(caplog)) == 2, _retries(caplog)
    got = [(a.attempt, a.status, a.error_message) for a in store.list_step_attempts(new.id)]
    assert got == [(1, StepStatus.FAILED, "boom"), (2, StepStatus.COMPLETED, None)]


def test_message_writes_retried_after_a_lost_reply_happen_once(
    sql_store_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A receive that consumed a message commits, its reply is lost, and it runs again:
    it returns the same message and consumes no other. A suspending receive, a send, a
    hydra.send and a set_event repeated so recognise their own earlier commit (no
    LeaseLostError, nothing stored twice)."""
    store: SQLStore = sql_store_factory()
    caplog.set_level(logging.WARNING, logger="hydra.store")
    ns = f"lost-reply-{uuid.uuid4().hex[:8]}"
    lose = _lose_replies(store, monkeypatch)
    new, other = _new_execution(ns), _new_execution(ns)
    now = new.run_at_ms
    store.create_execution(new)
    store.create_execution(other)

    def message(to: str, payload: bytes, sender: str | None = None) -> NewMessage:
        return NewMessage(str(uuid.uuid4()), ns, to, "t", payload, now, sender_id=sender)

    first = message(new.id, b"1")
    lose()
    assert store.send_message(first, now_ms=now)[0] == first.id
    store.send_message(message(new.id, b"2"), now_ms=now)
    assert [m.payload for m in store.list_messages(new.id)] == [b"1", b"2"]
    claims = store.claim(
        ns, ["wf"], "w1", now_ms=max(now, other.run_at_ms), lease_ms=60_000, limit=5
    )
    leases = {c.execution.id: c.lease for c in claims}
    lease = leases[new.id]

    def waiting(name: str, order: int) -> StepRow:
        return StepRow(new.id, name, order, StepStatus.WAITING, 1, started_at=now, kind="receive")

    lose()
    got = store.receive(
        lease,
        topic="t",
        waiting=waiting("r1", 0),
        suspend=True,
        deadline_ms=None,
        now_ms=now + 1,
        lease_ms=60_000,
    )
    assert got is not None and got.id == first.id, got
    consumed = [(m.payload, m.consumed_by) for m in store.list_messages(new.id)]
    assert consumed == [(b"1", "r1"), (b"2", None)], "the retried receive consumed another"
    store.receive(
        lease,
        topic="t",
        waiting=waiting("r2", 1),
        suspend=True,
        deadline_ms=None,
        now_ms=now + 2,
        lease_ms=60_000,
    )
    lose()
    assert (
        store.receive(
            lease,
            topic="t",
            waiting=waiting("r3", 2),
            suspend=True,
            deadline_ms=now + 50,
            now_ms=now + 3,
            lease_ms=60_000,
        )
        is None
    )
    row = store.get_execution(ns, new.id)
    assert row is not None and (row.status, row.wait_topic) == (Status.SLEEPING, "t")
    assert [s.status for s in store.list_steps(new.id)] == [StepStatus.COMPLETED] * 2 + [
        StepStatus.WAITING
    ]

    sending = leases[other.id]
    hello = message(new.id, b"hello", sender=other.id)
    step = StepRow(other.id, "send-1", 0, StepStatus.COMPLETED, 1, kind="send")
    lose()
    store.send_from_run(sending, hello, step, now_ms=now + 4, lease_ms=60_000)
    assert [m.id for m in store.list_sent_messages(other.id)] == [hello.id]
    row = store.get_execution(ns, new.id)
    assert row is not None and row.wake_at == now + 4, "the hydra.send did not wake it"
    event = StepRow(other.id, "event-1", 1, StepStatus.COMPLETED, 1, b"1", kind="event")
    lose()
    store.set_event(
        sending, EventRow(other.id, "k", b"1", now + 5), event, now_ms=now + 5, lease_ms=60_000
    )
    assert [(e.key, e.value) for e in store.get_events(other.id)] == [("k", b"1")]
    # Every armed write above met the lost reply and was retried.
    assert len(_retries(caplog)) == 5, _retries(caplog)
