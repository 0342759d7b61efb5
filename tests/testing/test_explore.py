"""``explore_crashes``: crash a workflow at every point once and check what it left behind.

The order example (``examples/order.py``) is crash-safe on both of its paths; a workflow
that charges without an idempotency key is not, and the report says where.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import hydra
from hydra.testing import (
    CrashReport,
    CrashSafetyError,
    TestEnvironment,
    explore_crashes,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    module_name = f"example_{name}_explore"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def crashed_steps(env: TestEnvironment) -> list[str]:
    """The steps a simulated worker died in, from the history."""
    return [
        ast.literal_eval(e.detail.partition(" step ")[2]) for e in env.history if e.kind == "crash"
    ]


# -- the order example ------------------------------------------------------------------


class Ledger:
    """Records every call the order workflow makes to the outside world."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def fresh_env(self) -> TestEnvironment:
        """explore_crashes' ``make_env``: a new environment, an empty ledger."""
        self.calls.clear()
        return TestEnvironment()


@pytest.fixture
def order() -> Iterator[tuple[ModuleType, Ledger]]:
    """examples/order.py with its service calls wrapped to write a side-effect ledger."""
    module = load_example("order")
    ledger = Ledger()

    def recorded(step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            ledger.calls[step] += 1
            return fn(*args)

        return call

    # The workflow's lambdas look these names up in the module at call time.
    for function, step in (
        ("charge_card", "process-payment"),
        ("reserve_stock", "reserve-inventory"),
        ("create_label", "create-shipping"),
        ("refund", "refund-payment"),
    ):
        setattr(module, function, recorded(step, getattr(module, function)))
    yield module, ledger
    sys.modules.pop(module.__name__, None)


def ledger_check(ledger: Ledger, refunded: bool) -> Callable[[TestEnvironment, str], None]:
    def check(env: TestEnvironment, eid: str) -> None:
        execution = env.execution(eid)
        assert execution.status == "completed", execution.error
        crashed = crashed_steps(env)
        assert len(crashed) <= 1
        for step in execution.steps:
            allowed = 2 if step.name in crashed else 1
            assert 1 <= ledger.calls[step.name] <= allowed, (step.name, ledger.calls)
        # Nothing was called that left no checkpoint behind.
        assert set(ledger.calls) == {s.name for s in execution.steps}
        assert execution.output["refunded"] is refunded
        if refunded:
            assert execution.output["tracking_number"] is None
            assert [(s.name, s.status) for s in execution.steps] == [
                ("process-payment", "completed"),
                ("reserve-inventory", "failed"),
                ("refund-payment", "completed"),
            ]
        else:
            assert execution.output["tracking_number"].startswith("track_cust_123")
        assert execution.attempt == 1 + len(crashed)

    return check


def test_a_shippable_order_is_crash_safe(order: tuple[ModuleType, Ledger]) -> None:
    module, ledger = order
    request = module.OrderRequest(
        "cust_123", "pay_789", [module.Item("book", 2), module.Item("lamp", 1)], 4_599
    )
    report = explore_crashes(
        module.OrderWorkflow(),
        request,
        ledger_check(ledger, refunded=False),
        make_env=ledger.fresh_env,
    )
    assert report.ok, report.summary()
    assert report.steps == ["process-payment", "reserve-inventory", "create-shipping"]
    assert len(report.cases) == 1 + 3 * 3
    assert [(c.step, c.phase) for c in report.cases[:4]] == [
        (None, None),
        ("process-payment", "before"),
        ("process-payment", "during"),
        ("process-payment", "after"),
    ]
    assert all("crash" in case.history for case in report.cases[1:])
    assert "0 with violations" in report.summary()


def test_an_out_of_stock_order_is_refunded_and_crash_safe(
    order: tuple[ModuleType, Ledger],
) -> None:
    module, ledger = order
    request = module.OrderRequest("cust_456", "pay_790", [module.Item("chair", 1)], 12_900)
    report = explore_crashes(
        module.OrderWorkflow(),
        request,
        ledger_check(ledger, refunded=True),
        make_env=ledger.fresh_env,
    )
    assert report.ok, report.summary()
    assert report.steps == ["process-payment", "reserve-inventory", "refund-payment"]
    assert len(report.cases) == 10
    # reserve-inventory never returns (it raises OutOfStock), so "after" it never fires.
    after_reserve = next(
        c for c in report.cases if (c.step, c.phase) == ("reserve-inventory", "after")
    )
    assert "crash" not in after_reserve.history


# -- a workflow that is not crash-safe --------------------------------------------------


class Payments:
    """A payment API without idempotency keys: every call charges the card."""

    def __init__(self) -> None:
        self.charges: list[int] = []
        self.receipts: list[str] = []

    def fresh_env(self) -> TestEnvironment:
        self.charges.clear()
        self.receipts.clear()
        return TestEnvironment()

    def workflow(self) -> hydra.Workflow[Any]:
        @hydra.workflow("double-charge")
        def wf(ctx: hydra.WorkflowContext, amount: int) -> str:
            def charge() -> str:
                self.charges.append(amount)
                return f"ch-{len(self.charges)}"

            charge_id = hydra.step(ctx, "charge", charge)
            hydra.step(ctx, "receipt", lambda: self.receipts.append(charge_id))
            return charge_id

        return wf

    def check(self, env: TestEnvironment, eid: str) -> None:
        assert env.execution(eid).status == "completed"
        assert len(self.charges) == 1, f"the card was charged {len(self.charges)} times"
        assert len(self.receipts) <= 2


def test_a_non_idempotent_charge_is_found() -> None:
    payments = Payments()
    with pytest.raises(CrashSafetyError) as info:
        explore_crashes(payments.workflow(), 500, payments.check, make_env=payments.fresh_env)
    report = info.value.report
    failing = [(c.step, c.phase) for c in report.violations]
    assert ("charge", "after") in failing
    assert {step for step, _ in failing} == {"charge"}
    message = str(info.value)
    assert "crash after 'charge': check failed: the card was charged 2 times" in message
    assert "history of the first failing case" in message
    assert "takeover" in message


def test_a_non_idempotent_charge_is_found_during_and_after() -> None:
    payments = Payments()
    with pytest.raises(CrashSafetyError) as info:
        explore_crashes(payments.workflow(), 500, payments.check, make_env=payments.fresh_env)
    failing = {(c.step, c.phase) for c in info.value.report.violations}
    assert failing == {("charge", "during"), ("charge", "after")}


def test_without_raising_the_report_lists_the_violations() -> None:
    payments = Payments()
    report = explore_crashes(
        payments.workflow(),
        500,
        payments.check,
        make_env=payments.fresh_env,
        raise_on_violation=False,
    )
    assert isinstance(report, CrashReport)
    assert not report.ok
    assert report.steps == ["charge", "receipt"]
    assert len(report.cases) == 1 + 2 * 3
    violation = next(c for c in report.violations if (c.step, c.phase) == ("charge", "after"))
    # (pytest's assertion rewriting adds the explanation on the following lines)
    assert [v.splitlines()[0] for v in violation.violations] == [
        "check failed: the card was charged 2 times"
    ]
    assert str(violation).startswith(
        "crash after 'charge': check failed: the card was charged 2 times"
    )
    assert " crash " in violation.history and violation.execution_id[:8] in violation.history
    # Every case runs in a fresh TestEnvironment() with seed 0: the same execution id.
    assert {c.execution_id for c in report.cases} == {violation.execution_id}
    summary = report.summary()
    assert summary.startswith("7 crash cases over steps ['charge', 'receipt']: ")
    assert "crash after 'charge'" in summary
    clean = report.cases[0]
    assert (clean.step, clean.phase, clean.violations) == (None, None, ())


def test_an_idempotent_charge_passes() -> None:
    charges: dict[str, int] = {}

    @hydra.workflow("idempotent-charge")
    def wf(ctx: hydra.WorkflowContext, amount: int) -> str:
        key = f"charge-{ctx.execution_id}"  # the payment API dedupes on this key

        def charge() -> str:
            charges.setdefault(key, amount)
            return key

        return hydra.step(ctx, "charge", charge)

    def check(env: TestEnvironment, eid: str) -> None:
        assert list(charges.values()) == [500]

    def fresh_env() -> TestEnvironment:
        charges.clear()
        return TestEnvironment()

    report = explore_crashes(wf, 500, check, make_env=fresh_env)
    assert report.ok and len(report.cases) == 4


def test_phases_and_start_options_narrow_the_exploration() -> None:
    payments = Payments()
    report = explore_crashes(
        payments.workflow(),
        500,
        payments.check,
        phases=("before",),
        make_env=payments.fresh_env,
        start_options={"max_attempts": 2},
    )
    assert report.ok
    assert [(c.step, c.phase) for c in report.cases] == [
        (None, None),
        ("charge", "before"),
        ("receipt", "before"),
    ]


def test_a_crash_that_exhausts_the_attempts_is_reported() -> None:
    payments = Payments()
    report = explore_crashes(
        payments.workflow(),
        500,
        payments.check,
        phases=("before",),
        make_env=payments.fresh_env,
        start_options={"max_attempts": 1},
        raise_on_violation=False,
    )
    # With one attempt, any crash ends the execution failed (LeaseExpiredError).
    assert [(c.step, c.phase) for c in report.violations] == [
        ("charge", "before"),
        ("receipt", "before"),
    ]
    assert all("check failed" in c.violations[0] for c in report.violations)


def test_a_step_that_retried_is_not_a_violation() -> None:
    runs: Counter[str] = Counter()

    @hydra.workflow("retried-step")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        def api() -> str:
            runs["api"] += 1
            if runs["api"] == 1:
                raise ConnectionError("blip")
            return "ok"

        return hydra.step(ctx, "api", api)

    def fresh_env() -> TestEnvironment:
        runs.clear()
        return TestEnvironment()

    report = explore_crashes(wf, None, make_env=fresh_env, raise_on_violation=False)
    assert report.ok, report.summary()
