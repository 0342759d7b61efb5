"""Reading the README and the pages of docs/: their sections and code blocks."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"


def page(name: str) -> Path:
    """``README.md`` or a page of docs/ (``"cli.md"``)."""
    return README if name == "README.md" else DOCS / name


def text(name: str) -> str:
    return page(name).read_text()


def section(name: str, title: str) -> str:
    """The ``## title`` section of a page, up to the next ``## `` heading."""
    whole = text(name)
    start = whole.index(f"\n## {title}\n")
    end = whole.find("\n## ", start + 1)
    return whole[start : end if end != -1 else len(whole)]


def blocks(source: str, lang: str = "python") -> list[str]:
    """The fenced ``lang`` blocks of ``source``; indented ones (in a list item) dedented."""
    found = re.findall(rf"^( *)```{lang}\n(.*?)^ *```", source, flags=re.S | re.M)
    return [textwrap.dedent(body) if indent else body for indent, body in found]
