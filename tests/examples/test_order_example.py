"""examples/order.py runs and tells the refund story."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import hydra

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_order_example_ships_one_order_and_refunds_the_other(tmp_path: Path) -> None:
    order = load("order")
    store = hydra.SQLStore(f"sqlite:///{tmp_path}/order.db")
    engine = hydra.Engine(store, namespace="examples")
    with hydra.Worker(engine, poll_interval=0.01) as worker:
        for wf in order.WORKFLOWS:
            worker.register(wf)
        shipped, refunded = (engine.wait(eid, timeout=30) for eid in order.dev(engine))
    assert shipped.status == refunded.status == "completed"
    assert shipped.output["tracking_number"].startswith("track_cust_123")
    assert [s.name for s in shipped.steps] == [
        "process-payment",
        "reserve-inventory",
        "create-shipping",
    ]
    assert refunded.output["refunded"] is True
    assert [(s.name, s.status) for s in refunded.steps] == [
        ("process-payment", "completed"),
        ("reserve-inventory", "failed"),
        ("refund-payment", "completed"),
    ]
    store.close()


@pytest.mark.slow
def test_order_example_runs_as_a_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "order.py"), f"sqlite:///{tmp_path}/script.db"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": completed") == 2
    assert "refund-payment" in result.stdout
