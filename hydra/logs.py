"""Structured logging through stdlib ``logging``.

Every record hydra emits about executions carries the same five attributes, set to None
where they do not apply, so a formatter or a JSON handler can rely on them:
``execution_id``, ``workflow_name``, ``step_name``, ``attempt``, ``worker_id``.

hydra's own lines go to the ``hydra`` logger (or the logger given to ``Engine``); what
workflow code logs through ``ctx.logger`` goes to its ``workflow`` child (``hydra.workflow``),
and what cron handlers log through theirs to its ``cron`` child (``hydra.cron``), so user
lines and hydra's can be given different levels and handlers. ``ContextFormatter`` formats
records with or without those attributes (those of other libraries have none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

FIELDS = ("execution_id", "workflow_name", "step_name", "attempt", "worker_id")
#: the child of the engine's logger that a workflow's ``ctx.logger`` writes to
WORKFLOW_LOGGER_SUFFIX = "workflow"
#: the child of the engine's logger that a cron handler's ``ctx.logger`` writes to
CRON_LOGGER_SUFFIX = "cron"
#: ``ContextFormatter``'s default format: time, level, logger, what the record is about
CONTEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(context)s: %(message)s"


class HydraLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that stamps hydra's fields on every record.

    ``dynamic`` supplies fields that change during a run (the current step, the attempt).
    While ``muted()`` is true the adapter drops every record (``isEnabledFor`` answers
    False, so a guarded expensive message is not even built): ``ctx.logger`` is muted
    while its run replays.
    """

    def __init__(
        self,
        logger: logging.Logger,
        fields: dict[str, Any] | None = None,
        dynamic: Callable[[], dict[str, Any]] | None = None,
        muted: Callable[[], bool] | None = None,
    ) -> None:
        base = dict.fromkeys(FIELDS)
        base.update(fields or {})
        super().__init__(logger, base)
        self._dynamic = dynamic
        self._muted = muted

    def isEnabledFor(self, level: int) -> bool:
        # LoggerAdapter.log (behind debug/info/.../exception) asks this before anything else.
        if self._muted is not None and self._muted():
            return False
        return super().isEnabledFor(level)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        if self._dynamic is not None:
            extra.update(self._dynamic())
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs

    def bind(self, **fields: Any) -> HydraLogger:
        """A copy with more fields set."""
        merged = dict(self.extra or {})
        merged.update(fields)
        return HydraLogger(self.logger, merged, self._dynamic, self._muted)


def record_context(record: logging.LogRecord) -> str:
    """What a record is about, for a log line: ``<workflow>/<execution id>``, with
    ``step <name>`` when a step was running, ``cron <job>`` for a cron job's records, or
    ``-`` when the record is about none of these (a worker's own lines, other libraries)."""
    parts: list[str] = []
    execution_id = getattr(record, "execution_id", None)
    workflow_name = getattr(record, "workflow_name", None)
    if execution_id is not None:
        parts.append(f"{workflow_name or '?'}/{execution_id}")
    elif workflow_name is not None:
        parts.append(str(workflow_name))
    step_name = getattr(record, "step_name", None)
    if step_name is not None:
        parts.append(f"step {step_name}")
    cron_job = getattr(record, "cron_job", None)
    if cron_job is not None:
        parts.append(f"cron {cron_job}")
    return " ".join(parts) if parts else "-"


class ContextFormatter(logging.Formatter):
    """A ``logging.Formatter`` that adds ``%(context)s`` (``record_context``) to every
    record, and None for any of hydra's ``FIELDS`` a record lacks, so a format naming
    ``%(execution_id)s`` works for every logger's records, hydra's or not.
    ``hydra worker`` logs with ``ContextFormatter(CONTEXT_FORMAT)``."""

    def __init__(self, fmt: str | None = CONTEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, None)
        record.context = record_context(record)
        return super().format(record)
