"""The README's "Testing your workflows" section: its examples pass as a user would run them.

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
import textwrap
import types
from datetime import timedelta
from pathlib import Path

import pytest

from hydra.testing import TestEnvironment

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"
TITLE = "## Testing your workflows"
INNER_INI = "[pytest]\nfilterwarnings =\n    error\n"


def section() -> str:
    text = README.read_text()
    start = text.index(TITLE)
    end = text.index("\n## ", start + len(TITLE))
    return text[start:end]


def blocks(lang: str) -> list[str]:
    found = re.findall(rf"^( *)```{lang}\n(.*?)^ *```", section(), flags=re.S | re.M)
    return [textwrap.dedent(body) if indent else body for indent, body in found]


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


def test_section_comes_right_before_databases() -> None:
    text = README.read_text()
    assert text.count(TITLE) == 1
    assert text.index(TITLE) < text.index("## Databases")
    assert "\n## " not in text[text.index(TITLE) + len(TITLE) : text.index("## Databases") - 1]


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
    (excerpt,) = blocks("text")
    lines = [line.strip() for line in excerpt.strip().splitlines()]
    module = types.ModuleType("readme_test_checkout")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(example(), "README.md", "exec"), module.__dict__)
    env = TestEnvironment()  # what the hydra_env fixture gives
    module.test_a_crash_mid_charge_runs_the_charge_again(env, env.crash)
    history = env.format_history().splitlines()
    first = history.index(lines[0])
    assert history[first : first + len(lines)] == lines


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
