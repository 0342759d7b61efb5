"""An execution's parent and children, as ``hydra trace``, ``hydra executions show`` and
the live view of ``hydra dev run`` show them.

The start and wait checkpoints are rows of the timeline (``render``); this reads what
they cannot say: each child's status now (one query for all the children:
``engine.list_executions(parent_id=...)``, as many rows as the execution has start
checkpoints, which the trace reads anyway), the parent's workflow and status (its row
alone), and how each child ended as its parent was told (the message the store sent it,
decoded with ``parse_child_end``: ``engine.list_messages`` gives a child's end as
``{"status", "output", "error"}``, with the error's type and message joined, which the
trace shows apart).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text

from hydra import Engine
from hydra.store.base import parse_child_end

from . import render
from .render import ChildEnd, Kin, Style, View
from .visible import visible

#: how many children the trace lists; the rest are named by a command that lists them
CHILDREN_SHOWN = 50


def load(engine: Engine, view: View, *, ends: bool = True) -> View:
    """``view`` with its children (when it started any), its parent (when it has one)
    and, with ``ends``, the ends of its children it was sent (when ``view.messages``,
    read first by ``mailview.load``, holds any)."""
    ex = view.execution
    count = sum(1 for s in ex.steps if s.kind == "child")
    if count:
        found = engine.list_executions(parent_id=ex.id, limit=count)
        view.children = {c.id: Kin.of(c) for c in found}
    if ex.parent_id is not None:
        row = engine.store.get_execution(engine.namespace, ex.parent_id)
        if row is not None:
            view.parent = Kin(
                row.id, row.workflow_name, row.status.value, row.error_type, row.error_message
            )
    if ends and any(render.child_of_topic(m.topic) for m in view.messages or []):
        view.child_ends = read_ends(engine, ex.id)
    return view


def read_ends(engine: Engine, execution_id: str) -> dict[str, ChildEnd]:
    """The ends of its children sent to the execution, by message id."""
    ends: dict[str, ChildEnd] = {}
    for row in engine.store.list_messages(execution_id):
        child = render.child_of_topic(row.topic)
        if child is None:
            continue
        try:
            status, data, error_type, error_message = parse_child_end(row.payload)
        except (ValueError, KeyError):
            continue  # not a child's end as this hydra writes them: shown as a message
        ends[row.id] = ChildEnd(
            child, status.value, _decode(engine, data), error_type, error_message
        )
    return ends


def _decode(engine: Engine, data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return engine.marshaller.unmarshal(data, Any)
    except Exception:
        return data  # not decodable by this marshaller: the raw bytes, as Engine shows them


def end_text(end: ChildEnd, width: int) -> Text:
    """``completed → "L-north"`` or ``failed: NonRetryableError: ...``."""
    if end.status == "completed":
        return Text("completed → " + render.preview(end.output, max(width - 12, 10)), "dim")
    why = "" if end.error_type is None else f": {end.error_type}: {end.error_message or ''}"
    return Text(render.one_line(f"{end.status}{why}", width), "red")


def section(view: View, style: Style, command: Callable[[str], str], more: str) -> Text:
    """``children (N)``: one line per child, in the order they were started (its short
    id, workflow, status and the command that traces it), at most ``CHILDREN_SHOWN``
    (``more``: the command that lists them all); nothing when it started none."""
    out = Text()
    starts = [s for s in view.execution.steps if s.kind == "child"]
    if not starts:
        return out
    workflows = [visible(render.detail_text(s, "workflow")) for s in starts]
    wf_w = min(max(len(w) for w in workflows), 24)
    out.append(f"  children ({len(starts)})\n", "dim")
    for step, workflow in list(zip(starts, workflows, strict=True))[:CHILDREN_SHOWN]:
        child = render.detail_text(step, "child")
        kin = view.child(child)
        status = kin.status if kin is not None else "-"
        workflow = workflow if len(workflow) <= wf_w else workflow[: wf_w - 1] + "…"
        out.append(f"    {render.short_id(child)}  {workflow:<{wf_w}}  ")
        out.append_text(render.status_text(f"{status:<9}"))
        out.append("  " + visible(command(child)) + "\n", "dim")
    if len(starts) > CHILDREN_SHOWN:
        out.append(f"    … and {len(starts) - CHILDREN_SHOWN} more: {visible(more)}\n", "dim")
    return out
