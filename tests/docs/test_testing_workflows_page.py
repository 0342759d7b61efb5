"""docs/testing.md, "Testing your workflows": its examples pass as a user would run them.

The section's Python blocks are written into pytester's temporary directory as a user's
test file and run by an inner pytest, which gets hydra's fixtures only through the plugin's
``pytest11`` entry point. The inner run uses ``-p no:cacheprovider`` and an ini file of its
own with ``filterwarnings = error``. pytester is enabled by ``pytest_plugins`` below
(allowed in a test module; pytest 9 refuses it only in non-root conftests).
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from datetime import timedelta

import pytest

import hydra
from hydra.testing import TestEnvironment
from tests.docs import pages

pytest_plugins = ["pytester"]

INNER_INI = "[pytest]\nfilterwarnings =\n    error\n"


def section() -> str:
    return pages.section("testing.md", "Testing your workflows")


def blocks(lang: str) -> list[str]:
    return pages.blocks(section(), lang)


def example() -> str:
    """The complete test file (the first block)."""
    first = blocks("python")[0]
    assert first.startswith("# test_checkout.py\n")
    return first


def explore_example() -> str:
    (block,) = [b for b in blocks("python") if "explore_crashes(" in b]
    return block


def run_inner(pytester: pytest.Pytester, **files: str) -> pytest.RunResult:
    pytester.makeini(INNER_INI)
    pytester.makepyfile(**files)
    return pytester.runpytest("-p", "no:cacheprovider", "-v")


def test_the_readme_links_the_page() -> None:
    assert "(docs/testing.md)" in pages.text("README.md")


def test_the_example_test_file_passes(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, test_checkout=example())
    result.stdout.fnmatch_lines(
        [
            "*test_a_crash_mid_charge_runs_the_charge_again PASSED*",
            "*test_shipping_outages_are_retried_with_backoff PASSED*",
        ]
    )
    result.assert_outcomes(passed=2)


def test_the_explore_crashes_example_passes(pytester: pytest.Pytester) -> None:
    # The block continues test_checkout.py: it uses the Checkout workflow defined above it.
    result = run_inner(pytester, test_checkout=example() + "\n\n" + explore_example())
    result.stdout.fnmatch_lines(["*test_checkout_survives_a_crash_anywhere PASSED*"])
    result.assert_outcomes(passed=3)


def test_the_examples_fail_when_the_workflow_is_not_crash_safe(
    pytester: pytest.Pytester,
) -> None:
    """The examples' assertions have teeth: with a bug they fail, naming the history."""
    # A charge that depends on the workflow attempt: a crash mid-charge changes the result.
    source = example() + "\n\n" + explore_example()
    correct = "lambda: self.charge(order))"
    assert source.count(correct) == 1
    broken = source.replace(correct, 'lambda: self.charge(order) + "-again" * (ctx.attempt - 1))')
    result = run_inner(pytester, test_checkout=broken)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*CrashSafetyError*", "*history of the first failing case*"])


def test_the_history_excerpt_is_real(monkeypatch: pytest.MonkeyPatch) -> None:
    (excerpt,) = [b for b in blocks("text") if "worker-1" in b]
    lines = [line.strip() for line in excerpt.strip().splitlines()]
    module = types.ModuleType("readme_test_checkout")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(example(), "docs/testing.md", "exec"), module.__dict__)
    env = TestEnvironment()  # what the hydra_env fixture gives
    module.test_a_crash_mid_charge_runs_the_charge_again(env, env.crash)
    history = env.format_history().splitlines()
    first = history.index(lines[0])
    assert history[first : first + len(lines)] == lines


class Capture(hydra.Workflow[str]):
    name = "capture"

    def run(self, ctx: hydra.WorkflowContext, order: str) -> int:
        hydra.step(ctx, "charge", lambda: 1)
        return hydra.step(ctx, "capture", lambda: 2)


def test_the_unfired_crash_excerpt_is_real() -> None:
    from hydra.testing import UnfiredPlanError

    (excerpt,) = [b for b in blocks("text") if "UnfiredPlanError" in b]
    shown = excerpt.strip().splitlines()
    env = TestEnvironment()
    env.register(Capture())
    eid = env.start("capture", "o-1")
    env.crash(step="captur", phase="during")
    env.run_until_complete(eid)
    with pytest.raises(UnfiredPlanError) as caught:
        env.assert_plans_fired()
    real = f"UnfiredPlanError: {caught.value}".splitlines()
    assert real[0] == shown[0] and real[2] == shown[2]
    assert real[1].split(": ", 1)[1] == shown[1].split(": ", 1)[1]  # the id differs


def test_the_documented_signature_is_the_real_one() -> None:
    text = " ".join(section().split())
    documented = re.search(r"TestEnvironment\((store=None, workers=1, [^`]*)\)`", text)
    assert documented is not None
    params = inspect.signature(TestEnvironment).parameters
    namespace = {"timedelta": timedelta}
    for arg in documented.group(1).split(", "):
        name, default = arg.split("=", 1)
        assert params[name].default == eval(default, namespace), name


def test_the_section_covers_the_testing_api() -> None:
    text = section()
    for name in (
        "hydra_env",
        "crash_worker",
        'phase="during"',
        "hours=48",
        "RetryPolicy",
        "step_runs",
        "run_until_complete",
        "`before`",
        "`during`",
        "`after`",
        "env.pause(step, phase)",
        "env.resume()",
        "LeaseLostError",
        "format_history",
        "explore_crashes(workflow, payload, check)",
        "SQLStore",
        "hydra.Worker",
        "hydra.testing.strategies",
        "crash_schedules(steps, max_crashes)",
        "interleavings(max_workers)",
        "apply_schedule(env, schedule)",
    ):
        assert name in text, name


def test_the_strategies_named_exist() -> None:
    strategies = pytest.importorskip("hydra.testing.strategies")
    for name in ("crash_schedules", "interleavings", "apply_schedule"):
        assert callable(getattr(strategies, name)), name
