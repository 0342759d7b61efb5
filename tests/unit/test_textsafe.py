"""``hydra.textsafe``: error texts every backend can store."""

from __future__ import annotations

from hydra.runner import describe
from hydra.textsafe import MAX_ERROR_MESSAGE_CHARS, storable_error, storable_text


def test_nul_and_surrogates_become_visible_escapes() -> None:
    assert storable_text("a\x00b\udc80c", 100) == "a\\x00b\\udc80c"
    assert storable_text("caf\u00e9 \U0001f600 \x1b[0m", 100) == "caf\u00e9 \U0001f600 \x1b[0m"


def test_messages_are_cut_with_a_visible_suffix() -> None:
    exact = "x" * MAX_ERROR_MESSAGE_CHARS
    assert storable_error("E", exact) == ("E", exact)
    cut = storable_error("E", exact + "y")[1]
    assert len(cut) == MAX_ERROR_MESSAGE_CHARS
    assert cut.endswith(f"... [truncated: {MAX_ERROR_MESSAGE_CHARS + 1} characters in all]")
    assert storable_error("E" * 300, "m")[0] == "E" * 255


def test_storable_text_is_idempotent() -> None:
    once = storable_error("T" * 400, "a\x00\udcff" + "z" * 100_000)
    assert storable_error(*once) == once


def test_describe_applies_it() -> None:
    assert describe(ValueError("a\x00b")) == ("ValueError", "a\\x00b")
