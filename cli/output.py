"""Where the CLI writes: Rich consoles for stdout and stderr.

Consoles are made per call so they follow ``sys.stdout``/``sys.stderr`` as they are at the
time of printing (test runners swap them) and honour ``NO_COLOR``/``FORCE_COLOR``.

Anything that came from the user or the database (URLs, revisions, error messages) must
reach Rich as a ``rich.text.Text`` (never parsed as markup) or through ``rich.markup.escape``:
``line()`` takes plain strings and styled ``(text, style)`` pairs and does the former.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

Part = str | tuple[str, str]


def stdout() -> Console:
    # soft_wrap: never hard-wrap long lines (URLs, messages) at the terminal width.
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def styled(*parts: Part) -> Text:
    """A line from plain strings and ``(text, style)`` pairs; no markup is interpreted."""
    return Text.assemble(*parts)


def line(*parts: Part) -> None:
    """Print one line on stdout."""
    stdout().print(styled(*parts))


def raw(text: str) -> None:
    """Write text to stdout untouched (SQL scripts meant for piping into a client)."""
    sys.stdout.write(text)
    sys.stdout.flush()
