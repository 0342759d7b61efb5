"""The README's "Limits" section: its example runs and its numbers are the real ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hydra
from hydra.clock import MAX_DURATION_MS
from hydra.engine import DEFAULT_MAX_PAYLOAD_BYTES
from hydra.retry import MAX_ATTEMPTS
from hydra.store.sql.mysql import safe_value_bytes
from hydra.textsafe import MAX_ERROR_MESSAGE_CHARS, MAX_ERROR_TYPE_CHARS

README = Path(__file__).resolve().parents[2] / "README.md"
TITLE = "## Limits\n"


def section() -> str:
    text = README.read_text()
    start = text.index(TITLE)
    return text[start : text.index("\n## ", start + 1)]


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", section(), flags=re.S)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("the payload of 'import-file' is 2000002 bytes encoded")
    assert "1048576 bytes" in printed[0]
    assert printed[1].startswith("idempotency_key must not contain control characters")


def test_the_numbers_are_the_real_ones() -> None:
    text = section()
    assert DEFAULT_MAX_PAYLOAD_BYTES == 8 * 1024 * 1024 and "8 MiB by default" in text
    assert safe_value_bytes(16 * 1024 * 1024) == int(7.5 * 1024 * 1024) and "7.5 MiB" in text
    assert MAX_ATTEMPTS == 2**31 - 1 and "2**31 - 1" in text
    assert MAX_DURATION_MS == 36525 * 86_400_000 and "100 years" in text
    assert MAX_ERROR_TYPE_CHARS == 255 and MAX_ERROR_MESSAGE_CHARS == 64 * 1024
    assert "64 Ki characters" in text
    assert hydra.RetryPolicy(initial_backoff=1).backoff_ms(100) == 300_000
