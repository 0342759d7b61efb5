"""What ``hydra dev run`` shows of the log: the workflows' own lines and hydra's warnings.

Records are collected by a handler on the engine's logger (``hydra``) from any thread and
printed by the watch loop, on its own thread, between two frames of the live view (Rich
prints them above it) or between progress lines, so log lines never tear the display.

What is shown, with ``--log-level LEVEL``: the lines workflow code logs through
``ctx.logger`` (the ``hydra.workflow`` logger, replay-aware: a line appears once, not once
per replay) and cron handlers through theirs (``hydra.cron``), from LEVEL up; hydra's own
lines from WARNING up (or LEVEL, if higher): what they report at INFO (runs, steps,
sleeps) is what the live view already shows.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from rich.text import Text

from hydra.logs import CRON_LOGGER_SUFFIX, WORKFLOW_LOGGER_SUFFIX

from . import render
from .errors import CliError
from .visible import visible

ENGINE_LOGGER = "hydra"
#: the loggers user code writes to: ``ctx.logger`` of workflows and of cron handlers
USER_LOGGERS = frozenset(
    f"{ENGINE_LOGGER}.{suffix}" for suffix in (WORKFLOW_LOGGER_SUFFIX, CRON_LOGGER_SUFFIX)
)
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LEVEL_STYLES = {
    logging.DEBUG: "dim",
    logging.WARNING: "yellow",
    logging.ERROR: "bold red",
    logging.CRITICAL: "bold red",
}
#: a log line's message is cut to this many characters (on one line)
MESSAGE_PREVIEW = 500


def parse_level(value: str) -> int:
    """``--log-level``'s value as a ``logging`` level, or a ``CliError``."""
    level = LEVELS.get(value.strip().lower())
    if level is None:
        raise CliError(f"--log-level {value!r}: use debug, info, warning or error")
    return level


class DevLogs(logging.Handler):
    """Keeps the records ``hydra dev run`` shows until the watch loop prints them."""

    def __init__(self, level: int) -> None:
        super().__init__(logging.DEBUG)
        #: the lowest level shown of the workflows' (and cron handlers') own lines
        self.user_level = level
        #: the lowest level shown of hydra's own lines
        self.hydra_level = max(level, logging.WARNING)
        # deque.append and popleft are atomic: worker threads append, the watch loop pops.
        self._pending: deque[logging.LogRecord] = deque()

    def shows(self, record: logging.LogRecord) -> bool:
        threshold = self.user_level if record.name in USER_LOGGERS else self.hydra_level
        return record.levelno >= threshold

    def emit(self, record: logging.LogRecord) -> None:
        if self.shows(record):
            self._pending.append(record)

    def drain(self) -> list[Text]:
        """The lines of the records collected since the last call, oldest first."""
        lines: list[Text] = []
        while True:
            try:
                record = self._pending.popleft()
            except IndexError:
                return lines
            lines.append(log_line(record))


def log_line(record: logging.LogRecord) -> Text:
    """One record as one line: ``<short id>  <workflow>  LEVEL  [step s: ]message`` for a
    record about an execution, ``cron <job>  LEVEL  message`` for a cron job's, with
    ``hydra`` before the level for hydra's own lines."""
    user = record.name in USER_LOGGERS
    text = Text()
    execution_id = getattr(record, "execution_id", None)
    cron_job = getattr(record, "cron_job", None)
    if execution_id is not None:
        text.append(render.short_id(str(execution_id)), "dim")
        text.append("  ")
        text.append(visible(str(getattr(record, "workflow_name", None) or "?")), "bold")
        text.append("  ")
    elif cron_job is not None:
        text.append("cron ", "dim")
        text.append(visible(str(cron_job)), "bold")
        text.append("  ")
    if not user:
        text.append("hydra ", "dim")
    text.append(record.levelname, LEVEL_STYLES.get(record.levelno, ""))
    text.append("  ")
    step_name = getattr(record, "step_name", None)
    if user and step_name is not None:
        text.append(f"step {visible(str(step_name))}: ", "dim")
    # one_line makes control characters visible: a log message cannot move the cursor,
    # clear the screen or restyle the terminal.
    text.append(render.one_line(_message(record), MESSAGE_PREVIEW))
    return text


def _message(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: show the format itself
        message = str(record.msg)
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and record.name in USER_LOGGERS:
        message += f" ({type(error).__name__}: {error})"
    return message


@contextmanager
def collected(handler: DevLogs) -> Iterator[DevLogs]:
    """Collect into ``handler`` what ``hydra dev run`` shows while the block runs: it is
    attached to the ``hydra`` logger, whose level is lowered to ``handler.user_level``
    meanwhile (its children, ``ctx.logger``'s included, follow it unless given a level of
    their own); both are put back afterwards."""
    logger = logging.getLogger(ENGINE_LOGGER)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(handler.user_level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
