"""docs/deploys.md: its Python blocks run in order, as one module (each continues the
ones above it), print what their comments say, and its pytest example passes."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from hydra.testing import history_document
from tests.docs import pages

PAGE = "deploys.md"
SHOWN_OUTPUT = pages.SHOWN_OUTPUT


def run_blocks(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return pages.run_blocks(PAGE, monkeypatch)


def test_the_blocks_run_and_print_what_their_comments_say(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocks = pages.blocks(pages.text(PAGE))
    assert len(blocks) == 4
    module = run_blocks(monkeypatch)
    printed = capsys.readouterr().out.splitlines()
    assert printed == SHOWN_OUTPUT.findall("\n".join(blocks))
    # The pytest example, fed the history of the old execution as exported.
    store = module.env.store
    old = store.get_execution("test", module.old)
    assert old is not None
    module.EXPORTED = json.dumps(history_document(old, store.list_steps(module.old)))  # type: ignore[attr-defined]
    module.test_the_new_checkout_replays_production_histories(tmp_path)
    with pytest.raises(AssertionError, match="no longer matches its code"):
        module.checkout_patched = module.checkout_unpatched  # type: ignore[attr-defined]
        module.test_the_new_checkout_replays_production_histories(tmp_path)
