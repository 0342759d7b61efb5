"""A worker process for tests/otel/test_processes.py: runs one execution of ``doubler``
with ``hydra.otel.Tracing`` exporting into memory, then writes the spans as JSON.

    python otel_worker.py DB_URL NAMESPACE EXECUTION_ID OUT_FILE
"""

from __future__ import annotations

import json
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import hydra
from hydra.otel import Tracing


@hydra.workflow("otel-doubler")
def doubler(ctx: hydra.WorkflowContext, n: int) -> int:
    return hydra.step(ctx, "double", lambda: n * 2)


def main(url: str, namespace: str, execution_id: str, out: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = hydra.SQLStore(url)
    engine = hydra.Engine(store, namespace=namespace, observers=[Tracing(provider)])
    worker = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=1, claim_timeout=10)
    worker.register(doubler)
    with worker:
        engine.wait(execution_id, timeout=60)
    store.close()
    spans = [
        {
            "name": s.name,
            "trace_id": s.context.trace_id,
            "span_id": s.context.span_id,
            "parent": s.parent.span_id if s.parent is not None else None,
            "links": [[link.context.trace_id, link.context.span_id] for link in s.links],
            "execution_id": (s.attributes or {}).get("hydra.execution.id"),
        }
        for s in exporter.get_finished_spans()
        if s.context is not None
    ]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(spans, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
