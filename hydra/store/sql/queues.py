"""``SQLStore``'s queues: registered limits, the claim lanes, and the admission of
claimable executions under the limits (``hydra.queues`` says what they mean).

The claim reads the lanes of each workflow it claims, each with its first wake time
(``_lane_wakes``: one statement per workflow, its index probes sent together, or one
in all on PostgreSQL), and keeps
those that may hold a due row (``_due_lanes``). Where every one of them is of the default
queue or the running lane and the database can, it claims in one statement
(PostgreSQL); otherwise it picks each lane's first due rows in one transaction and admits
them (``hydra.store.admission``), taking slots and rate rows in that same transaction.

Why a slot is an inserted row: a claimer that counted the running executions of a queue
would not see the ones another claimer is claiming in a transaction not yet committed
(each would count 2 of 3 and both would start a third). A primary key does see them: the
second INSERT of slot (queue, 'q', '', 2) waits for the first transaction and then finds
the key taken (PostgreSQL ON CONFLICT DO NOTHING, MySQL/MariaDB INSERT IGNORE), and
SQLite has one writer at a time. So at most ``concurrency`` rows, hence running
executions that hold one, exist for a queue whatever the number of claimers.

Waiting for another claimer's uncommitted slot is safe but slow where two claimers each
hold one slot and insert the other's (PostgreSQL finds that deadlock only after
``deadlock_timeout``, 1 s): there a claimer first tries a transaction-level advisory lock
on the slot (``Dialect.try_lock_slot``) and moves on to the next number if another
transaction holds it. MySQL/MariaDB detect the deadlock at once and the claim is retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, select
from sqlalchemy.exc import IntegrityError

from hydra.status import Status
from hydra.store.admission import Admission
from hydra.store.base import ExecutionRow, Lease
from hydra.store.queues import (
    DEFAULT_QUEUE,
    QueueRow,
    QueueStats,
    SlotRow,
    free_numbers,
    is_held,
    waiting_lane,
)
from hydra.store.sql import statements
from hydra.store.sql.driver import Tx
from hydra.store.sql.mailbox import SQLMailbox
from hydra.store.sql.schema import executions, queue_rate, queue_slots, queues

#: the used_at of a rate row never used: before any time a clock gives
NEVER = -(2**62)

_Q = queues.c
GET_QUEUE = select(queues).where(_Q.namespace == bindparam("q_ns"), _Q.name == bindparam("q_name"))
LIST_QUEUES = select(queues).where(_Q.namespace == bindparam("q_ns")).order_by(_Q.name)
_S = queue_slots.c
SLOT_NUMBERS = select(_S.slot_no).where(
    _S.namespace == bindparam("s_ns"),
    _S.queue_name == bindparam("s_queue"),
    _S.scope == bindparam("s_scope"),
    _S.slot_key == bindparam("s_key"),
)
SLOT_VALUES: dict[str, Any] = {
    "namespace": bindparam("s_ns"),
    "queue_name": bindparam("s_queue"),
    "scope": bindparam("s_scope"),
    "slot_key": bindparam("s_key"),
    "slot_no": bindparam("s_no"),
    "execution_id": bindparam("s_id"),
    "taken_at": bindparam("s_now"),
}
DROP_SLOT = queue_slots.delete().where(
    _S.namespace == bindparam("s_ns"),
    _S.queue_name == bindparam("s_queue"),
    _S.scope == bindparam("s_scope"),
    _S.slot_key == bindparam("s_key"),
    _S.slot_no == bindparam("s_no"),
)
# The key slots an execution holds, read before they are freed (each frees a held one).
KEY_SLOTS_OF = select(_S.namespace, _S.queue_name, _S.slot_key).where(
    _S.execution_id == bindparam("q_id"), _S.scope == "k"
)
_E = executions.c
# A concurrency key's due executions in one lane (ix_workflow_executions_key), to hold back.
KEY_DUE = (
    select(_E.id)
    .where(
        _E.namespace == bindparam("h_ns"),
        _E.queue_name == bindparam("h_queue"),
        _E.concurrency_key == bindparam("h_key"),
        _E.claim_lane == bindparam("h_lane"),
        _E.wake_at <= bindparam("h_now"),
    )
    .limit(bindparam("h_limit"))
)
HOLD = executions.update().where(_E.id == bindparam("h_id")).values(claim_lane=statements.HELD_LANE)
# The first execution a concurrency key holds back: its 'h' lanes sort highest priority
# first (hydra.store.queues.PRIORITY_BASE), then by wake time.
FIRST_HELD = (
    select(_E.id)
    .where(
        _E.namespace == bindparam("h_ns"),
        _E.queue_name == bindparam("h_queue"),
        _E.concurrency_key == bindparam("h_key"),
        _E.claim_lane >= "h",
        _E.claim_lane < "i",
    )
    .order_by(_E.claim_lane, _E.wake_at)
    .limit(1)
)
UNHOLD = (
    executions.update().where(_E.id == bindparam("h_id")).values(claim_lane=statements.WAITING_LANE)
)
#: how many due executions of a full key one claim holds back at most
HOLD_BATCH = 1000
#: how many lanes seen before one lane statement probes after at most (the rest: one at
#: a time)
LANE_CHAIN_MAX = 15

_R = queue_rate.c
# The rate row used longest ago, if it was used at or before r_cut (now - per): the first
# entry of the queue's range of ix_workflow_queue_rate_used (locked by the dialect).
RATE_OLDEST = (
    select(_R.slot_no)
    .where(
        _R.namespace == bindparam("r_ns"),
        _R.queue_name == bindparam("r_queue"),
        _R.used_at <= bindparam("r_cut"),
    )
    .order_by(_R.used_at)
    .limit(1)
)
RATE_USE = (
    queue_rate.update()
    .where(
        _R.namespace == bindparam("r_ns"),
        _R.queue_name == bindparam("r_queue"),
        _R.slot_no == bindparam("r_no"),
    )
    .values(used_at=bindparam("r_now"))
)


def slot_lock_key(slot: dict[str, Any], number: int) -> int:
    """A signed 64-bit number naming one slot (``Dialect.try_lock_slot``); a collision
    only makes a claimer skip a free slot once."""
    name = "\x1f".join((slot["s_ns"], slot["s_queue"], slot["s_scope"], slot["s_key"], str(number)))
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def queue_record(r: Sequence[Any]) -> QueueRow:
    """A full ``workflow_queues`` row."""
    namespace, name, concurrency, worker, key, rate, per, created, updated = r
    return QueueRow(namespace, name, concurrency, worker, key, rate, per, created, updated)


class SQLQueues(SQLMailbox):
    """The queues of ``SQLStore`` (its base class)."""

    _claim_lane_pick: Any
    _insert_slot: Any
    _rate_oldest: Any
    _lanes_query: Any
    _key_due: Any
    _first_held: Any
    _key_slots_shared: Any
    _seen_lanes: dict[tuple[str, str], tuple[tuple[str, bool], ...]]
    _lane_chains: dict[tuple[int, int], Any]

    def _build_queue_statements(self) -> None:
        # The lanes each (namespace, workflow) had at this store's last claim, and whether
        # each one's first entry had no wake time: only a guess of what to probe
        # (``_name_lanes``), so never stale in a way that matters.
        self._seen_lanes = {}
        self._lane_chains = {}
        self._lanes_query = self._dialect.lanes_query()
        self._key_due = self._dialect.lock_for_claim(KEY_DUE)
        self._first_held = self._dialect.lock_for_claim(FIRST_HELD)
        self._key_slots_shared = SLOT_NUMBERS.with_for_update(read=True)
        self._claim_lane_pick = self._dialect.lock_for_claim(statements.CLAIM_SELECT)
        self._insert_slot = self._dialect.insert_ignoring(queue_slots).values(SLOT_VALUES)
        self._rate_oldest = self._dialect.lock_for_claim(RATE_OLDEST)

    # -- QueueStore -------------------------------------------------------------------
    def upsert_queue(self, row: QueueRow, *, now_ms: int) -> QueueRow:
        values = {
            "concurrency": row.concurrency,
            "worker_concurrency": row.worker_concurrency,
            "key_concurrency": row.key_concurrency,
            "rate_limit": row.rate_limit,
            "rate_per_ms": row.rate_per_ms,
            "updated_at": now_ms,
        }
        key = {"q_ns": row.namespace, "q_name": row.name}

        def apply(conn: Connection) -> QueueRow:
            where = (_Q.namespace == row.namespace, _Q.name == row.name)
            old_rows = conn.execute(GET_QUEUE.with_for_update(), key).all()
            if old_rows:
                conn.execute(queues.update().where(*where).values(values))
            else:
                conn.execute(
                    queues.insert().values(
                        namespace=row.namespace, name=row.name, created_at=now_ms, **values
                    )
                )
            old = queue_record(old_rows[0]) if old_rows else None
            if old is None or old.rate_limit != row.rate_limit:
                self._resize_rate(conn, row)
            if old is not None and (old.concurrency, old.key_concurrency) != (
                row.concurrency,
                row.key_concurrency,
            ):
                # New limits: whatever a full key held back is looked at again.
                conn.execute(
                    executions.update()
                    .where(
                        _E.namespace == row.namespace,
                        _E.queue_name == row.name,
                        _E.claim_lane >= "h",
                        _E.claim_lane < "i",
                    )
                    .values(claim_lane=statements.WAITING_LANE)
                )
            return queue_record(conn.execute(GET_QUEUE, key).one())

        def once() -> QueueRow:
            try:
                return self._run(apply)
            except IntegrityError:
                # Another process registered it first, between our read and insert: the
                # row exists now, so this try updates it.
                return self._run(apply)

        return once()

    def _resize_rate(self, conn: Connection, row: QueueRow) -> None:
        """Make the queue's rate rows ``row.rate_limit``, keeping the newest first starts
        (locked: a claim using one finishes first)."""
        where = (_R.namespace == row.namespace, _R.queue_name == row.name)
        used = [
            int(u)
            for (u,) in conn.execute(
                select(_R.used_at).where(*where).order_by(_R.used_at.desc()).with_for_update()
            )
        ]
        conn.execute(queue_rate.delete().where(*where))
        if row.rate_limit is None:
            return
        kept = used[: row.rate_limit] + [NEVER] * max(row.rate_limit - len(used), 0)
        conn.execute(
            queue_rate.insert(),
            [
                {"namespace": row.namespace, "queue_name": row.name, "slot_no": i, "used_at": t}
                for i, t in enumerate(kept)
            ],
        )

    def get_queue(self, namespace: str, name: str) -> QueueRow | None:
        rows = self._run_hot(
            lambda tx: tx.rows(GET_QUEUE, {"q_ns": namespace, "q_name": name}),
            single=True,
            write=False,
        )
        return queue_record(rows[0]) if rows else None

    def list_queues(self, namespace: str) -> list[QueueRow]:
        rows = self._run(
            lambda conn: conn.execute(LIST_QUEUES, {"q_ns": namespace}).all(), write=False
        )
        return [queue_record(r) for r in rows]

    def queue_stats(self, namespace: str, *, now_ms: int) -> list[QueueStats]:
        e = executions.c
        due = e.wake_at <= now_ms
        waiting = e.status != Status.RUNNING.value
        counts = (
            select(
                e.queue_name,
                func.sum(case((waiting & due, 1), else_=0)),
                func.min(case((waiting & due, e.wake_at), else_=None)),
                func.sum(case((waiting & ~due, 1), (waiting & e.wake_at.is_(None), 1), else_=0)),
                func.sum(case((e.status == Status.RUNNING.value, 1), else_=0)),
            )
            .where(e.namespace == namespace, e.status.in_(statements.NON_TERMINAL))
            .group_by(e.queue_name)
        )
        held = (
            select(_S.queue_name, func.count())
            .where(_S.namespace == namespace, _S.scope == "q")
            .group_by(_S.queue_name)
        )

        def read(conn: Connection) -> list[QueueStats]:
            configs = {
                q.name: q for q in map(queue_record, conn.execute(LIST_QUEUES, {"q_ns": namespace}))
            }
            found = {str(r[0]): r for r in conn.execute(counts)}
            slots = {str(q): int(n) for q, n in conn.execute(held)}
            stats = []
            for name in sorted(set(configs) | set(found)):
                r = found.get(name)
                stats.append(
                    QueueStats(
                        name=name,
                        config=configs.get(name),
                        backlog=int(r[1] or 0) if r else 0,
                        oldest_due_at=int(r[2]) if r and r[2] is not None else None,
                        scheduled=int(r[3] or 0) if r else 0,
                        running=int(r[4] or 0) if r else 0,
                        slots_held=slots.get(name, 0),
                    )
                )
            return stats

        return self._run(read, write=False)

    def list_slots(self, namespace: str, queue: str | None = None) -> list[SlotRow]:
        query = select(queue_slots).where(_S.namespace == namespace)
        if queue is not None:
            query = query.where(_S.queue_name == queue)
        query = query.order_by(_S.queue_name, _S.scope, _S.slot_key, _S.slot_no)
        rows = self._run(lambda conn: conn.execute(query).all(), write=False)
        return [
            SlotRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]), int(r[6]))
            for r in rows
        ]

    def next_rate_at(self, namespace: str, *, now_ms: int) -> int | None:
        oldest = (
            select(_R.queue_name, func.min(_R.used_at))
            .where(_R.namespace == namespace)
            .group_by(_R.queue_name)
        )

        def read(conn: Connection) -> int | None:
            pers = {
                q.name: q.rate_per_ms
                for q in map(queue_record, conn.execute(LIST_QUEUES, {"q_ns": namespace}))
            }
            found: int | None = None
            for name, used in conn.execute(oldest):
                per = pers.get(str(name))
                if per is None or used is None or int(used) == NEVER:
                    continue
                free_at = int(used) + per
                if free_at > now_ms and (found is None or free_at < found):
                    found = free_at
            return found

        return self._run(read, write=False)

    # -- slots freed ------------------------------------------------------------------
    def _free_slots(self, tx: Tx, lease: Lease) -> None:
        """The execution of ``lease`` leaves ``running`` (after its fenced UPDATE, which
        locked its row): free its slots. Nothing to do in the default queue."""
        if lease.queue != DEFAULT_QUEUE:
            self._release_slots(tx, lease.execution_id)

    def _release_slots(self, tx: Tx, execution_id: str) -> None:
        """Delete the execution's slots; for each slot of a concurrency key, move the
        first execution that key held back to its lane again (SKIP LOCKED: two slots of
        a key freeing at once bring two different ones)."""
        keys = tx.rows(KEY_SLOTS_OF, {"q_id": execution_id})
        tx.rowcount(statements.FREE_SLOTS, {"q_id": execution_id})
        for namespace, queue, key in keys:
            params = {"h_ns": namespace, "h_queue": queue, "h_key": key}
            first = tx.rows(self._first_held, params)
            if first:
                tx.rowcount(UNHOLD, {"h_id": first[0][0]})

    def _hold_key(self, tx: Tx, row: ExecutionRow, now_ms: int) -> None:
        """Every slot of ``row``'s concurrency key is held: hold back the key's due
        executions of ``row``'s lane (up to HOLD_BATCH; those another claim has locked
        are left), so that the executions of other keys behind them are claimed. A slot
        of the key freeing brings the first back (``_release_slots``): the holders'
        slot rows were read FOR SHARE in this transaction, so a holder that finishes
        meanwhile deletes its slot only after this commits and then sees what it held."""
        lane = waiting_lane(row.queue, row.priority, started=row.started_at is not None)
        params = {
            "h_ns": row.namespace,
            "h_queue": row.queue,
            "h_key": row.concurrency_key,
            "h_lane": lane,
            "h_now": now_ms,
            "h_limit": HOLD_BATCH,
        }
        ids = [{"h_id": r[0]} for r in tx.rows(self._key_due, params)]
        if ids:
            tx.many(HOLD, ids)

    # -- the claim --------------------------------------------------------------------
    def _lane_wakes(
        self, tx: Tx, namespace: str, names: Sequence[str]
    ) -> list[tuple[str, str, int | None]]:
        """Every (workflow name, claim lane) with unfinished rows, with the lane's earliest
        wake time (None: no row of it has one): one statement where the dialect has one
        (``Dialect.lanes_query``: PostgreSQL, where NULLs sort last, so a lane's first
        entry has its earliest wake); elsewhere a skip through ix_workflow_executions_due
        per name (``_name_lanes``)."""
        query = self._lanes_query
        if query is not None:
            rows = tx.rows(query, {"l_ns": namespace, "l_names": list(names)})
            return [(str(name), str(lane), wake) for name, lane, wake in rows]
        return [
            (name, lane, wake)
            for name in names
            for lane, wake in self._name_lanes(tx, namespace, name)
        ]

    def _name_lanes(self, tx: Tx, namespace: str, name: str) -> list[tuple[str, int | None]]:
        """One workflow's lanes, in index order, each with its earliest wake time.

        A lane is found by an index probe for the first entry after the previous lane
        (``statements.NEXT_LANE``); where NULLs sort first (MySQL/MariaDB, SQLite) and
        that entry has none (a wait with no deadline), a second probe reads the lane's
        earliest wake (``statements.LANE_WAKE``). Sent one at a time, that is a round
        trip or two per lane, and a loaded workflow has several (first starts, resumes,
        a queue's at each priority, the running lane): on MySQL/MariaDB (about 0.1 ms
        each) the lanes cost more than the claim. So the probes for the lanes this store
        saw last time go as one statement (``statements.lane_chain``), and the answers
        are walked as a chain from the first: where each lane's probe was sent, the chain
        is exact whatever changed (a lane gone is skipped by its predecessor's probe); a
        lane not seen before is probed after one at a time, and remembered."""
        key = (namespace, name)
        remembered_before = self._seen_lanes.get(key, ())
        seen = remembered_before[:LANE_CHAIN_MAX]
        afters = ["", *(lane for lane, _ in seen)]
        nulled = [lane for lane, null_first in seen if null_first]
        params: dict[str, Any] = {"l_ns": namespace, "l_name": name, "l_never": NEVER}
        params.update({f"l_after_{i}": after for i, after in enumerate(afters)})
        params.update({f"l_lane_{j}": lane for j, lane in enumerate(nulled)})
        answers: dict[int, tuple[str, int | None]] = {
            int(probe): (str(lane), wake)
            for lane, wake, probe in tx.rows(self._lane_chain(len(afters), len(nulled)), params)
        }
        after_probe = {after: i for i, after in enumerate(afters)}
        wake_probe = {lane: len(afters) + j for j, lane in enumerate(nulled)}
        found: list[tuple[str, int | None]] = []
        remembered: list[tuple[str, bool]] = []
        probe: int | None = 0
        after = ""
        while True:
            if probe is not None:
                answer = answers.get(probe)
            else:
                rows = tx.rows(
                    statements.NEXT_LANE, {"l_ns": namespace, "l_name": name, "l_after": after}
                )
                answer = (str(rows[0][0]), rows[0][1]) if rows else None
            if answer is None:
                break
            after, wake = answer
            if wake is None:
                # NULL sorts first here: the lane's earliest wake, if any, is further on.
                if after in wake_probe:
                    earliest = answers.get(wake_probe[after])
                    wake = earliest[1] if earliest is not None else None
                else:
                    lane_wake = {"l_ns": namespace, "l_name": name, "l_lane": after}
                    wake = tx.rows(statements.LANE_WAKE, {**lane_wake, "l_after": NEVER})[0][0]
            found.append((after, wake))
            remembered.append((after, answer[1] is None))
            probe = after_probe.get(after)
        if tuple(remembered) != remembered_before:
            self._seen_lanes[key] = tuple(remembered)
        return found

    def _lane_chain(self, count: int, wakes: int) -> Any:
        """``statements.lane_chain(count, wakes)``, built once per shape."""
        chain = self._lane_chains.get((count, wakes))
        if chain is None:
            chain = self._lane_chains[(count, wakes)] = statements.lane_chain(
                count, wakes, parenthesized=self._dialect.parenthesized_unions
            )
        return chain

    def _due_lanes(
        self, tx: Tx, namespace: str, names: Sequence[str], now_ms: int
    ) -> list[tuple[str, str]]:
        """The (name, lane) pairs a claim at ``now_ms`` picks from: never a held lane nor
        one whose earliest wake time is later than ``now_ms`` or absent (nothing in it is
        due)."""
        return [
            (name, lane)
            for name, lane, wake in self._lane_wakes(tx, namespace, names)
            if not is_held(lane) and wake is not None and int(wake) <= now_ms
        ]

    def _pick(
        self, tx: Tx, namespace: str, pairs: Sequence[tuple[str, str]], now_ms: int, limit: int
    ) -> list[ExecutionRow]:
        """The first ``limit`` due rows of each lane, locked where the database has row
        locks (SKIP LOCKED), in claim order (``order_key``)."""
        from hydra.store.queues import order_key
        from hydra.store.sql.records import execution_row

        found: dict[str, ExecutionRow] = {}
        for name, lane in pairs:
            if is_held(lane):
                continue  # held back by their concurrency key: never claimed from here
            params = {
                "c_ns": namespace,
                "c_name": name,
                "c_lane": lane,
                "c_now": now_ms,
                "c_limit": limit,
            }
            for r in tx.rows(self._claim_lane_pick, params):
                row = execution_row(r)
                found[row.id] = row
        return sorted(
            found.values(), key=lambda r: order_key(r.priority, r.wake_at, r.created_at, r.id)
        )

    def _admit(
        self,
        tx: Tx,
        namespace: str,
        worker_id: str,
        candidates: Sequence[ExecutionRow],
        *,
        limit: int,
        held: Mapping[str, int] | None,
        now_ms: int,
    ) -> tuple[list[ExecutionRow], bool]:
        """The candidates (in claim order) this claim takes, taking their slots and rate
        rows in ``tx`` (``Admission.admit``); and whether a full key's were held back."""
        configs: dict[str, QueueRow] = {}
        if any(r.queue != DEFAULT_QUEUE and r.status != Status.RUNNING for r in candidates):
            # The namespace's registrations (a few rows): fresh in every claim, so a new
            # registration applies from the next claim of every worker.
            rows = tx.rows(LIST_QUEUES, {"q_ns": namespace})
            configs = {q.name: q for q in map(queue_record, rows)}
        admission = _SQLAdmission(self, tx, worker_id, now_ms)
        return admission.admit(candidates, configs, limit=limit, held=held)

    def _take_rate(self, tx: Tx, row: ExecutionRow, config: QueueRow, now_ms: int) -> bool:
        """Take the rate row used longest ago, if that was at least ``per`` ago."""
        assert config.rate_per_ms is not None
        params = {"r_ns": row.namespace, "r_queue": row.queue, "r_cut": now_ms - config.rate_per_ms}
        oldest = tx.rows(self._rate_oldest, params)
        if not oldest:
            return False
        tx.rowcount(RATE_USE, {**params, "r_no": oldest[0][0], "r_now": now_ms})
        return True

    def _take_slot(
        self, tx: Tx, row: ExecutionRow, scope: str, key: str, limit: int, start: int, now_ms: int
    ) -> tuple[dict[str, Any] | None, bool]:
        """Insert a free slot's row for ``row`` (see the module's docstring): its key's
        binds and False; or None and whether every number below ``limit`` is held by a
        committed row (True: full; False: another claim is taking the last free ones).
        A key's slot rows are read FOR SHARE (``_hold_key`` says why)."""
        slot = {"s_ns": row.namespace, "s_queue": row.queue, "s_scope": scope, "s_key": key}
        read = self._key_slots_shared if scope == "k" else SLOT_NUMBERS
        taken = [int(n) for (n,) in tx.rows(read, slot)]
        if any(n >= limit for n in taken):
            return None, True  # the limit was lowered: those above it finish first
        free = free_numbers(limit, taken, start)
        for number in free:
            if not self._dialect.try_lock_slot(tx, slot_lock_key(slot, number)):
                continue
            params = {**slot, "s_no": number, "s_id": row.id, "s_now": now_ms}
            if tx.rowcount(self._insert_slot, params) == 1:
                return params, False
        return None, not free

    def _drop_slots(self, tx: Tx, taken: Sequence[dict[str, Any]]) -> None:
        """Give back slots this claim took for an execution it then could not admit."""
        for params in taken:
            tx.rowcount(DROP_SLOT, params)


class _SQLAdmission(Admission[dict[str, Any]]):
    """``Admission`` in one claim's transaction on ``SQLQueues``."""

    def __init__(self, store: SQLQueues, tx: Tx, worker_id: str, now_ms: int) -> None:
        super().__init__(worker_id, now_ms)
        self.store = store
        self.tx = tx

    def take_slot(
        self, row: ExecutionRow, scope: str, key: str, limit: int
    ) -> tuple[dict[str, Any] | None, bool]:
        return self.store._take_slot(self.tx, row, scope, key, limit, self.start, self.now_ms)

    def take_rate(self, row: ExecutionRow, config: QueueRow) -> bool:
        return self.store._take_rate(self.tx, row, config, self.now_ms)

    def drop_slots(self, row: ExecutionRow, slots: Sequence[dict[str, Any]]) -> None:
        self.store._drop_slots(self.tx, slots)

    def hold_key(self, row: ExecutionRow) -> None:
        self.store._hold_key(self.tx, row, self.now_ms)
