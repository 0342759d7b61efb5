"""Safe deploys: change a workflow under live executions with ``hydra.patched``, and
check the change with ``hydra.testing.replay_check`` before it ships.

    python examples/safe_deploy.py

Version 1 of ``checkout`` charges, waits a day (a cooling-off period), then ships.
Version 2 adds a fraud check before the wait. Deployed as it is, version 2 would not
match the orders already waiting: their history has the wait where the new code has the
fraud check, and a worker would park them (``hydra.NonDeterminismError``). The check
before the deploy says so. Behind ``hydra.patched``, version 2 matches both: the orders
already waiting go on without the fraud check, new orders get it.

Everything runs on ``hydra.testing``'s in-memory store and fake clock: the day passes
at once. The same check runs against a real database (``replay_check(workflows,
SQLStore(url))``) or exported histories (``hydra replay-check app.py --history ...``).
"""

from __future__ import annotations

from datetime import timedelta

import hydra
from hydra.testing import ReplayReport, TestEnvironment, replay_check

COOLING_OFF = timedelta(days=1)


class CheckoutV1(hydra.Workflow[str]):
    name = "checkout"

    def run(self, ctx: hydra.WorkflowContext, order_id: str) -> str:
        hydra.step(ctx, "charge", lambda: f"charged {order_id}")
        hydra.sleep(ctx, COOLING_OFF, name="cooling-off")
        return hydra.step(ctx, "ship", lambda: f"shipped {order_id}")


class CheckoutV2Unpatched(hydra.Workflow[str]):
    """Version 2 written naively: the fraud check simply inserted."""

    name = "checkout"

    def run(self, ctx: hydra.WorkflowContext, order_id: str) -> str:
        hydra.step(ctx, "charge", lambda: f"charged {order_id}")
        hydra.step(ctx, "fraud-check", lambda: f"checked {order_id}")
        hydra.sleep(ctx, COOLING_OFF, name="cooling-off")
        return hydra.step(ctx, "ship", lambda: f"shipped {order_id}")


class CheckoutV2(hydra.Workflow[str]):
    """Version 2 as it ships: the fraud check behind a patch."""

    name = "checkout"

    def run(self, ctx: hydra.WorkflowContext, order_id: str) -> str:
        hydra.step(ctx, "charge", lambda: f"charged {order_id}")
        if hydra.patched(ctx, "fraud-check"):
            hydra.step(ctx, "fraud-check", lambda: f"checked {order_id}")
        hydra.sleep(ctx, COOLING_OFF, name="cooling-off")
        return hydra.step(ctx, "ship", lambda: f"shipped {order_id}")


def check(workflow: hydra.Workflow[str], env: TestEnvironment) -> ReplayReport:
    """Replay every unfinished execution of ``env``'s store against ``workflow``: no step
    body runs and nothing is written."""
    return replay_check([workflow], env.store, namespace=env.engine.namespace)


def story() -> dict[str, object]:
    """Run the deploy story and return what each part found."""
    live = TestEnvironment()  # production, running version 1
    live.register(CheckoutV1())
    old = [live.start("checkout", f"o-{n}") for n in (1, 2)]
    live.run_until_idle()  # both charged, now in their cooling-off period

    naive = check(CheckoutV2Unpatched(), live)
    patched = check(CheckoutV2(), live)

    # The deploy: version 2, with the patch, on the same database and clock (another
    # seed: the test kit's ids come from the seed, and must not repeat the first ones).
    deployed = TestEnvironment(store=live.store, clock=live.clock, seed=1)
    deployed.register(CheckoutV2())
    new = deployed.start("checkout", "o-3")
    deployed.run_until_all_complete()
    steps = {eid: [s.name for s in deployed.execution(eid).steps] for eid in [*old, new]}
    return {"naive": naive, "patched": patched, "old": old, "new": new, "steps": steps}


def main() -> None:
    found = story()
    naive, patched = found["naive"], found["patched"]
    assert isinstance(naive, ReplayReport) and isinstance(patched, ReplayReport)
    print("version 2 as first written:")
    print(naive.format())
    print("version 2 behind hydra.patched:")
    print(patched.format())
    steps = found["steps"]
    assert isinstance(steps, dict)
    for eid, names in steps.items():
        print(f"{eid[:8]}: {', '.join(names)}")


if __name__ == "__main__":
    main()
