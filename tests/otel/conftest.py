"""``Tracing`` observers exporting into memory: the ``spans`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.otel.spans import Spans


@pytest.fixture
def spans() -> Iterator[Spans]:
    """A tracer provider exporting every span into memory at once, and its reader."""
    found = Spans()
    yield found
    found.provider.shutdown()
