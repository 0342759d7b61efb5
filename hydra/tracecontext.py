"""The trace context stored with an execution: who started it, for whoever runs it.

``start_workflow`` (and ``hydra.start_child``) asks the engine's observers for
propagation headers (``Observer.start_context``: ``hydra.otel.Tracing`` gives the
caller's W3C ``traceparent``, ``tracestate`` and ``baggage``) and stores them as a small
JSON object in ``workflow_executions.trace_context``; every run of the execution, on any
worker, reads them back from its claim. hydra itself never looks inside.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping

#: the largest trace context stored (its JSON, ASCII): W3C's traceparent and tracestate
#: take at most ~600 bytes, baggage at most 8192; past this only the first two are kept
MAX_TRACE_CONTEXT_BYTES = 16_384
#: what is kept of a context too large to store whole, when it fits
ESSENTIAL_HEADERS = ("traceparent", "tracestate")

_log = logging.getLogger("hydra")
_warned = threading.Event()


def encode_trace_context(carrier: Mapping[str, str]) -> str | None:
    """``carrier`` as stored (compact JSON, keys sorted), or None when it is empty.

    One over ``MAX_TRACE_CONTEXT_BYTES`` (a huge baggage) keeps only its
    ``ESSENTIAL_HEADERS`` (logged once per process): the link to the start survives.
    """
    if not carrier:
        return None
    text = _dumps(carrier)
    if len(text) <= MAX_TRACE_CONTEXT_BYTES:
        return text
    kept = {key: carrier[key] for key in ESSENTIAL_HEADERS if key in carrier}
    text = _dumps(kept)
    if not _warned.is_set():
        _warned.set()
        _log.warning(
            "a trace context of %d headers was too large to store with an execution (over "
            "%d bytes): only %s kept (reported once)",
            len(carrier),
            MAX_TRACE_CONTEXT_BYTES,
            ", ".join(kept) or "nothing",
        )
    return text if kept and len(text) <= MAX_TRACE_CONTEXT_BYTES else None


def decode_trace_context(text: str | None) -> dict[str, str]:
    """The headers stored as ``text`` (``encode_trace_context``); empty for None or for
    anything that is not a JSON object of strings (never raises: a run never fails over
    its trace context)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _dumps(carrier: Mapping[str, str]) -> str:
    # ensure_ascii (the default): one byte a character on every backend's TEXT column.
    return json.dumps(dict(sorted(carrier.items())), separators=(",", ":"))


__all__ = [
    "ESSENTIAL_HEADERS",
    "MAX_TRACE_CONTEXT_BYTES",
    "decode_trace_context",
    "encode_trace_context",
]
