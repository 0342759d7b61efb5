"""Exported histories: an execution's row and checkpoints as a JSON document, and back.

``hydra executions export ID > history.json`` writes one; committed next to a project's
tests, it lets CI check new code against real histories with no database
(``hydra replay-check app.py --history tests/histories/*.json``, or
``replay_check(workflows, load_histories(paths), namespace=...)`` in pytest). Bytes
(inputs, outputs, results) are base64; the document names its format and version, so a
later hydra can read an older file or refuse a newer one clearly.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.status import Status, StepStatus
from hydra.store.base import ExecutionRow, StepRow
from hydra.testing.memory import MemoryStore

FORMAT = "hydra-execution-history"
VERSION = 1


class HistoryFormatError(ValueError):
    """A file that is not an exported history this hydra can read."""


def history_document(execution: ExecutionRow, steps: Iterable[StepRow]) -> dict[str, Any]:
    """The exported form of one execution: JSON data (bytes as base64 strings)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "execution": _plain(execution),
        "steps": [_plain(step) for step in steps],
    }


def read_history(document: Any, source: str = "the history") -> tuple[ExecutionRow, list[StepRow]]:
    """An execution and its checkpoints from ``history_document``'s form (parsed JSON)."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise HistoryFormatError(f"{source} is not an exported hydra execution history")
    version = document.get("version")
    if version != VERSION:
        raise HistoryFormatError(
            f"{source} is an execution history of format version {version!r}; this hydra "
            f"reads version {VERSION} (export it again with this hydra)"
        )
    try:
        execution = _build(ExecutionRow, document["execution"])
        execution.status = Status(execution.status)
        steps = [_build(StepRow, s) for s in document["steps"]]
        for step in steps:
            step.status = StepStatus(step.status)
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryFormatError(f"{source} is a damaged execution history: {exc}") from exc
    return execution, steps


def load_histories(paths: Iterable[str | Path], store: MemoryStore | None = None) -> MemoryStore:
    """A ``MemoryStore`` holding the exported histories in ``paths`` (each execution in
    its own namespace, as exported), to check with ``replay_check``."""
    into = store if store is not None else MemoryStore()
    for path in paths:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise HistoryFormatError(f"{path} is not JSON: {exc}") from exc
        into.restore(*read_history(document, str(path)))
    return into


def _plain(record: ExecutionRow | StepRow) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, bytes):
            value = {"base64": base64.b64encode(value).decode("ascii")}
        elif isinstance(value, Status | StepStatus):
            value = value.value
        found[f.name] = value
    return found


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in names:
            continue  # a field a later hydra added: not needed to replay
        if isinstance(value, dict) and set(value) == {"base64"}:
            value = base64.b64decode(value["base64"], validate=True)
        values[key] = value
    return cls(**values)


__all__ = [
    "FORMAT",
    "VERSION",
    "HistoryFormatError",
    "history_document",
    "load_histories",
    "read_history",
]
