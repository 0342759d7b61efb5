"""Worker.run() and SIGTERM; clear one-line errors for unusable databases."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hydra

CHILD = textwrap.dedent(
    """
    import logging, sys, threading
    import hydra

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    entered, release = sys.argv[2], sys.argv[3]
    store = hydra.SQLStore(sys.argv[1])
    engine = hydra.Engine(store, namespace="signals")

    def slow() -> str:
        open(entered, "w").close()
        import os, time
        while not os.path.exists(release):
            time.sleep(0.01)
        return "finished"

    @hydra.workflow("slow")
    def wf(ctx, req):
        return hydra.step(ctx, "slow", slow)

    worker = hydra.Worker(engine, worker_id="sig-worker", poll_interval=0.02)
    worker.register(wf)
    engine.start_workflow("slow", None)
    worker.run()
    print("run() returned", engine.list_executions()[0].status.value, flush=True)
    """
)


@pytest.mark.slow
def test_sigterm_shuts_down_gracefully_after_the_run_in_flight(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    entered, release = tmp_path / "entered", tmp_path / "release"
    url = f"sqlite:///{tmp_path}/signals.db"
    child = subprocess.Popen(
        [sys.executable, str(script), url, str(entered), str(release)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not entered.exists():
            assert child.poll() is None, child.communicate()[0]
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.01)
        child.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert child.poll() is None, "SIGTERM must wait for the run in flight"
        release.touch()
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, out
    assert "received SIGTERM: shutting down" in out
    assert "run() returned completed" in out


def test_unreachable_database_is_one_clear_line_without_the_password() -> None:
    with pytest.raises(hydra.DatabaseUnavailableError) as info:
        hydra.SQLStore("postgresql+psycopg://app:s3cret@127.0.0.1:1/orders")
    message = str(info.value)
    assert "\n" not in message
    assert "s3cret" not in message
    assert message.startswith("cannot connect to database postgresql+psycopg://app:***@127.0.0.1:1")


def test_malformed_and_unsupported_urls() -> None:
    with pytest.raises(ValueError, match="not a database URL") as info:
        hydra.SQLStore("postgresql+psycopg://app:s3cret@host:notaport/db")
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match="unsupported database 'oracle'"):
        hydra.SQLStore("oracle://scott:tiger@db/orcl")
    with pytest.raises(ValueError, match="in-memory SQLite"):
        hydra.SQLStore("sqlite://")


def test_uninitialised_database_says_to_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    with pytest.raises(hydra.SchemaNotReadyError, match=r"has no hydra schema.*hydra migrate"):
        hydra.SQLStore(url, auto_migrate=False)
    store = hydra.SQLStore(url)  # SQLite migrates itself by default
    hydra.SQLStore(url, auto_migrate=False).close()
    store.close()
