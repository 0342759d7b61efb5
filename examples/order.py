"""Order processing: charge, reserve stock, ship; refund the charge if stock runs out.

Run it on the embedded SQLite database:

    python examples/order.py            # or ./scripts/demo.sh

Each step's result is checkpointed: kill the process mid-way and run it again, and the
orders finish without charging anyone twice. (The services below are stand-ins that
keep their state in memory; a real system would call payment and warehouse APIs.)
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import timedelta

import hydra

# --- the domain ----------------------------------------------------------------------


@dataclass
class Item:
    sku: str
    quantity: int


@dataclass
class OrderRequest:
    customer_id: str
    payment_id: str
    items: list[Item]
    amount_cents: int


@dataclass
class Payment:
    charge_id: str
    amount_cents: int


@dataclass
class Receipt:
    order_id: str
    charge_id: str
    tracking_number: str | None = None
    refunded: bool = False
    notes: list[str] = field(default_factory=list)


STOCK = {"book": 10, "lamp": 2, "chair": 0}


class OutOfStock(hydra.NonRetryableError):
    """No retry will conjure stock: fail the step at once."""


def charge_card(payment_id: str, amount_cents: int) -> Payment:
    # A real payment API takes an idempotency key; the checkpoint makes a second charge
    # impossible once this step has completed.
    return Payment(charge_id=f"ch_{payment_id}", amount_cents=amount_cents)


def reserve_stock(items: list[Item]) -> str:
    for item in items:
        if STOCK.get(item.sku, 0) < item.quantity:
            raise OutOfStock(f"only {STOCK.get(item.sku, 0)} x {item.sku} left")
    return "res_" + "_".join(f"{i.sku}{i.quantity}" for i in items)


def create_label(customer_id: str, reservation: str) -> str:
    return f"track_{customer_id}_{reservation[-6:]}"


def refund(charge_id: str) -> str:
    return f"re_{charge_id}"


# --- the workflow --------------------------------------------------------------------


class OrderWorkflow(hydra.Workflow[OrderRequest]):
    name = "order-processing"

    def run(self, ctx: hydra.WorkflowContext, req: OrderRequest) -> Receipt:
        payment = hydra.step(
            ctx,
            "process-payment",
            lambda: charge_card(req.payment_id, req.amount_cents),
            result_type=Payment,
        )
        try:
            reservation = hydra.step(ctx, "reserve-inventory", lambda: reserve_stock(req.items))
        except hydra.StepFailedError as exc:
            hydra.step(ctx, "refund-payment", lambda: refund(payment.charge_id))
            return Receipt(
                ctx.execution_id, payment.charge_id, refunded=True, notes=[exc.last_error]
            )
        tracking = hydra.step(
            ctx,
            "create-shipping",
            lambda: create_label(req.customer_id, reservation),
            retry=hydra.RetryPolicy(max_attempts=5, initial_backoff=timedelta(seconds=1)),
        )
        return Receipt(ctx.execution_id, payment.charge_id, tracking_number=tracking)


WORKFLOWS = [OrderWorkflow()]


def dev(engine: hydra.Engine) -> list[str]:
    """Start the demo's executions (``hydra dev run`` calls this too)."""
    return [
        engine.start_workflow(
            "order-processing",
            OrderRequest("cust_123", "pay_789", [Item("book", 2), Item("lamp", 1)], 4_599),
        ),
        engine.start_workflow(
            "order-processing", OrderRequest("cust_456", "pay_790", [Item("chair", 1)], 12_900)
        ),
    ]


def main(url: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    url = url or os.environ.get("HYDRA_DATABASE_URL", "sqlite:///.hydra/hydra.db")
    store = hydra.SQLStore(url)
    engine = hydra.Engine(store, namespace="examples")
    worker = hydra.Worker(engine, concurrency=4)
    for wf in WORKFLOWS:
        worker.register(wf)
    worker.start()
    try:
        ok = True
        for eid in dev(engine):
            ex = engine.wait(eid, timeout=60)
            ok = ok and ex.status == hydra.Status.COMPLETED
            print(f"{ex.workflow_name} {ex.id}: {ex.status.value}")
            for s in ex.steps:
                print(
                    f"  {s.name:<18} {s.status.value:<10} attempts={s.attempts} "
                    f"output={s.output if s.error is None else s.error}"
                )
            print(f"  output: {ex.output}")
    finally:
        worker.shutdown()
        store.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
