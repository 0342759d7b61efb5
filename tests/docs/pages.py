"""Reading the README and the pages of docs/: their sections and code blocks."""

from __future__ import annotations

import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

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


#: ``print(...)  # what it prints`` on one line of a block
SHOWN_OUTPUT = re.compile(r"^\s*print\(.*\)  # (.+)$", re.M)


def run_blocks(name: str, monkeypatch: Any) -> types.ModuleType:
    """Run every Python block of the page ``name``, in order, in one fresh module: a real
    one (in ``sys.modules`` while the test runs), so dataclasses find their module."""
    module = types.ModuleType("docs_" + name.removesuffix(".md").replace("-", "_"))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in blocks(text(name)):
        exec(compile(block, f"docs/{name}", "exec"), module.__dict__)
    return module
