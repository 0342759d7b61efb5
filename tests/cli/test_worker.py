"""``hydra worker MODULE:ATTR``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from .helpers import (
    assert_one_error_line,
    engine_on,
    hydra_cli,
    hydra_script,
    sqlite_url,
    subprocess_env,
    write,
)

APP = """
import os
import threading
import time

import hydra

STARTED = threading.Event()


@hydra.workflow("greet")
def greet(ctx, name: str) -> str:
    return hydra.step(ctx, "say", lambda: f"hello {name}")


@hydra.workflow("slow")
def slow(ctx, seconds: float) -> str:
    def work() -> str:
        open(os.environ["APP_MARK"], "w").close()  # tells the test the step is running
        time.sleep(seconds)
        return "finished"
    return hydra.step(ctx, "work", work)


def make_worker() -> hydra.Worker:
    store = hydra.SQLStore(os.environ["APP_DB"])
    worker = hydra.Worker(hydra.Engine(store), poll_interval=0.02, concurrency=1)
    worker.register(greet)
    worker.register(slow)
    return worker


NOT_A_WORKER = 42
EMPTY = hydra.Worker(hydra.Engine(hydra.SQLStore(os.environ["APP_DB"])))


def returns_junk():
    return "junk"


def explodes():
    raise RuntimeError("no config")
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module defining workers, importable from the current directory (tmp_path)."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{name}.py", APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("APP_DB", sqlite_url(tmp_path / "app.db"))
    return name


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("nope", "module '{m}' has no attribute 'nope'"),
        ("NOT_A_WORKER", "{m}:NOT_A_WORKER is int, not a hydra.Worker"),
        ("greet", "{m}:greet is a workflow, not a hydra.Worker"),
        ("returns_junk", "{m}:returns_junk() returned str, not a hydra.Worker"),
        ("explodes", "{m}:explodes() raised RuntimeError: no config"),
        ("EMPTY", "{m}:EMPTY has no workflows registered"),
    ],
)
def test_bad_targets(app_module: str, attr: str, message: str) -> None:
    result = hydra_cli("worker", f"{app_module}:{attr}")
    assert_one_error_line(result, contains=message.format(m=app_module))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:worker", "cannot import 'no_such_module_xyz': no such module"),
        ("missing_colon", "expected MODULE:ATTR"),
        (":worker", "expected MODULE:ATTR"),
    ],
)
def test_bad_module(app_module: str, target: str, message: str) -> None:
    assert_one_error_line(hydra_cli("worker", target), contains=message)


def test_module_that_fails_to_import(tmp_path: Path, app_module: str) -> None:
    write(tmp_path / "broken_app.py", "import does_not_exist_either\n")
    result = hydra_cli("worker", "broken_app:worker")
    assert_one_error_line(
        result, contains="cannot import 'broken_app': ModuleNotFoundError: No module named"
    )


def test_bad_options(app_module: str) -> None:
    assert hydra_cli("worker", f"{app_module}:make_worker", "--concurrency", "0").exit_code == 2
    assert (
        hydra_cli("worker", f"{app_module}:make_worker", "--metrics-port", "70000").exit_code == 2
    )
    result = hydra_cli("worker", f"{app_module}:make_worker", "--log-level", "loud")
    assert_one_error_line(result, contains="--log-level 'loud'")


@pytest.mark.slow
def test_worker_process_runs_workflows_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    write(tmp_path / "myapp.py", APP)
    url = sqlite_url(tmp_path / "app.db")
    mark = tmp_path / "step-running"
    env = subprocess_env(APP_DB=url, APP_MARK=str(mark))
    with engine_on(url) as engine:
        proc = subprocess.Popen(
            [str(hydra_script()), "worker", "myapp:make_worker", "--concurrency", "2"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            greeted = engine.wait(engine.start_workflow("greet", "ada"), timeout=30)
            assert greeted.output == "hello ada"
            # SIGTERM while a step runs: the run finishes before the process exits.
            eid = engine.start_workflow("slow", 1.0)
            deadline = time.monotonic() + 20
            while not mark.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert mark.exists(), "the slow step never started"
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, stderr
        assert engine.get_execution(eid).status == "completed"
    assert stdout.startswith("worker ")
    assert "greet, slow in namespace default on sqlite:///" in stdout
    assert "concurrency 2" in stdout  # the option overrode the worker's own 1
    assert "received SIGTERM: shutting down" in stderr
    assert "stopped" in stderr


def test_a_metrics_port_in_use_is_named() -> None:
    """``[Errno 98] Address already in use`` alone does not say which address (issue 10):
    the error names the port, in one line, exit code 2."""
    import socket

    import hydra
    from hydra.testing import MemoryStore

    taken = socket.socket()
    taken.bind(("", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        worker = hydra.Worker(hydra.Engine(MemoryStore()), metrics_port=port)
        with pytest.raises(OSError, match=rf"cannot serve metrics on port {port}: "):
            worker.start()
        assert worker.in_flight == 0
        worker.shutdown()  # never started: nothing to do
    finally:
        taken.close()
