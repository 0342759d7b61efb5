"""The start context crosses processes: an execution started inside a span in this
process, over a database, is run by a worker in another process (a new engine, a new
interpreter), whose run span links to that span. And the module's import rules."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import hydra
from tests.conftest import BackendStoreFactory
from tests.otel.spans import Spans

WORKER_SCRIPT = Path(__file__).parent / "otel_worker.py"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_worker_in_another_process_links_its_run_to_the_caller_s_span(
    spans: Spans, sql_store_factory: BackendStoreFactory, tmp_path: Path
) -> None:
    url = sql_store_factory.url
    if url is None or sql_store_factory.backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'hydra.db'}"
    namespace = f"otel-{uuid.uuid4().hex[:12]}"
    store = hydra.SQLStore(url, auto_migrate=True)
    try:
        engine = hydra.Engine(store, namespace=namespace, observers=[spans.tracing])
        with spans.tracer.start_as_current_span("caller") as caller:
            eid = engine.start_workflow("otel-doubler", 21)
    finally:
        store.close()
    out = tmp_path / "spans.json"
    subprocess.run(
        [sys.executable, str(WORKER_SCRIPT), url, namespace, eid, str(out)],
        check=True,
        timeout=120,
        cwd=REPO,
    )
    found = json.loads(out.read_text())
    (run,) = [s for s in found if s["name"] == "run otel-doubler"]
    (step,) = [s for s in found if s["name"] == "step double"]
    start = caller.get_span_context()
    assert run["execution_id"] == eid
    assert run["links"] == [[start.trace_id, start.span_id]]
    assert run["trace_id"] != start.trace_id and run["parent"] is None
    assert (step["trace_id"], step["parent"]) == (run["trace_id"], run["span_id"])


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def test_import_hydra_does_not_import_opentelemetry() -> None:
    done = _python(
        "import sys, hydra, hydra.testing, hydra.worker\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'hydra.otel'))))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_import_hydra_otel_without_opentelemetry_names_the_extra() -> None:
    # sys.modules[name] = None makes ``import name`` raise ImportError, as if absent.
    done = _python(
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "try:\n"
        "    import hydra.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "    print(type(exc.__cause__).__name__)\n"
    )
    assert done.returncode == 0, done.stderr
    message, cause = done.stdout.strip().splitlines()
    assert "pip install 'hydra-workflows[otel]'" in message
    assert cause in ("ImportError", "ModuleNotFoundError")
    # A hydra without the extra still works.
    assert _python("import sys; sys.modules['opentelemetry'] = None; import hydra").returncode == 0
