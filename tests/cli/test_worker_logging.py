"""``hydra worker``'s log lines name the workflow and execution they are about (issue 10):
``hydra.logs.ContextFormatter``, checked directly and through the real console script."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
from pathlib import Path

import pytest

from hydra.logs import CONTEXT_FORMAT, ContextFormatter, HydraLogger

from .helpers import engine_on, hydra_script, sqlite_url, subprocess_env, write

EID = "3f2a6b1c-0000-4000-8000-000000000001"


def formatted(record: logging.LogRecord, fmt: str = CONTEXT_FORMAT) -> str:
    return ContextFormatter(fmt).format(record)


def hydra_record(**fields: object) -> logging.LogRecord:
    """A record as ``HydraLogger`` makes it (the five fields, None where unset)."""
    captured: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    logger = logging.getLogger("hydra.test-format")
    logger.propagate = False
    handler = Keep()
    logger.addHandler(handler)
    try:
        HydraLogger(logger, dict(fields)).warning("hello %s", "there")
    finally:
        logger.removeHandler(handler)
    (record,) = captured
    return record


def test_a_record_about_an_execution_names_its_workflow_and_id() -> None:
    line = formatted(hydra_record(execution_id=EID, workflow_name="greet", worker_id="w-1"))
    assert line.endswith(f" WARNING hydra.test-format greet/{EID}: hello there")


def test_the_running_step_and_a_cron_job_are_named_too() -> None:
    record = hydra_record(execution_id=EID, workflow_name="greet", step_name="say")
    assert f" greet/{EID} step say: hello there" in formatted(record)
    cron = hydra_record(worker_id="w-1", cron_job="nightly")
    assert formatted(cron).endswith(" hydra.test-format cron nightly: hello there")


def test_a_record_about_no_execution_shows_a_dash() -> None:
    assert formatted(hydra_record(worker_id="w-1")).endswith(" hydra.test-format -: hello there")
    other = logging.LogRecord("urllib3", logging.INFO, __file__, 1, "retrying", None, None)
    assert formatted(other).endswith(" INFO urllib3 -: retrying")


def test_a_format_naming_hydra_s_fields_works_for_other_libraries_records() -> None:
    """The stdlib formatter raises KeyError for ``%(execution_id)s`` on a record that has
    no such attribute; ``ContextFormatter`` gives every record hydra's fields."""
    other = logging.LogRecord("urllib3", logging.INFO, __file__, 1, "retrying", None, None)
    fmt = "%(levelname)s [%(execution_id)s %(worker_id)s] %(message)s"
    with pytest.raises(ValueError):
        logging.Formatter(fmt).format(other)
    assert formatted(other, fmt) == "INFO [None None] retrying"


APP = """
import os

from datetime import timedelta

import hydra


@hydra.workflow("logged")
def logged(ctx, name: str) -> str:
    ctx.logger.info("about to greet %s", name)
    hydra.sleep(ctx, timedelta(milliseconds=50))
    return hydra.step(ctx, "say", lambda: ctx.logger.info("saying it") or f"hello {name}")


def make_worker() -> hydra.Worker:
    store = hydra.SQLStore(os.environ["APP_DB"])
    worker = hydra.Worker(hydra.Engine(store), poll_interval=0.02, concurrency=1)
    worker.register(logged)
    return worker
"""


@pytest.mark.slow
def test_the_worker_process_logs_each_execution_s_lines_with_its_id(tmp_path: Path) -> None:
    write(tmp_path / "logapp.py", APP)
    url = sqlite_url(tmp_path / "app.db")
    with engine_on(url) as engine:
        proc = subprocess.Popen(
            [str(hydra_script()), "worker", "logapp:make_worker", "--log-level", "info"],
            cwd=tmp_path,
            env=subprocess_env(APP_DB=url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            eid = engine.start_workflow("logged", "ada")
            assert engine.wait(eid, timeout=30).output == "hello ada"
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    lines = stderr.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    about = re.escape(f"logged/{eid}")
    greet = [ln for ln in lines if ln.endswith("about to greet ada")]
    # Logged once although the sleep made the execution run twice (replay-aware).
    assert len(greet) == 1, stderr
    assert re.fullmatch(rf"{stamp} INFO hydra\.workflow {about}: about to greet ada", greet[0])
    (saying,) = [ln for ln in lines if ln.endswith("saying it")]
    assert re.fullmatch(rf"{stamp} INFO hydra\.workflow {about} step say: saying it", saying)
    (completed,) = [ln for ln in lines if ln.endswith(f"execution {eid} completed")]
    done = rf"{stamp} INFO hydra {about}: execution {re.escape(eid)} completed"
    assert re.fullmatch(done, completed)
    (started,) = [ln for ln in lines if " started: logged" in ln]
    begun = rf"{stamp} INFO hydra -: worker \S+ started: logged, concurrency 1"
    assert re.fullmatch(begun, started)
