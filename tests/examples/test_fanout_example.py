"""examples/fanout.py: an order split per warehouse, one child workflow each, a failing
warehouse re-routed or refunded, and the thumbnails made in a ``hydra.gather``."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hydra.status import StepStatus
from hydra.testing import TestEnvironment, explore_crashes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fanout.py"
WAIT = 30  # seconds: a bound against hangs, never an expectation
STOCK = {
    "berlin": {"book": 50, "lamp": 4},
    "lyon": {"book": 20, "chair": 5},
    "central": {"book": 500, "lamp": 80, "chair": 40},
}


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_fanout", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fanout() -> ModuleType:
    return load()


class Shop:
    """The example's two workflows on a fresh ledger and fresh stock, in a test env."""

    def __init__(self, fanout: ModuleType, stock: dict[str, dict[str, int]] | None = None) -> None:
        self.payments = fanout.Payments()
        self.warehouses = fanout.Warehouses(_copy(stock or STOCK))
        self.shipping = fanout.ShipFromWarehouse(self.warehouses)
        self.order = fanout.SplitOrder(self.payments, self.shipping)
        self.env = TestEnvironment()
        self.env.register(self.order)
        self.env.register(self.shipping)


def _copy(stock: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {warehouse: dict(shelf) for warehouse, shelf in stock.items()}


def order(fanout: ModuleType, *lines: tuple[str, int, str, int]) -> Any:
    return fanout.Order("o-1", "ada", [fanout.Line(*line) for line in lines])


def test_each_warehouse_ships_its_part_in_a_child_of_its_own(fanout: ModuleType) -> None:
    shop = Shop(fanout)
    eid = shop.env.start(
        "split-order",
        order(fanout, ("book", 2, "berlin", 1_500), ("chair", 1, "lyon", 12_000)),
    )

    done = shop.env.run_until_complete(eid)

    assert done.status == "completed", shop.env.format_history(eid)
    assert done.output == {
        "charge": "ch_order-o-1",
        "tracking": {"berlin": "track_berlin_o-1", "lyon": "track_lyon_o-1"},
        "refunds": [],
        "thumbnails": {
            "thumb-book": "https://img.example.com/book/128.png",
            "thumb-chair": "https://img.example.com/chair/128.png",
        },
    }
    assert [(s.name, s.kind) for s in done.steps] == [
        ("charge", "step"),
        ("ship-berlin", "child"),
        ("ship-lyon", "child"),
        ("thumb-book", "step"),
        ("thumb-chair", "step"),
        ("wait-ship-berlin", "child_wait"),
        ("wait-ship-lyon", "child_wait"),
    ]
    children = shop.env.engine.list_executions(parent_id=eid)
    assert len(children) == 2
    assert {c.parent_id for c in children} == {eid}
    inputs = {shop.env.execution(c.id).input["warehouse"]: c for c in children}
    assert sorted(inputs) == ["berlin", "lyon"]
    for warehouse, child in inputs.items():
        assert child.status == "completed"
        start = done.step(f"ship-{warehouse}")
        assert start is not None and start.detail["child"] == child.id
    assert shop.payments.charged == {"order-o-1": 15_000}
    assert shop.warehouses.stock["berlin"]["book"] == 48
    assert shop.warehouses.stock["lyon"]["chair"] == 4


def test_a_warehouse_out_of_stock_is_re_routed_to_the_central_one(fanout: ModuleType) -> None:
    shop = Shop(fanout)
    eid = shop.env.start(
        "split-order",
        order(fanout, ("book", 1, "berlin", 1_500), ("lamp", 2, "lyon", 4_500)),
    )

    done = shop.env.run_until_complete(eid)

    assert done.status == "completed", shop.env.format_history(eid)
    assert done.output["tracking"] == {"berlin": "track_berlin_o-1", "lyon": "track_central_o-1"}
    assert done.output["refunds"] == []
    failed = done.step("wait-ship-lyon")
    assert failed is not None and failed.status == StepStatus.COMPLETED  # the end, received
    names = [s.name for s in done.steps]
    assert names[-2:] == ["reroute-lyon", "wait-reroute-lyon"]
    children = {
        shop.env.execution(c.id).input["warehouse"]: c.status
        for c in shop.env.engine.list_executions(parent_id=eid)
        if shop.env.execution(c.id).input["lines"][0]["sku"] == "lamp"
    }
    assert children == {"lyon": "failed", "central": "completed"}
    lyon = shop.env.execution(done.step("ship-lyon").detail["child"])  # type: ignore[union-attr]
    assert (lyon.status, lyon.error_type, lyon.attempt) == ("failed", "StepFailedError", 1)
    assert "OutOfStock: lyon has 0 x lamp" in (lyon.error_message or "")  # not retried
    assert shop.warehouses.stock["central"]["lamp"] == 78
    assert shop.payments.refunded == {}


def test_a_part_nobody_can_ship_is_refunded(fanout: ModuleType) -> None:
    shop = Shop(fanout, {**STOCK, "central": {"book": 500}})
    eid = shop.env.start(
        "split-order",
        order(fanout, ("book", 1, "berlin", 1_500), ("lamp", 2, "lyon", 4_500)),
    )

    done = shop.env.run_until_complete(eid)

    assert done.status == "completed", shop.env.format_history(eid)
    assert done.output["tracking"] == {"berlin": "track_berlin_o-1"}
    assert done.output["refunds"] == ["re_order-o-1-lyon"]
    assert [s.name for s in done.steps][-3:] == ["reroute-lyon", "wait-reroute-lyon", "refund-lyon"]
    assert shop.payments.charged == {"order-o-1": 10_500}
    assert shop.payments.refunded == {"order-o-1-lyon": 9_000}  # that part, once
    statuses = sorted(c.status for c in shop.env.engine.list_executions(parent_id=eid))
    assert statuses == ["completed", "failed", "failed"]


def test_any_crash_starts_each_child_once_and_charges_once(fanout: ModuleType) -> None:
    shop = Shop(fanout)
    the_order = order(fanout, ("book", 1, "berlin", 1_500), ("lamp", 2, "lyon", 4_500))

    def fresh_env() -> TestEnvironment:
        # explore_crashes runs every case with the same workflow objects: reset their world.
        shop.payments.charged.clear()
        shop.warehouses.stock = _copy(STOCK)
        shop.warehouses.reserved.clear()
        return TestEnvironment()

    def check(env: TestEnvironment, eid: str) -> None:
        done = env.execution(eid)
        assert done.status == "completed", env.format_history(eid)
        assert done.output["tracking"] == {
            "berlin": "track_berlin_o-1",
            "lyon": "track_central_o-1",
        }
        starts = [s for s in done.steps if s.kind == "child"]
        children = env.engine.list_executions(parent_id=eid)
        assert sorted(c.id for c in children) == sorted(s.detail["child"] for s in starts)
        assert len(children) == 3  # berlin, lyon (out of lamps), and lyon's part re-routed
        assert shop.payments.charged == {"order-o-1": 10_500}
        assert shop.warehouses.stock["central"]["lamp"] == 78  # picked once
        assert shop.warehouses.stock["berlin"]["book"] == 49

    report = explore_crashes(
        shop.order, the_order, check, also_register=[shop.shipping], make_env=fresh_env
    )
    assert report.steps == [
        "charge",
        "ship-berlin",
        "ship-lyon",
        "thumb-book",
        "thumb-lamp",
        "wait-ship-berlin",
        "wait-ship-lyon",
        "reroute-lyon",
        "wait-reroute-lyon",
    ]


def test_the_thumbnails_are_stored_in_the_order_s_order_whatever_finishes_first(
    fanout: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first product's thumbnail finishes last: it waits until the last one is made.
    last_made = threading.Event()
    real = fanout.make_thumbnail

    def make_thumbnail(sku: str) -> str:
        if sku == "book" and not last_made.wait(WAIT):
            raise TimeoutError("the chair's thumbnail was never made")
        url: str = real(sku)
        if sku == "chair":
            last_made.set()
        return url

    monkeypatch.setattr(fanout, "make_thumbnail", make_thumbnail)
    shop = Shop(fanout)
    eid = shop.env.start(
        "split-order",
        order(
            fanout,
            ("book", 1, "berlin", 1_500),
            ("lamp", 1, "berlin", 4_500),
            ("chair", 1, "lyon", 12_000),
        ),
    )

    done = shop.env.run_until_complete(eid)

    assert done.status == "completed", shop.env.format_history(eid)
    thumbs = [s for s in done.steps if s.name.startswith("thumb-")]
    assert [s.name for s in thumbs] == ["thumb-book", "thumb-lamp", "thumb-chair"]
    assert done.output["thumbnails"]["thumb-book"] == "https://img.example.com/book/128.png"
    assert shop.env.step_runs(eid, "thumb-book") == 1


def test_hydra_dev_run_ships_both_orders_with_their_children(tmp_path: Path) -> None:
    """``hydra dev run examples/fanout.py``: both orders complete, one re-routed; each
    started its children (the parents' rows name them)."""
    from tests.cli.helpers import engine_on, hydra_cli, sqlite_url

    url = sqlite_url(tmp_path / "fanout.db")
    result = hydra_cli("dev", "run", str(EXAMPLE), "--db", url)
    assert result.exit_code == 0, result.output
    assert "all 2 executions completed" in result.output
    with engine_on(url) as engine:
        orders = engine.list_executions(workflow_name="split-order")
        assert sorted(o.status for o in orders) == ["completed", "completed"]
        children = [c for o in orders for c in engine.list_executions(parent_id=o.id)]
        assert len(children) == 5  # 2 + 2 warehouses, 1 re-route
        assert sorted(c.status for c in children) == ["completed"] * 4 + ["failed"]
