"""The ``hydra`` command lines the CLI prints for the user to run next (``hydra trace
ID`` with the options that reach the same database and namespace)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys

from .db import DEFAULT_NAMESPACE, Database


def hydra_command() -> str:
    """How to call ``hydra`` again from this shell: ``hydra`` if that is this program on
    PATH, else the path this one was run by (e.g. ``.venv/bin/hydra`` from
    ``scripts/demo.sh``, where the virtualenv is not activated)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) not in ("hydra", "hydra.exe"):
        return "hydra"
    found = shutil.which("hydra")
    if found is not None and os.path.realpath(found) == os.path.realpath(argv0):
        return "hydra"
    path = os.path.abspath(argv0)
    rel = os.path.relpath(path)
    if rel.startswith(os.pardir):
        return shlex.quote(path)
    return shlex.quote(rel if os.sep in rel else os.curdir + os.sep + rel)


def trace_command(execution_id: str, target: Database, ns: str) -> str:
    """``hydra trace ID``, with ``--namespace``/``--db`` when they were not the defaults
    (the URL with its password hidden, as everywhere it is printed)."""
    return command(["trace", execution_id], target, ns)


def children_command(parent_id: str, count: int, target: Database, ns: str) -> str:
    """``hydra executions list --parent ID --limit COUNT`` (all ``count`` children)."""
    return command(["executions", "list", "--parent", parent_id, "--limit", str(count)], target, ns)


def command(args: list[str], target: Database, ns: str) -> str:
    """``hydra ARGS...`` on that database and namespace, quoted for a POSIX shell."""
    parts = [hydra_command(), *(shlex.quote(a) for a in args)]
    if ns != DEFAULT_NAMESPACE:
        parts += ["--namespace", shlex.quote(ns)]
    if target.source != "default":
        parts += ["--db", shlex.quote(target.display)]
    return " ".join(parts)
