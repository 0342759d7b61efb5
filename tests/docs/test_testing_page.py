"""docs/testing.md, "Testing against real faults": its example runs, against this
session's PostgreSQL schema."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StoreURLs
from tests.docs import pages

PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_the_proxy_example_runs(store_urls: StoreURLs, capsys: pytest.CaptureFixture[str]) -> None:
    url = store_urls.url("postgres")
    # This session's schema, migrated before the example opens a store on it.
    import hydra

    hydra.SQLStore(url, auto_migrate=True).close()
    (block,) = pages.blocks(pages.section("testing.md", "Testing against real faults"))
    shown = re.search(r'^url = "(.*)"$', block, flags=re.M)
    assert shown is not None, "the example names its URL on a line of its own"
    code = block.replace(shown.group(0), f"url = {url!r}")
    began = time.monotonic()
    namespace: dict[str, Any] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)
    took = time.monotonic() - began
    assert capsys.readouterr().out.strip() == "[]"
    assert took >= 1.5, "the read did not wait out the 2 s refusal"
