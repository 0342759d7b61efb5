"""``hydra_cli.visible``: stored text shown, never obeyed, by the terminal."""

from __future__ import annotations

import io

import pytest
from rich.text import Text

from hydra_cli import output
from hydra_cli.visible import escape_char, one_line, visible

HOSTILE = "a\x1b[2Jb\rc\x07d\x9be\u202ef\x7fg\x00h\u2028i\ufeffj\U000e0001k"
SHOWN = "a\\x1b[2Jb\\rc\\x07d\\x9be\\u202ef\\x7fg\\x00h\\u2028i\\ufeffj\\U000e0001k"


def test_control_format_and_separator_characters_become_escapes() -> None:
    assert visible(HOSTILE) == SHOWN


@pytest.mark.parametrize(
    "char",
    ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
)
def test_every_bidi_embedding_override_and_isolate_is_escaped(char: str) -> None:
    assert visible(f"x{char}y") == f"x\\u{ord(char):04x}y"


@pytest.mark.parametrize("code", [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)])
def test_every_c0_del_and_c1_character_is_escaped(code: int) -> None:
    shown = visible(chr(code))
    assert shown.startswith("\\") and shown.isprintable() and len(shown) in (2, 4)


def test_printable_text_is_left_alone() -> None:
    text = "café 中文 [bold]x[/] C:\\Users\\ada \u00a0 👩\u200d💻 پ\u200cی"
    assert visible(text) == text  # incl. non-breaking space, ZWJ emoji, ZWNJ shaping


def test_one_line_escapes_line_breaks_and_tabs_a_block_keeps_them() -> None:
    assert visible("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert visible("a\nb\tc\rd", multiline=True) == "a\nb\tc\\rd"


def test_one_line_collapses_spaces_and_cuts() -> None:
    assert one_line("  boom:\n   at x\r\n") == "boom:\\n at x"
    assert one_line("x" * 20, 10) == "x" * 9 + "…"


def test_escapes_are_pythons() -> None:
    for char in ("\x1b", "\r", "\x9b", "\u202e", "\U000e0001"):
        assert escape_char(char) == repr(char)[1:-1]


def test_consoles_show_control_characters_a_command_forgot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stdout", buffer)
    output.stdout().print(Text("raw \x1b[2J \x9b \u202e end"))
    output.line("part \x1b]0;title\x07", ("styled \x1b[31m", "red"))
    printed = buffer.getvalue()
    assert printed == "raw \\x1b[2J \\x9b \\u202e end\npart \\x1b]0;title\\x07styled \\x1b[31m\n"


def test_consoles_keep_their_own_styles_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stdout", buffer)
    output.stdout().print(Text("red \x1b[2J", "red"))
    printed = buffer.getvalue()
    assert "\x1b[31m" in printed  # Rich's style codes pass
    assert "\x1b[2J" not in printed and "\\x1b[2J" in printed
