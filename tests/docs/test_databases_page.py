"""docs/databases.md: its URLs are the forms hydra accepts; the "Limits" section's example
runs and its numbers are the real ones."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

import hydra
from hydra.clock import MAX_DURATION_MS
from hydra.engine import DEFAULT_MAX_PAYLOAD_BYTES
from hydra.retry import MAX_ATTEMPTS
from hydra.store.sql.mysql import safe_value_bytes
from hydra.store.sql.urls import normalize
from hydra.textsafe import MAX_ERROR_MESSAGE_CHARS, MAX_ERROR_TYPE_CHARS
from tests.docs import pages


def section() -> str:
    return pages.section("databases.md", "Limits")


def test_the_urls_shown_are_the_forms_hydra_accepts(tmp_path: Path) -> None:
    (block,) = pages.blocks(pages.text("databases.md").split("\n## ")[0])
    urls = re.findall(r'hydra\.SQLStore\("([^"]+)"\)', block)
    assert len(urls) == 3
    drivers = [normalize(url).drivername for url in urls]
    assert drivers == ["sqlite", "postgresql+psycopg", "mysql+pymysql"]
    assert "hydra.SQLStore(existing_sqlalchemy_engine)" in block
    # The same store from a SQLAlchemy engine, as the last line shows.
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'hydra.db'}")
    store = hydra.SQLStore(engine)
    try:
        assert store.list_executions("default") == []  # migrated, as on a URL
    finally:
        store.close()
        engine.dispose()


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
    assert hydra.RetryPolicy(initial_backoff=timedelta(seconds=1)).backoff_ms(100) == 300_000
