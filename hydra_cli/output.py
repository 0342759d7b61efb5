"""Where the CLI writes: Rich consoles for stdout and stderr.

Consoles are made per call so they follow ``sys.stdout``/``sys.stderr`` as they are at the
time of printing (test runners swap them) and honour ``NO_COLOR``/``FORCE_COLOR``.

Anything that came from the user or the database (URLs, revisions, error messages) must
reach Rich as a ``rich.text.Text`` (never parsed as markup) or through ``rich.markup.escape``:
``line()`` takes plain strings and styled ``(text, style)`` pairs and does the former.
Stored text is made visible (``visible.visible``: ``\\x1b`` shown, not obeyed) before it
becomes a ``Text``, so that widths and alignment count what is shown; the consoles made
here check every printed segment once more, so a control character a command forgot to
escape is shown too rather than reaching the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from .visible import visible

Part = str | tuple[str, str]


class VisibleConsole(Console):
    """A Rich console that never sends a control character of printed text to the
    terminal: text segments are made visible (line breaks and tabs kept, as Rich lays
    lines out with them). Control segments (Rich's own cursor moves for the live view)
    and the styles' escape codes, added after rendering, pass untouched."""

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and not segment.text.isprintable():
                yield Segment(visible(segment.text, multiline=True), segment.style)
            else:
                yield segment


def stdout() -> Console:
    # soft_wrap: never hard-wrap long lines (URLs, messages) at the terminal width.
    return VisibleConsole(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return VisibleConsole(stderr=True, highlight=False, soft_wrap=True)


def styled(*parts: Part) -> Text:
    """A line from plain strings and ``(text, style)`` pairs, made visible; no markup is
    interpreted."""
    return Text.assemble(*(_visible_part(part) for part in parts))


def _visible_part(part: Part) -> Part:
    return visible(part) if isinstance(part, str) else (visible(part[0]), part[1])


def line(*parts: Part) -> None:
    """Print one line on stdout."""
    stdout().print(styled(*parts))


def raw(text: str) -> None:
    """Write text to stdout untouched (SQL scripts meant for piping into a client)."""
    sys.stdout.write(text)
    sys.stdout.flush()
