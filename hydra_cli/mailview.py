"""The messages sent to an execution and the events it set, as ``hydra trace`` and
``hydra executions show`` list them under its steps.

The receive, send and event checkpoints themselves are rows of the timeline
(``render``); these sections answer what the checkpoints cannot: which messages wait
unread, who sent each one, and the latest value of every event key. Topics, keys,
payloads, checkpoint names and ids are stored text: made visible like everything else.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from hydra import Engine
from hydra.records import Message

from . import childview, render
from .render import Style, View
from .visible import visible


def load(engine: Engine, view: View) -> View:
    """``view`` with the messages sent to its execution and its events read."""
    eid = view.execution.id
    view.messages = engine.list_messages(eid)
    view.events = engine.get_events(eid)
    return view


def sender(message: Message) -> str:
    """``by 1a2b3c4d`` (a workflow's ``hydra.send``) or ``from outside`` (``Engine.send``,
    ``hydra executions send``)."""
    if message.sender_id is None:
        return "from outside"
    return f"by {render.short_id(message.sender_id)}"


def reader(message: Message) -> str:
    """``received by receive-1`` or ``unread``."""
    if message.received_by is None:
        return "unread"
    return f"received by {visible(message.received_by)}"


def sections(view: View, style: Style) -> Text:
    """The trace's sections: one line per message (topic, when, by whom, read by which
    checkpoint, its payload cut to fit), one per event key; nothing when there are none."""
    out = Text()
    width = max(style.width, 60)
    messages = view.messages or []
    ends = view.child_ends or {}
    if messages:
        topics = [topic_label(m, m.id in ends) for m in messages]
        topic_w = min(max(len(t) for t in topics), 24)
        out.append(f"  messages sent to it ({len(messages)})\n", "dim")
        for m, topic in zip(messages, topics, strict=True):
            topic = topic if len(topic) <= topic_w else topic[: topic_w - 1] + "…"
            end = ends.get(m.id)
            # A child's end: its sender is the child the label names.
            by = "" if end is not None else f" {sender(m)}"
            line = Text(f"    {topic:<{topic_w}}  sent {render.fmt_time(m.sent_at)}{by}  ")
            line.append(reader(m), "dim" if m.received else "yellow")
            room = max(width - len(line.plain) - 4, 16)
            if end is not None:
                line.append("  → ", "dim")
                line.append_text(childview.end_text(end, room))
            else:
                line.append("  → " + render.preview(m.payload, room), "dim")
            out.append_text(line)
            out.append("\n")
    events = view.events or {}
    if events:
        if messages:
            out.append("\n")
        out.append(f"  events ({len(events)})\n", "dim")
        for key, value in events.items():
            shown = visible(key)
            out.append(f"    {shown} = ")
            out.append(render.preview(value, max(width - len(shown) - 7, 16)), "dim")
            out.append("\n")
    return out


def topic_label(message: Message, is_end: bool) -> str:
    """``'decision'``, or ``end of child 1a2b3c4d`` for a child's end (hydra's message)."""
    child = render.child_of_topic(message.topic)
    if is_end and child is not None:
        return f"end of child {render.short_id(child)}"
    return render.quoted(message.topic)


def trace(view: View, now_ms: int, style: Style, children: Text | None = None) -> RenderableType:
    """What ``hydra trace`` prints: the header, the timeline, the children (``children``,
    ``childview.section``), the messages and events (the timeline ends with a blank
    line, which separates them)."""
    parts = [p for p in (children, sections(view, style)) if p is not None and p.plain]
    if not parts:
        return render.trace(view, now_ms, style)
    return Group(render.trace(view, now_ms, style), *parts)
