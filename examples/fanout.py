"""Fan-out: one order shipped from several warehouses at once, a child workflow each,
while the product thumbnails are made side by side.

``split-order`` charges the customer once, starts one ``ship-from-warehouse`` child per
warehouse (all of them before waiting for any, so they run in parallel, on any worker),
makes the thumbnails in a ``hydra.gather``, and then waits for each child. A warehouse
that cannot ship its part fails its child; the parent catches the ``ChildFailedError``
and re-routes that part to the central warehouse with another child or, if that fails
too, refunds it. Each child is started exactly once and the customer charged once,
whatever crashes on the way. Run it:

    hydra dev run examples/fanout.py

The dev hook below starts two orders. The first ships from berlin and lyon; in the
second, lyon has no lamps left, so that part is re-routed to the central warehouse.
``hydra trace ID`` shows the children started and waited for, and the thumbnails made
side by side. docs/children.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import hydra

CENTRAL = "central"  # where a part goes when its own warehouse cannot ship it


@dataclass
class Line:
    sku: str
    quantity: int
    warehouse: str
    price_cents: int


@dataclass
class Order:
    order_id: str
    customer: str
    lines: list[Line]


@dataclass
class Shipment:
    """What one child ships: the lines of an order that one warehouse sends."""

    order_id: str
    warehouse: str
    lines: list[Line]


@dataclass
class OrderResult:
    charge: str
    tracking: dict[str, str]  # warehouse of the order -> tracking number
    refunds: list[str]
    thumbnails: dict[str, str]  # step name ("thumb-<sku>") -> thumbnail URL


class OutOfStock(hydra.NonRetryableError):
    """No retry will conjure stock: the child fails at once."""


class Payments:
    """A stand-in for a payment provider. Like a real one, it charges once per
    idempotency key: a step runs again if its worker dies inside it (at-least-once),
    the charge not."""

    def __init__(self) -> None:
        self.charged: dict[str, int] = {}  # idempotency key -> cents
        self.refunded: dict[str, int] = {}

    def charge(self, key: str, cents: int) -> str:
        self.charged.setdefault(key, cents)
        return f"ch_{key}"

    def refund(self, key: str, cents: int) -> str:
        self.refunded.setdefault(key, cents)
        return f"re_{key}"


class Warehouses:
    """A stand-in for the warehouses' stock systems: a reservation is made once per
    key, so a pick that runs again after a crash does not take the stock twice."""

    def __init__(self, stock: dict[str, dict[str, int]]) -> None:
        self.stock = stock  # warehouse -> sku -> units
        self.reserved: dict[str, str] = {}  # key -> warehouse

    def pick(self, key: str, warehouse: str, lines: list[Line]) -> str:
        if key not in self.reserved:
            shelf = self.stock.get(warehouse, {})
            for line in lines:
                if shelf.get(line.sku, 0) < line.quantity:
                    raise OutOfStock(f"{warehouse} has {shelf.get(line.sku, 0)} x {line.sku}")
            for line in lines:
                shelf[line.sku] -= line.quantity
            self.reserved[key] = warehouse
        return f"pick_{key}"


def print_label(shipment: Shipment) -> str:
    return f"track_{shipment.warehouse}_{shipment.order_id}"


def make_thumbnail(sku: str) -> str:
    return f"https://img.example.com/{sku}/128.png"  # a real one would resize an image


def by_warehouse(order: Order) -> dict[str, list[Line]]:
    """The order's lines per warehouse, warehouses in the order they first appear."""
    parts: dict[str, list[Line]] = {}
    for line in order.lines:
        parts.setdefault(line.warehouse, []).append(line)
    return parts


class ShipFromWarehouse(hydra.Workflow[Shipment]):
    """The child: pick the lines at one warehouse and print the label."""

    name = "ship-from-warehouse"

    def __init__(self, warehouses: Warehouses) -> None:
        self.warehouses = warehouses

    def run(self, ctx: hydra.WorkflowContext, shipment: Shipment) -> str:
        key = f"{shipment.order_id}-{shipment.warehouse}"
        hydra.step(
            ctx, "pick", lambda: self.warehouses.pick(key, shipment.warehouse, shipment.lines)
        )
        return hydra.step(ctx, "label", lambda: print_label(shipment))


class SplitOrder(hydra.Workflow[Order]):
    """The parent: charge once, a child per warehouse, thumbnails side by side."""

    name = "split-order"

    def __init__(self, payments: Payments, shipping: ShipFromWarehouse) -> None:
        self.payments = payments
        self.shipping = shipping

    def run(self, ctx: hydra.WorkflowContext, order: Order) -> OrderResult:
        total = sum(line.price_cents * line.quantity for line in order.lines)
        charge = hydra.step(
            ctx, "charge", lambda: self.payments.charge(f"order-{order.order_id}", total)
        )
        parts = by_warehouse(order)
        # Start every child first: they run at once, in parallel, while this goes on.
        children = {
            warehouse: hydra.start_child(
                ctx, f"ship-{warehouse}", self.shipping, Shipment(order.order_id, warehouse, lines)
            )
            for warehouse, lines in parts.items()
        }
        # Each thumbnail is a step of its own, all made at once (partial binds the sku).
        thumbnails = hydra.gather(
            ctx, {f"thumb-{line.sku}": partial(make_thumbnail, line.sku) for line in order.lines}
        )
        tracking: dict[str, str] = {}
        refunds: list[str] = []
        for warehouse, handle in children.items():
            lines = parts[warehouse]
            try:
                tracking[warehouse] = hydra.wait_child(ctx, handle, result_type=str)
            except hydra.ChildFailedError:  # that warehouse could not ship its part
                try:
                    tracking[warehouse] = self.reroute(ctx, order, warehouse, lines)
                except hydra.ChildFailedError:  # nor could the central one: refund it
                    refunds.append(self.refund(ctx, order, warehouse, lines))
        return OrderResult(charge, tracking, refunds, thumbnails)

    def reroute(
        self, ctx: hydra.WorkflowContext, order: Order, warehouse: str, lines: list[Line]
    ) -> str:
        """Ship a part from the central warehouse instead, with another child."""
        shipment = Shipment(order.order_id, CENTRAL, lines)
        tracking: str = hydra.call_child(ctx, f"reroute-{warehouse}", self.shipping, shipment)
        return tracking

    def refund(
        self, ctx: hydra.WorkflowContext, order: Order, warehouse: str, lines: list[Line]
    ) -> str:
        part = sum(line.price_cents * line.quantity for line in lines)
        key = f"order-{order.order_id}-{warehouse}"
        return hydra.step(ctx, f"refund-{warehouse}", lambda: self.payments.refund(key, part))


PAYMENTS = Payments()
WAREHOUSES = Warehouses(
    {
        "berlin": {"book": 50, "lamp": 4},
        "lyon": {"book": 20, "chair": 5},
        "central": {"book": 500, "lamp": 80, "chair": 40},
    }
)
SHIPPING = ShipFromWarehouse(WAREHOUSES)
WORKFLOWS = [SplitOrder(PAYMENTS, SHIPPING), SHIPPING]


def dev(engine: hydra.Engine) -> list[str]:
    """The dev-run hook: ``hydra dev run examples/fanout.py`` starts these two orders."""
    first = Order(
        "o-1001",
        "ada",
        [Line("book", 2, "berlin", 1_500), Line("chair", 1, "lyon", 12_000)],
    )
    # lyon stocks no lamps: its child fails and the parent re-routes that part.
    second = Order(
        "o-1002",
        "alan",
        [Line("book", 1, "berlin", 1_500), Line("lamp", 2, "lyon", 4_500)],
    )
    return [
        engine.start_workflow("split-order", first, max_attempts=1),
        engine.start_workflow("split-order", second, max_attempts=1),
    ]
