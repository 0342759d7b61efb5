"""Reading the spans a ``hydra.otel.Tracing`` exported: runs, steps, their links."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, StatusCode, Tracer

from hydra.otel import Tracing


class Spans:
    """A ``TracerProvider`` of its own (the global one is left alone), exporting each
    span into memory as it ends, and a ``Tracing`` observer on it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracing = Tracing(self.provider)

    @property
    def tracer(self) -> Tracer:
        """A tracer for the test's own spans (the caller of ``start_workflow``)."""
        return self.provider.get_tracer("tests.otel")

    def all(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def runs(self, execution_id: str | None = None) -> list[ReadableSpan]:
        """The run spans (of one execution), in the order they ended."""
        return [
            s
            for s in self.all()
            if s.name.startswith("run ")
            and (execution_id is None or attr(s, "hydra.execution.id") == execution_id)
        ]

    def steps(self, execution_id: str | None = None, name: str | None = None) -> list[ReadableSpan]:
        """The step spans (of one execution, of one step), in the order they ended."""
        return [
            s
            for s in self.all()
            if s.name.startswith("step ")
            and (execution_id is None or attr(s, "hydra.execution.id") == execution_id)
            and (name is None or attr(s, "hydra.step.name") == name)
        ]

    def named(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.all() if s.name == name]
        return found


def attr(span: ReadableSpan, key: str) -> object:
    assert span.attributes is not None
    return span.attributes.get(key)


def ctx(span: ReadableSpan) -> SpanContext:
    found: SpanContext | None = span.context
    assert found is not None
    return found


def linked_to(span: ReadableSpan) -> list[SpanContext]:
    """The span contexts ``span`` links to."""
    return [link.context for link in span.links]


def is_child(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return (
        span.parent is not None
        and span.parent.span_id == ctx(parent).span_id
        and ctx(span).trace_id == ctx(parent).trace_id
    )


def failed(span: ReadableSpan) -> bool:
    return span.status.status_code == StatusCode.ERROR


def exceptions(span: ReadableSpan) -> list[str]:
    """The exception types recorded on ``span`` (its ``exception`` events), without
    their modules (the SDK records ``hydra.errors.StepFailedError``)."""
    return [
        str((e.attributes or {}).get("exception.type")).rsplit(".", 1)[-1]
        for e in span.events
        if e.name == "exception"
    ]


def event_names(span: ReadableSpan) -> Sequence[str]:
    return [e.name for e in span.events]
