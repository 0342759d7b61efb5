"""Stored text made safe to print: terminal control characters shown, never obeyed.

Names, error messages, outputs, inputs, worker ids and cron names come from the database,
where any client (an older hydra, another process, an exception message quoting another
API's reply) may have put anything. Printed as they are, ``ESC [2J`` clears the screen,
``\\r`` overwrites the start of the line, ``\\x9b`` is a one-byte escape sequence
introducer (CSI) on many terminals, and a right-to-left override (U+202E) reorders the
rest of the line. ``visible`` replaces each such character with its escape as Python
writes it (``\\x1b``, ``\\r``, ``\\x9b``, ``\\u202e``), so the text reads the same
everywhere and only the characters that were really there are shown.

Rich strips a few of these itself (BEL, BS, VT, FF, CR) but silently and not the rest
(ESC passes), so stored text goes through ``visible`` before it becomes a ``Text``;
``output``'s consoles also pass every printed segment through it, for text a command
forgot. ``--json`` output is left alone: JSON has its own escapes for C0, and its
readers are programs.

The escape is not reversible (a literal backslash is not doubled, so that Windows paths
and regular expressions in messages stay readable): it is for reading, not for parsing.
"""

from __future__ import annotations

import unicodedata

#: The escapes Python uses in ``repr``, shorter than ``\\xNN`` and familiar.
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: Unicode categories that are never drawn as themselves: controls (C0, DEL, C1), format
#: characters (bidi embeddings, overrides and isolates, marks, zero-width space, BOM,
#: tags), line and paragraph separators (U+2028/9 break lines on some terminals), lone
#: surrogates.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
#: Format characters kept as they are: zero-width joiner and non-joiner shape scripts
#: (Persian, Indic) and join emoji sequences, and move no text around.
_SHAPING = frozenset({"\u200c", "\u200d"})
#: What a multi-line block keeps: its line breaks, and tabs (Rich expands them).
_LAYOUT = frozenset({"\n", "\t"})


def escape_char(char: str) -> str:
    """``char`` as Python would escape it: ``\\r``, ``\\x1b``, ``\\u202e``, ``\\U000e0001``."""
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def is_hidden(char: str) -> bool:
    """True for a character a terminal would act on (or hide) rather than draw."""
    if char.isprintable() or char in _SHAPING:
        return False
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def visible(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control, format, separator and surrogate character replaced by
    its escape (see the module docstring).

    One line (the default) escapes line breaks and tabs too: a table cell or a one-line
    summary stays one line. ``multiline=True`` keeps ``\\n`` and ``\\t`` for blocks whose
    layout relies on them (indented JSON, a full error message); ``\\r`` is escaped in
    both, as it would overwrite the line.
    """
    if text.isprintable():  # the common case: nothing to do (str.isprintable is C)
        return text
    keep = _LAYOUT if multiline else frozenset()
    return "".join(
        escape_char(char) if char not in keep and is_hidden(char) else char for char in text
    )


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` made visible on one line: surrounding whitespace dropped, runs of spaces
    collapsed, cut to ``limit`` characters with a trailing ``…``."""
    flat = " ".join(part for part in visible(text.strip()).split(" ") if part)
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: max(limit - 1, 1)] + "…"
