"""The real thing, as a user runs it: ``hydra dev run`` then ``hydra trace`` in a shell, and
the README's demo command in a fresh shell (no virtualenv activated, no HYDRA_* settings)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import EXAMPLES, REPO, hydra_script, subprocess_env

ORDER_STEPS = ("process-payment", "reserve-inventory", "create-shipping", "refund-payment")


def trace_commands(stdout: str) -> list[str]:
    assert "trace them with:\n" in stdout, stdout
    return [line.strip() for line in stdout.split("trace them with:\n", 1)[1].splitlines()]


def run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


def assert_traces(commands: list[str], cwd: Path) -> None:
    assert len(commands) == 2
    stories = []
    for command in commands:
        traced = run(shlex.split(command), cwd)
        assert traced.returncode == 0, traced.stderr
        assert traced.stderr == ""
        stories.append(traced.stdout)
    for story in stories:
        assert story.startswith("order-processing  completed\n")
        assert "process-payment" in story and "█" in story
    assert "OutOfStock: only 0 x chair left" in stories[1]
    assert '→ "re_ch_pay_790"' in stories[1]
    assert "create-shipping" in stories[0]


@pytest.mark.slow
def test_dev_run_then_trace_on_the_same_database(tmp_path: Path) -> None:
    proc = run([str(hydra_script()), "dev", "run", str(EXAMPLES / "order.py")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "on sqlite:///.hydra/hydra.db, namespace default" in out
    for step in ORDER_STEPS:
        assert re.search(rf"step {step} (completed|failed) \(attempt 1", out), step
    assert "all 2 executions completed" in out
    commands = trace_commands(out)
    for command in commands:
        # The virtualenv is not on PATH here: the command names the script by its path.
        assert re.fullmatch(rf"{re.escape(str(hydra_script()))} trace [0-9a-f-]{{36}}", command)
    assert (tmp_path / ".hydra" / "hydra.db").exists()
    assert_traces(commands, tmp_path)


@pytest.mark.slow
def test_readme_demo_command_prints_trace_commands_that_work(tmp_path: Path) -> None:
    """A new user runs the first command of the README and then what it prints."""
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    demo = first_block.splitlines()[0].split("#")[0].strip()
    assert demo == "./scripts/demo.sh"
    # The demo's database goes into the current directory: running the script by its path
    # from a fresh directory leaves the checkout's own .hydra/ alone, and shows that the
    # printed commands work from wherever the user is.
    proc = run([str(REPO / demo)], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "hydra dev run " in proc.stdout and "all 2 executions completed" in proc.stdout
    commands = trace_commands(proc.stdout)
    assert_traces(commands, tmp_path)


@pytest.mark.slow
def test_sigterm_stops_a_dev_run_and_prints_what_to_trace(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(hydra_script()), "dev", "run", str(EXAMPLES / "approval.py")],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        db = tmp_path / ".hydra" / "hydra.db"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the unanswered one waits for its decision
            listed = run([str(hydra_script()), "executions", "list", "-s", "sleeping"], tmp_path)
            if db.exists() and listed.stdout.count("expense-approval") == 1:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "receive receive-1 waiting: waiting for 'decision' until" in stdout
    assert "interrupted: the executions stay in the database" in stdout
    assert stdout.count("  sleeping   expense-approval  ") == 1  # the unanswered one
    assert stdout.count("  completed  expense-approval  ") == 1  # approved at once
    assert len(trace_commands(stdout)) == 2


def test_migrate_status_is_a_deploy_check(tmp_path: Path) -> None:
    """``hydra migrate status`` exits 1 while the schema is not at head (here: none yet),
    0 once it is, and 2 when the database cannot be reached: a deploy script can gate
    on it (issue 10)."""
    script = str(hydra_script())
    url = f"sqlite:///{tmp_path}/app.db"
    before = run([script, "migrate", "status", "--db", url], tmp_path)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "no hydra schema: run `hydra migrate`" in before.stdout
    assert run([script, "migrate", "--db", url], tmp_path).returncode == 0
    after = run([script, "migrate", "status", "--db", url], tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "up to date" in after.stdout
    unreachable = run(
        [script, "migrate", "status", "--db", "postgresql+psycopg://u@127.0.0.1:1/db"], tmp_path
    )
    assert unreachable.returncode == 2, unreachable.stdout + unreachable.stderr
