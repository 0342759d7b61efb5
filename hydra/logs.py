"""Structured logging through stdlib ``logging``.

Every record hydra emits about executions carries the same five attributes, set to None
where they do not apply, so a formatter or a JSON handler can rely on them:
``execution_id``, ``workflow_name``, ``step_name``, ``attempt``, ``worker_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

FIELDS = ("execution_id", "workflow_name", "step_name", "attempt", "worker_id")


class HydraLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that stamps hydra's fields on every record.

    ``dynamic`` supplies fields that change during a run (the current step, the attempt).
    """

    def __init__(
        self,
        logger: logging.Logger,
        fields: dict[str, Any] | None = None,
        dynamic: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        base = dict.fromkeys(FIELDS)
        base.update(fields or {})
        super().__init__(logger, base)
        self._dynamic = dynamic

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
        return HydraLogger(self.logger, merged, self._dynamic)
