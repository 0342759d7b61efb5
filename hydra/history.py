"""A run's history as the code meets it again: what a stored checkpoint is, how a
mismatch names it, and where in the workflow's code a checkpoint is (``file:line``).

``hydra.run.Run.boundary`` compares each checkpoint the code reaches with the stored one
at the same position (issue 14); these helpers name both sides.
"""

from __future__ import annotations

import os
import sys
import threading

from hydra.status import StepStatus
from hydra.store.base import StepRow, detail_of

#: the call that makes each kind of checkpoint (for messages)
CALLS = {
    "event": "set_event",
    "child": "start_child",
    "child_wait": "wait_child",
    "patch": "patched",
}


def kind_of(row: StepRow) -> str:
    """What a stored checkpoint is (a sleep stored before kinds were stored: its status)."""
    return "sleep" if row.status == StepStatus.SLEEPING else row.kind


def describe_checkpoint(row: StepRow) -> str:
    """A stored checkpoint as a violation names it: ``step 'charge' (at shop.py:41)``."""
    at = detail_of(row.detail).get("at")
    return f"{kind_of(row)} {row.name!r}" + (f" (at {at})" if at else "")


_HYDRA_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SKIPPED = (_HYDRA_DIR, os.path.dirname(threading.__file__) + os.sep)


def code_position() -> str | None:
    """``file:line`` of the innermost caller outside hydra (and the standard library's
    threading and asyncio): the workflow code that reached a checkpoint. A path under the
    current directory is shown relative to it."""
    frame = sys._getframe(1)
    while frame is not None:
        shown = _shown(frame.f_code.co_filename)
        if shown is not None:
            return f"{shown}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


# A file's name as positions show it, or None for hydra's own and the standard library's:
# decided once per file (every checkpoint asks, on the hot path; the working directory a
# relative name is computed against is the one of the first checkpoint of that file).
_SHOWN: dict[str, str | None] = {}


def _shown(filename: str) -> str | None:
    try:
        return _SHOWN[filename]
    except KeyError:
        pass
    shown: str | None
    if filename.startswith(_SKIPPED) or filename.startswith("<"):
        shown = None
    else:
        cwd = os.getcwd() + os.sep
        shown = filename[len(cwd) :] if filename.startswith(cwd) else filename
    if len(_SHOWN) < 4096:
        _SHOWN[filename] = shown
    return shown
