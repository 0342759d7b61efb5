"""The pytest plugin (``hydra.testing.pytest_plugin``), tested from the outside with pytester.

Each test writes a user's test file into pytester's temporary directory and runs pytest on
it, as a user's project would: the plugin must arrive through the ``pytest11`` entry point
of the installed hydra-workflows, with nothing in a conftest. The inner runs get
``-p no:cacheprovider`` and an ini file of their own with ``filterwarnings = error`` (the
temporary directory is outside this project, so they do not see its pyproject.toml).

pytester itself is enabled by ``pytest_plugins`` below: pytest 9 refuses that variable in a
non-root conftest, but still honours it in a test module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hydra.testing.pytest_plugin

pytest_plugins = ["pytester"]

INNER_INI = """
[pytest]
filterwarnings =
    error
"""

WORKFLOW = """
from datetime import timedelta

import hydra


class Pipeline(hydra.Workflow[str]):
    name = "pipeline"

    def run(self, ctx: hydra.WorkflowContext, item: str) -> str:
        fetched = hydra.step(ctx, "fetch", lambda: item.upper())
        hydra.sleep(ctx, timedelta(hours=48))
        return hydra.step(ctx, "store", lambda: fetched + "!")
"""


@pytest.fixture(autouse=True)
def inner_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(INNER_INI)


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_plugin_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig("-p", "no:cacheprovider")
    plugin = config.pluginmanager.get_plugin("hydra")
    assert plugin is hydra.testing.pytest_plugin
    dists = {dist.metadata["name"] for _, dist in config.pluginmanager.list_plugin_distinfo()}
    assert "hydra-workflows" in dists
    # The inner run reads its own ini, not this project's pyproject.toml.
    assert config.getini("filterwarnings") == ["error"]


def test_trace_config_lists_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--trace-config")
    result.stdout.fnmatch_lines(["*registered third-party plugins:*", "*hydra-workflows-*"])
    result.assert_outcomes(passed=1)


def test_plugin_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_env(hydra_env):\n    pass\n")
    result = run_inner(pytester, "-p", "no:hydra")
    result.stdout.fnmatch_lines(["*fixture 'hydra_env' not found*"])
    result.assert_outcomes(errors=1)


def test_user_test_crashes_a_step_and_skips_a_long_sleep(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        WORKFLOW
        + textwrap.dedent(
            """
            import pytest


            def test_crash_during_a_step(hydra_env, crash_worker):
                hydra_env.register(Pipeline())
                eid = hydra_env.start("pipeline", "parcel")
                crash_worker(step="store", phase="during")
                started = hydra_env.clock.now()

                ex = hydra_env.run_until_complete(eid)

                assert ex.status == "completed", hydra_env.format_history(eid)
                assert ex.output == "PARCEL!"
                assert hydra_env.step_runs(eid, "fetch") == 1
                assert hydra_env.step_runs(eid, "store") == 2
                assert hydra_env.clock.now() - started >= timedelta(hours=48)
                assert [e.kind for e in hydra_env.history].count("crash") == 1


            @pytest.mark.parametrize(
                ("phase", "runs"), [("before", 1), ("during", 2), ("after", 2)]
            )
            def test_every_phase(hydra_env, crash_worker, phase, runs):
                hydra_env.register(Pipeline())
                eid = hydra_env.start("pipeline", "box")
                crash_worker(step="fetch", phase=phase)
                assert hydra_env.run_until_complete(eid).status == "completed"
                assert hydra_env.step_runs(eid, "fetch") == runs
                assert hydra_env.step_runs(eid, "store") == 1
            """
        )
    )
    result = run_inner(pytester, "-v")
    result.assert_outcomes(passed=4)
    # No real waiting: two days of virtual time take well under the inner run's budget.
    assert result.duration < 30


def test_fixtures_are_fresh_for_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        WORKFLOW
        + textwrap.dedent(
            """
            from hydra.testing.clock import DEFAULT_START

            seen = []


            def use_env(hydra_env, hydra_store, hydra_clock, crash_worker):
                assert hydra_env.engine.list_executions() == []
                assert hydra_store.list_executions("test") == []
                assert hydra_env.history == []
                assert hydra_clock.now() == DEFAULT_START
                seen.append((id(hydra_env), id(hydra_store), id(hydra_clock)))
                hydra_env.register(Pipeline())
                crash_worker(step="fetch")  # a plan left over would crash the next test
                eid = hydra_env.start("pipeline", "x")
                hydra_env.run_until_complete(eid)
                assert hydra_env.step_runs(eid, "fetch") == 2


            def test_first(hydra_env, hydra_store, hydra_clock, crash_worker):
                use_env(hydra_env, hydra_store, hydra_clock, crash_worker)


            def test_second(hydra_env, hydra_store, hydra_clock, crash_worker):
                use_env(hydra_env, hydra_store, hydra_clock, crash_worker)
                first, second = seen
                assert all(a != b for a, b in zip(first, second))
            """
        )
    )
    run_inner(pytester).assert_outcomes(passed=2)


def test_env_and_store_share_the_clock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import timedelta

        from hydra.testing import FakeClock, MemoryStore, TestEnvironment


        def test_one_clock(hydra_clock, hydra_store, hydra_env):
            assert type(hydra_clock) is FakeClock
            assert type(hydra_store) is MemoryStore
            assert type(hydra_env) is TestEnvironment
            assert hydra_store.clock is hydra_clock
            assert hydra_env.clock is hydra_clock
            assert hydra_env.engine.clock is hydra_clock
            assert hydra_env.store is hydra_store

            hydra_clock.advance(timedelta(hours=5))
            eid = hydra_env.start(
                "not-registered", None, timeout=timedelta(hours=1)
            )
            assert hydra_env.execution(eid).created_at == hydra_clock.now()
        """
    )
    run_inner(pytester).assert_outcomes(passed=1)


def test_inner_runs_turn_warnings_into_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import warnings


        def test_warns(hydra_env):
            warnings.warn("left over", DeprecationWarning)
        """
    )
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DeprecationWarning: left over*"])


IMPORT_PROBE = """
import json, logging, os, sys, threading

root = logging.getLogger()
before = (list(root.handlers), root.level, sorted(os.listdir(".")))

import hydra.testing.pytest_plugin

hydra_handlers = logging.getLogger("hydra").handlers
print(json.dumps({
    "drivers": sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("psycopg", "psycopg2", "psycopg_binary", "pymysql", "MySQLdb")
    ),
    "dev_deps": sorted(
        m for m in sys.modules if m.split(".")[0] in ("hypothesis", "freezegun")
    ),
    "root_unchanged": (list(root.handlers), root.level) == before[:2],
    "hydra_handlers": [type(h).__name__ for h in hydra_handlers],
    "files": sorted(os.listdir(".")),
    "files_before": before[2],
    "threads": threading.active_count(),
}))
"""


def test_importing_the_plugin_has_no_side_effects(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=tmp_path,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    found = json.loads(proc.stdout)
    # Database drivers are optional extras: loading pytest must not need (or import) them.
    assert found["drivers"] == []
    # Hypothesis and freezegun are dev dependencies a user's project may not have.
    assert found["dev_deps"] == []
    assert found["root_unchanged"]
    assert set(found["hydra_handlers"]) <= {"NullHandler"}
    assert found["files"] == found["files_before"] == []
    assert found["threads"] == 1


def test_a_crash_armed_at_a_misspelt_step_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        WORKFLOW
        + textwrap.dedent(
            """
            def test_misspelt(hydra_env, crash_worker):
                hydra_env.register(Pipeline())
                eid = hydra_env.start("pipeline", "parcel")
                crash_worker(step="stor", phase="during")
                assert hydra_env.run_until_complete(eid).status == "completed"


            def test_pause_never_reached(hydra_env):
                hydra_env.register(Pipeline())
                eid = hydra_env.start("pipeline", "parcel")
                hydra_env.pause(step="fetch", phase="during", execution_id="someone-else")
                assert hydra_env.run_until_complete(eid).status == "completed"


            def test_fired(hydra_env, crash_worker):
                hydra_env.register(Pipeline())
                eid = hydra_env.start("pipeline", "parcel")
                crash_worker(step="store", phase="during")
                assert hydra_env.run_until_complete(eid).status == "completed"
            """
        )
    )
    result = run_inner(pytester)
    # The two tests whose plan never fired pass their body, then error at teardown.
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*UnfiredPlanError: crash(step='stor', phase='during') never fired: "
            "no worker reached that point*",
            "*steps reached by *: 'fetch', 'store'*",
            "*did you mean step='store' instead of 'stor'?*",
            "*UnfiredPlanError: pause(step='fetch', phase='during', "
            "execution_id='someone-else') never fired*",
        ]
    )
    # The library's frames are hidden: the report does not dump the fixture's source.
    assert "def hydra_env(" not in result.stdout.str()


def test_a_failing_test_is_not_blamed_for_its_unfired_crash(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        WORKFLOW
        + textwrap.dedent(
            """
            def test_fails_first(hydra_env, crash_worker):
                crash_worker(step="never")
                assert 1 == 2
            """
        )
    )
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    assert "UnfiredPlanError" not in result.stdout.str()


def test_explore_crashes_failure_shows_the_report_not_the_library_source(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        WORKFLOW
        + textwrap.dedent(
            """
            from hydra.testing import explore_crashes

            sent = []


            class Mailer(hydra.Workflow[str]):
                name = "mailer"

                def run(self, ctx, to):
                    hydra.step(ctx, "send", lambda: sent.append(to))


            def test_exactly_one_mail():
                def check(env, eid):
                    assert len(sent) == 1, f"{len(sent)} mails sent"
                    sent.clear()

                explore_crashes(Mailer(), "ann", check)
            """
        )
    )
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "CrashSafetyError" in out
    assert "check failed: 2 mails sent" in out
    assert "def explore_crashes(" not in out
    assert "def one_case(" not in out
