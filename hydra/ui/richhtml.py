"""Rich ``Text`` (what ``hydra_cli.render`` builds for the terminal) as HTML.

The trace's header, its notes and the details under each step are built once, as
``rich.text.Text`` whose plain text has already been made visible (control characters
shown as ``\\x1b``: ``hydra_cli.visible``). Here each run of characters becomes an
HTML-escaped ``<span>`` whose classes name its styles (``s-red s-bold``); the page's
stylesheet gives them colours. No style string is ever put in the page as it is: only
the words a class name may hold.
"""

from __future__ import annotations

import re
from itertools import pairwise

from markupsafe import Markup, escape
from rich.text import Text

from hydra_cli.visible import visible

_WORD = re.compile(r"^[a-z_]+$")


def _classes(styles: list[str]) -> str:
    words: list[str] = []
    for style in styles:
        for word in style.split():
            # Rich allows "on blue", "#ff0000", "link https://...": only plain names here.
            if _WORD.match(word) and f"s-{word}" not in words:
                words.append(f"s-{word}")
    return " ".join(words)


def to_html(text: Text) -> Markup:
    """``text`` as escaped HTML, each styled run in a ``<span class="s-...">``."""
    plain = text.plain
    base = [str(text.style)] if text.style else []
    cuts = {0, len(plain)}
    for span in text.spans:
        cuts.update((span.start, span.end))
    points = sorted(c for c in cuts if 0 <= c <= len(plain))
    out: list[str] = []
    for start, end in pairwise(points):
        if start == end:
            continue
        styles = base + [str(s.style) for s in text.spans if s.start <= start and s.end >= end]
        chunk = str(escape(visible(plain[start:end], multiline=True)))
        classes = _classes(styles)
        out.append(f'<span class="{classes}">{chunk}</span>' if classes else chunk)
    return Markup("".join(out))
