"""How executions look: the trace (header + step timeline), its JSON, and progress lines.

``hydra trace``, ``hydra executions show`` and the live view of ``hydra dev run`` all draw
from here, so an execution looks the same everywhere. Everything that came from the
database (names, errors, outputs, ids) goes through ``visible`` (control characters
shown as ``\\x1b``, never obeyed) into ``rich.text.Text`` and is never parsed as markup;
``--json`` data is left as stored. Step statuses are the library's (``StepRecord.status``,
read by ``Engine.get_execution``), so the CLI, ``--json`` and ``execution.steps`` agree.
Times are shown in UTC; ``now_ms`` is passed in (the dev runner's clock may be virtual,
see ``hydra dev run --fast-forward``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from hydra.clock import to_ms
from hydra.records import Execution, Message, StepAttempt, StepRecord
from hydra.status import Status, StepStatus
from hydra.store.base import child_topic
from hydra.store.queues import DEFAULT_QUEUE

from .visible import one_line as visible_line
from .visible import visible

STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "sleeping": "blue",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "retrying": "yellow",
    "slept": "blue",
    "interrupted": "magenta",
    "waiting": "blue",
    "timed_out": "red",
    "parked": "bold yellow",
}
# Step markers: Unicode where the console can print it, ASCII otherwise.
MARKS = {
    "completed": ("✔", "+"),
    "failed": ("✘", "x"),
    "retrying": ("↻", "r"),
    "sleeping": ("☾", "z"),
    "slept": ("☾", "z"),
    "cancelled": ("⊘", "/"),
    "interrupted": ("⊘", "/"),
    "running": ("▶", ">"),
    "waiting": ("◷", "w"),
    "timed_out": ("✘", "t"),
}
BAR = {"step": ("█", "#"), "wait": ("░", "."), "axis": ("─", "-")}
OUTPUT_PREVIEW = 72
ERROR_PREVIEW = 300


@dataclass(frozen=True)
class RunningStep:
    """A step attempt in flight in this process (only the dev runner knows these)."""

    name: str
    attempt: int
    since_ms: int


@dataclass(frozen=True)
class Kin:
    """A parent or a child of the execution drawn, as read (without its steps)."""

    id: str
    workflow: str
    status: str
    error_type: str | None = None
    error_message: str | None = None

    @classmethod
    def of(cls, ex: Execution) -> Kin:
        return cls(ex.id, ex.workflow_name, ex.status.value, ex.error_type, ex.error_message)


@dataclass(frozen=True)
class ChildEnd:
    """A child's end as the message that told its parent carries it (what the parent's
    ``hydra.wait_child`` returned or raised): ``hydra.store.base.parse_child_end``."""

    child_id: str
    status: str
    output: Any
    error_type: str | None
    error_message: str | None


@dataclass
class View:
    """One execution as drawn: the stored execution plus what only the viewer knows."""

    execution: Execution
    #: the step in flight in this process (the first one, when several run at once)
    running: RunningStep | None = None
    worker: str | None = None  # the worker that last ran it, if the viewer saw it
    #: the messages sent to it and its events, when the viewer read them (trace, show)
    messages: list[Message] | None = None
    events: dict[str, Any] | None = None
    #: every step in flight in this process (``hydra.gather`` runs several at once)
    running_steps: tuple[RunningStep, ...] = ()
    #: its children by id, when the viewer read them (``childview.load``)
    children: dict[str, Kin] | None = None
    #: its parent, when it has one and the viewer read it
    parent: Kin | None = None
    #: the ends of its children it was told of, by message id, when read
    child_ends: dict[str, ChildEnd] | None = None

    @property
    def in_flight(self) -> tuple[RunningStep, ...]:
        """The steps running now in this process: ``running_steps``, or ``running``."""
        if self.running_steps:
            return self.running_steps
        return () if self.running is None else (self.running,)

    def child(self, child_id: str) -> Kin | None:
        return None if self.children is None else self.children.get(child_id)


@dataclass
class Style:
    unicode: bool = True
    width: int = 100

    def mark(self, kind: str) -> str:
        pair = MARKS.get(kind, ("·", "-"))
        return pair[0] if self.unicode else pair[1]

    def bar(self, kind: str) -> str:
        pair = BAR[kind]
        return pair[0] if self.unicode else pair[1]


# -- formatting -------------------------------------------------------------------------


def ms_of(when: datetime | None) -> int | None:
    return None if when is None else to_ms(when)


def fmt_time(when: datetime | int | None) -> str:
    if when is None:
        return "-"
    if isinstance(when, int):
        when = datetime.fromtimestamp(when / 1000, tz=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def fmt_duration(ms: int | float) -> str:
    """``12 ms``, ``1.5 s``, ``3m 05s``, ``48h 03m``, ``4d 00h`` (rounded down)."""
    ms = max(0, int(ms))
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 3 * 86_400:  # "48h 00m" reads better than "2d 00h"
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600:02d}h"


def relative(target_ms: int, now_ms: int) -> str:
    delta = target_ms - now_ms
    return f"in {fmt_duration(delta)}" if delta >= 0 else f"{fmt_duration(-delta)} ago"


def due(target_ms: int, now_ms: int, workflow_name: str, queue: str = DEFAULT_QUEUE) -> str:
    """When something the execution waits for is due: ``in 5m 00s``, or, once its time
    has passed and nothing picked it up, who is missing."""
    if target_ms >= now_ms:
        return relative(target_ms, now_ms)
    return (
        f"due {fmt_duration(now_ms - target_ms)} ago, waiting for {claimer(workflow_name, queue)}"
    )


def claimer(workflow_name: str, queue: str = DEFAULT_QUEUE) -> str:
    """What a due execution waits for to be claimed: ``a worker that runs order``, and,
    in a queue of its own, room there (a free slot, the rate limit's next window)."""
    runs = f"a worker that runs {visible(workflow_name)}"
    return runs if queue == DEFAULT_QUEUE else f"{runs} and room in queue {quoted(queue)}"


def preview(value: Any, limit: int = OUTPUT_PREVIEW) -> str:
    """A value as one line of JSON, made visible, cut to ``limit`` characters."""
    text = visible(to_json_text(value))
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def to_json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError):
        return repr(value)


def one_line(text: str, limit: int = ERROR_PREVIEW) -> str:
    """Stored text on one line, made visible (line breaks shown as ``\\n``), cut."""
    return visible_line(text, limit)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def short_id(execution_id: str) -> str:
    return visible(execution_id[:8])


def quoted(name: str) -> str:
    """A topic or an event key as the CLI names it: ``'decision'``, made visible."""
    return f"'{visible(name)}'"


# -- messages and events: what a receive waits for, what a checkpoint did ---------------

#: the checkpoints of hydra.receive, hydra.send and hydra.set_event (not run as steps)
MAIL_KINDS = frozenset({"receive", "send", "event"})
#: the checkpoints of hydra.start_child and hydra.wait_child (not run as steps either)
CHILD_KINDS = frozenset({"child", "child_wait"})
#: the checkpoints that wait for a message (a child's end is one), possibly to a deadline
WAIT_KINDS = frozenset({"receive", "child_wait"})
#: the start of the reserved topic on which a child's end is sent to its parent
CHILD_TOPIC = child_topic("")


def child_of_topic(topic: str | None) -> str | None:
    """The child whose end travels on ``topic``, if it is such a topic."""
    if topic is None or not topic.startswith(CHILD_TOPIC):
        return None
    return topic[len(CHILD_TOPIC) :]


def child_workflows(ex: Execution) -> dict[str, str]:
    """The workflow of each child the execution started, by child id (its start
    checkpoints, in the order they were taken)."""
    return {
        detail_text(s, "child"): detail_text(s, "workflow") for s in ex.steps if s.kind == "child"
    }


def child_label(ex: Execution, child_id: str) -> str:
    """``child 1a2b3c4d (ship)``; without the workflow when no start checkpoint names it."""
    workflow = child_workflows(ex).get(child_id)
    return f"child {short_id(child_id)}" + (f" ({visible(workflow)})" if workflow else "")


def detail_text(step: StepRecord, key: str) -> str:
    """A string field of a checkpoint's detail ("" when missing: an older record)."""
    value = step.detail.get(key)
    return value if isinstance(value, str) else ""


def receive_deadline_ms(step: StepRecord) -> int | None:
    deadline = step.detail.get("deadline")
    return ms_of(deadline) if isinstance(deadline, datetime) else None


def wait_note(ex: Execution, now_ms: int, *, long: bool = False) -> Text:
    """What a sleeping execution waits for in a ``hydra.receive``: ``waiting for
    'decision' until ... (in 2h 00m)``; ``long`` says "a message on" (the headers)."""
    child = child_of_topic(ex.wait_topic)
    if child is not None:
        what = f"waiting for {child_label(ex, child)}"
    else:
        what = f"waiting for {'a message on ' if long else ''}{quoted(ex.wait_topic or '')}"
    until = ms_of(ex.sleep_until)
    if until is None:
        return Text(f"{what} with no deadline" if long else f"{what} (no deadline)", "blue")
    note = f"{what} until {fmt_time(until)} ({due(until, now_ms, ex.workflow_name, ex.queue)})"
    return Text(note, "blue" if until >= now_ms else "yellow")


def checkpoint_summary(ex: Execution, step: StepRecord, now_ms: int, width: int) -> Text:
    """One line on what a receive, send or event checkpoint waits for or did."""
    state = step.status
    if step.kind == "send":
        to = detail_text(step, "to")
        return Text(f"sent {quoted(detail_text(step, 'topic'))} to {short_id(to)}", "dim")
    if step.kind == "event":
        key = visible(detail_text(step, "key"))
        return Text(f"event {key} = " + preview(step.output, max(width - len(key) - 9, 10)), "dim")
    topic = quoted(detail_text(step, "topic"))
    if state == StepStatus.COMPLETED:
        return Text(f"received {topic} → " + preview(step.output, max(width - 14, 10)), "dim")
    if state == StepStatus.TIMED_OUT:
        return Text(one_line(f"{step.error_type}: {step.error_message or ''}", width), "red")
    if state in CUT_SHORT:
        return Text(f"waiting for {topic}: {cut_short_note(ex, 'a message came')}", "magenta")
    deadline = receive_deadline_ms(step)
    if deadline is None:
        text = f"waiting for {topic}, no deadline"
    else:
        text = f"waiting for {topic} until {fmt_time(deadline)} "
        text += f"({due(deadline, now_ms, ex.workflow_name, ex.queue)})"
    start = ms_of(step.started_at)
    if start is not None:
        text += f"; waiting since {fmt_time(start)} ({fmt_duration(now_ms - start)})"
    overdue = deadline is not None and deadline < now_ms
    return Text(text, "yellow" if overdue else "blue")


def child_end(view: View, step: StepRecord) -> ChildEnd | None:
    """How the child a completed ``wait_child`` checkpoint took the end of ended: the
    message it took when the messages were read, else the child's record (a child
    retried since may have ended again), else None (its output is then the end's)."""
    child = detail_text(step, "child")
    ends = view.child_ends or {}
    end = ends.get(detail_text(step, "message"))
    if end is not None:
        return end
    kin = view.child(child)
    if kin is not None and kin.status in ("failed", "cancelled"):
        return ChildEnd(child, kin.status, None, kin.error_type, kin.error_message)
    return None


def child_summary(
    view: View, step: StepRecord, now_ms: int, width: int, *, with_status: bool = True
) -> Text:
    """One line on a child start (the child, its workflow and, ``with_status``, its
    status now) or a wait for a child (what it waits for, or how the child ended)."""
    ex = view.execution
    child = detail_text(step, "child")
    sid = short_id(child)
    if step.kind == "child":
        started = Text(f"started child {sid} ({visible(detail_text(step, 'workflow'))})", "dim")
        kin = view.child(child)
        if kin is not None and with_status:
            started.append(", now ", "dim")
            started.append_text(status_text(kin.status))
        return started
    state = step.status
    if state == StepStatus.COMPLETED:
        end = child_end(view, step)
        if end is None or end.status == Status.COMPLETED:
            room = max(width - len(sid) - 19, 10)
            return Text(f"child {sid} completed → " + preview(step.output, room), "dim")
        why = "" if end.error_type is None else f": {end.error_type}: {end.error_message or ''}"
        return Text(one_line(f"child {sid} {end.status}{why}", width), "red")
    if state == StepStatus.TIMED_OUT:
        return Text(one_line(f"{step.error_type}: {step.error_message or ''}", width), "red")
    label = child_label(ex, child)
    if state in CUT_SHORT:
        return Text(f"waiting for {label}: {cut_short_note(ex, 'it ended')}", "magenta")
    deadline = receive_deadline_ms(step)
    if deadline is None:
        text = f"waiting for {label}, no deadline"
    else:
        text = f"waiting for {label} until {fmt_time(deadline)} "
        text += f"({due(deadline, now_ms, ex.workflow_name, ex.queue)})"
    overdue = deadline is not None and deadline < now_ms
    return Text(text, "yellow" if overdue else "blue")


# -- step state -------------------------------------------------------------------------

#: A wait (a sleep, or a step's next attempt) that the execution's end cut short.
CUT_SHORT = frozenset({StepStatus.CANCELLED, StepStatus.INTERRUPTED})


def step_state(ex: Execution, step: StepRecord, now_ms: int) -> str:
    """A step's status as shown: the library's reading (``StepRecord.status``), the same
    in ``execution.steps``, ``--json``, the trace and the live view."""
    return step.status.value


def is_sleep(step: StepRecord) -> bool:
    return step.kind == "sleep"


def sleep_wake_ms(step: StepRecord) -> int | None:
    if isinstance(step.output, int):
        return step.output
    return ms_of(step.completed_at)


def step_span(step: StepRecord, ended: datetime | None = None) -> tuple[int | None, int | None]:
    """(start, end) in Unix ms; for a sleep, from falling asleep to the wake time, or to
    the execution's end (``ended``) when that cut it short."""
    start = ms_of(step.started_at)
    if step.kind in WAIT_KINDS and step.completed_at is None:
        # Still waiting: to its deadline (like a sleep to its wake time), or to the
        # execution's end when that cut it short; with no deadline the viewer's now.
        cut = ms_of(ended)
        if step.status in CUT_SHORT and cut is not None:
            return start, cut if start is None else max(cut, start)
        return start, receive_deadline_ms(step)
    if not is_sleep(step):
        return start, ms_of(step.completed_at)
    end = sleep_wake_ms(step)
    cut = ms_of(ended)
    if step.status in CUT_SHORT and cut is not None and (end is None or cut < end):
        end = max(cut, start) if start is not None else cut
    return start, end


def execution_end_ms(ex: Execution, now_ms: int) -> int:
    return ms_of(ex.completed_at) or now_ms


# -- JSON -------------------------------------------------------------------------------


def _iso(when: datetime | int | None) -> str | None:
    if when is None:
        return None
    if isinstance(when, int):
        when = datetime.fromtimestamp(when / 1000, tz=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: a time (a datetime, or Unix ms) as ISO 8601 UTC with milliseconds, for ``--json``
iso = _iso


def _error(error_type: str | None, message: str | None) -> dict[str, str] | None:
    if error_type is None:
        return None
    return {"type": error_type, "message": message or ""}


def execution_data(view: View, now_ms: int, *, with_steps: bool = True) -> dict[str, Any]:
    """The execution as JSON-ready data (``--json``); nothing is truncated."""
    ex = view.execution
    created = to_ms(ex.created_at)
    end = ms_of(ex.completed_at)
    data: dict[str, Any] = {
        "id": ex.id,
        "workflow": ex.workflow_name,
        "namespace": ex.namespace,
        "status": ex.status.value,
        "attempt": ex.attempt,
        "max_attempts": ex.max_attempts,
        "created_at": _iso(ex.created_at),
        "started_at": _iso(ex.started_at),
        "completed_at": _iso(ex.completed_at),
        "duration_ms": None if end is None else end - created,
        "run_at": _iso(ex.run_at),
        "sleep_until": _iso(ex.sleep_until),
        "next_retry_at": _iso(ex.next_retry_at),
        "timeout_at": _iso(ex.timeout_at),
        "wait_topic": ex.wait_topic,
        "worker": ex.worker_id,
        "idempotency_key": ex.idempotency_key,
        "trigger": (
            {"type": ex.trigger_type, "source": ex.trigger_source}
            if ex.trigger_type is not None
            else None
        ),
        "input": ex.input,
        "output": ex.output,
        "error": _error(ex.error_type, ex.error_message),
        "parent_id": ex.parent_id,
        # "status" stays the stored one (pending); these say it is parked, and how often
        "parked": ex.parked,
        "parks": ex.parks,
        # where it waits to be claimed: its queue, its priority there, its key
        "queue": ex.queue,
        "priority": ex.priority,
        "concurrency_key": ex.concurrency_key,
    }
    if with_steps:
        data["steps"] = [_step_data(ex, s, created, now_ms) for s in ex.steps]
        running = [
            {"name": r.name, "attempt": r.attempt, "started_at": _iso(r.since_ms)}
            for r in view.in_flight
        ]
        if running:
            data["running_step"] = running[0]
            data["running_steps"] = running
    if view.parent is not None:
        data["parent"] = kin_data(view.parent)
    if view.children is not None:
        data["children"] = children_data(view)
    if view.messages is not None:
        ends = view.child_ends or {}
        data["messages"] = [message_data(m, ends.get(m.id)) for m in view.messages]
    if view.events is not None:
        data["events"] = view.events
    return data


def _step_data(ex: Execution, step: StepRecord, created: int, now_ms: int) -> dict[str, Any]:
    start, end = step_span(step, ex.completed_at)
    sleeping = is_sleep(step)
    return {
        "name": step.name,
        "order": step.order,
        "kind": step.kind,
        "status": step_state(ex, step, now_ms),
        "attempts": step.attempts,
        "started_at": _iso(step.started_at),
        "completed_at": None if sleeping else _iso(step.completed_at),
        "wake_at": _iso(sleep_wake_ms(step)) if sleeping else None,
        "offset_ms": None if start is None else start - created,
        "duration_ms": None if start is None or end is None else end - start,
        "output": None if sleeping else step.output,
        "error": _error(step.error_type, step.error_message),
        "attempt_history": [_attempt_data(a, created) for a in step.attempt_history],
        "detail": {k: _iso(v) if isinstance(v, datetime) else v for k, v in step.detail.items()},
        "at": step.at,
    }


def kin_data(kin: Kin) -> dict[str, Any]:
    return {
        "id": kin.id,
        "workflow": kin.workflow,
        "status": kin.status,
        "error": _error(kin.error_type, kin.error_message),
    }


def children_data(view: View) -> list[dict[str, Any]]:
    """Every child the execution started, in the order it started them: its start
    checkpoint's name and what was read of the child (``status`` null if not read)."""
    listed = []
    for step in view.execution.steps:
        if step.kind != "child":
            continue
        child = detail_text(step, "child")
        kin = view.child(child)
        data = kin_data(kin) if kin is not None else {"id": child, "status": None, "error": None}
        data["workflow"] = detail_text(step, "workflow")
        listed.append({**data, "started_by": step.name})
    return listed


def message_data(message: Message, end: ChildEnd | None = None) -> dict[str, Any]:
    """A message sent to the execution, for ``--json``; a child's end (hydra's own
    message to a parent) also decoded as ``child_end``."""
    data: dict[str, Any] = {
        "id": message.id,
        "topic": message.topic,
        "payload": message.payload,
        "sent_at": _iso(message.sent_at),
        "sender": message.sender_id,
        "idempotency_key": message.idempotency_key,
        "received_by": message.received_by,
        "received_at": _iso(message.received_at),
    }
    if end is not None:
        data["child_end"] = {
            "child": end.child_id,
            "status": end.status,
            "output": end.output,
            "error": _error(end.error_type, end.error_message),
        }
    return data


def _attempt_data(attempt: StepAttempt, created: int) -> dict[str, Any]:
    """One attempt of a step, for ``--json`` (times as the step's: ISO and ms offsets)."""
    start, end = ms_of(attempt.started_at), ms_of(attempt.completed_at)
    return {
        "number": attempt.number,
        "status": attempt.status.value,
        "started_at": _iso(attempt.started_at),
        "completed_at": _iso(attempt.completed_at),
        "offset_ms": None if start is None else start - created,
        "duration_ms": None if start is None or end is None else end - start,
        "error": _error(attempt.error_type, attempt.error_message),
    }


def shows_attempts(step: StepRecord) -> bool:
    """A step's attempts are listed under it when it took more than one (and they were
    recorded: a step checkpointed before hydra kept attempts has none)."""
    return step.attempts > 1 and len(step.attempt_history) > 1


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)


# -- parked executions (issue 14) ----------------------------------------------------------


def shown_status(ex: Execution) -> str:
    """The status as the CLI shows it: ``parked`` for a parked execution (stored as
    ``pending``, see ``Execution.parked``), else the stored one."""
    return "parked" if ex.parked else ex.status.value


def parked_next_try(ex: Execution, now_ms: int) -> str:
    """When a parked execution is tried again: ``2030-01-01 00:02:00.000 UTC (in 1m
    00s)``. Its ``run_at`` (what ``retry`` moves to now), not ``next_retry_at``."""
    when = ms_of(ex.run_at) or ms_of(ex.next_retry_at) or now_ms
    return f"{fmt_time(when)} ({due(when, now_ms, ex.workflow_name, ex.queue)})"


def parked_note(ex: Execution, now_ms: int) -> Text:
    """``parked 2 times, next try at ... (in 2m 00s): NonDeterminismError: ...``."""
    times = "once" if ex.parks == 1 else f"{ex.parks} times"
    note = Text(f"parked {times}, next try at {parked_next_try(ex, now_ms)}: ", "yellow")
    note.append(one_line(f"{ex.error_type}: {ex.error_message or ''}", 160), "red")
    return note


def parked_banner(ex: Execution, now_ms: int) -> Text:
    """The line a parked execution's trace and ``show`` open with: why (the whole
    message, which names both sides and their code positions), when it is tried
    again, and how to resume it now."""
    banner = Text("parked: ", "bold yellow")
    why = "the code no longer matches this execution's history: "
    banner.append(why + one_line(ex.error_message or "", 2000), "red")
    banner.append(f"; next try at {parked_next_try(ex, now_ms)}; ", "yellow")
    banner.append(f"`hydra executions retry {visible(ex.id)}` resumes it now", "yellow")
    return banner


# -- the trace --------------------------------------------------------------------------


def status_text(status: str) -> Text:
    return Text(visible(status), style=STATUS_STYLES.get(status.strip(), ""))


def execution_note(view: View, now_ms: int, *, long: bool = False) -> Text:
    """What an execution is doing or did, in a few words (lists and compact headers;
    ``long``: the trace's header)."""
    ex = view.execution
    created = to_ms(ex.created_at)
    if ex.parked:
        return parked_note(ex, now_ms)
    if ex.status == Status.PENDING:
        if ex.next_retry_at is not None:
            retry_at = to_ms(ex.next_retry_at)
            when = f"{fmt_time(retry_at)} ({due(retry_at, now_ms, ex.workflow_name, ex.queue)})"
            return Text(f"attempt {ex.attempt} at {when}", "yellow")
        run_at = to_ms(ex.run_at) if ex.run_at is not None else created
        if run_at > now_ms:
            return Text(f"starts {relative(run_at, now_ms)}", "yellow")
        waited = fmt_duration(now_ms - run_at)
        return Text(f"waiting {waited} for {claimer(ex.workflow_name, ex.queue)}", "yellow")
    if ex.status == Status.RUNNING:
        started = ms_of(ex.started_at) or created
        who = view.worker or ex.worker_id
        on = f" on {visible(who)}" if who else ""
        return Text(f"running {fmt_duration(now_ms - started)}{on}")
    if ex.status == Status.SLEEPING and ex.wait_topic is not None:
        return wait_note(ex, now_ms, long=long)
    if ex.status == Status.SLEEPING:
        until = ms_of(ex.sleep_until)
        if until is None:
            return Text("sleeping")
        note = f"until {fmt_time(until)} ({due(until, now_ms, ex.workflow_name, ex.queue)})"
        return Text(note, "blue" if until >= now_ms else "yellow")
    took = Text(f"took {fmt_duration(execution_end_ms(ex, now_ms) - created)}")
    if ex.error_type is not None and ex.status != Status.COMPLETED:
        took.append(": ")
        took.append(one_line(f"{ex.error_type}: {ex.error_message or ''}", 120), "red")
    return took


def header(view: View, now_ms: int) -> Text:
    """The full header of ``hydra trace``: workflow, status, attempts, times, worker."""
    ex = view.execution
    created = to_ms(ex.created_at)
    out = Text()
    out.append(visible(ex.workflow_name), "bold")
    out.append("  ")
    out.append_text(status_text(shown_status(ex)))
    out.append("\n")
    if ex.parked:  # first, as it is what needs doing: the code or the history must change
        out.append("  ")
        out.append_text(parked_banner(ex, now_ms))
        out.append("\n")

    def field(label: str, *parts: Text | str) -> None:
        out.append(f"  {label:<10} ", "dim")
        for part in parts:
            out.append_text(part) if isinstance(part, Text) else out.append(part)
        out.append("\n")

    field("execution", visible(ex.id), Text(f"  (namespace {visible(ex.namespace)})", "dim"))
    field("attempts", f"{ex.attempt} of {ex.max_attempts}")
    queue = queue_label(ex)
    if queue is not None:
        field("queue", queue)
    field("created", fmt_time(ex.created_at))
    if ex.started_at is not None:
        started = to_ms(ex.started_at)
        field("started", fmt_time(started), Text(f"  (+{fmt_duration(started - created)})", "dim"))
    if ex.completed_at is not None:
        done = to_ms(ex.completed_at)
        field(ex.status.value, fmt_time(done), f"  (took {fmt_duration(done - created)})")
    elif not ex.terminal and not ex.parked:  # a parked one's is the banner
        field("now", execution_note(view, now_ms, long=True))
    if ex.timeout_at is not None and not ex.terminal:
        field("timeout", fmt_time(ex.timeout_at), f"  ({relative(to_ms(ex.timeout_at), now_ms)})")
    worker = ex.worker_id or view.worker
    field("worker", visible(worker) if worker else Text("- (recorded only while it runs)", "dim"))
    if ex.parent_id is not None:
        parent = view.parent
        about = "" if parent is None else f"  ({visible(parent.workflow)}, {parent.status})"
        field("parent", visible(ex.parent_id), Text(about, "dim"))
    elif ex.trigger_type not in (None, "api"):
        source = f" {ex.trigger_source}" if ex.trigger_source else ""
        field("trigger", visible(f"{ex.trigger_type}{source}"))
    if ex.error_type is not None and not ex.parked:
        label = "last error" if ex.status != Status.FAILED else "error"
        field(label, Text(one_line(f"{ex.error_type}: {ex.error_message or ''}"), "red"))
    if ex.status == Status.COMPLETED:
        field("output", Text(preview(ex.output, max(20, 80)), "dim"))
    return out


def queue_label(ex: Execution) -> str | None:
    """``emails  (priority 10, concurrency key 'acme')``: the queue an execution was
    started in and how, or None for the defaults (no queue, priority 0, no key)."""
    extras = []
    if ex.priority != 0:
        extras.append(f"priority {ex.priority}")
    if ex.concurrency_key is not None:
        extras.append(f"concurrency key {quoted(ex.concurrency_key)}")
    if ex.queue == DEFAULT_QUEUE and not extras:
        return None
    return visible(ex.queue) + (f"  ({', '.join(extras)})" if extras else "")


@dataclass(frozen=True)
class QueueColumns:
    """The queue and priority columns of ``executions list``: each only when an
    execution listed is not in the default queue, or has a priority (else empty)."""

    queue_w: int  # 0: no queue column
    priority_w: int  # 0: no priority column

    @property
    def head(self) -> str:
        return self._row("queue", "priority")

    def cells(self, ex: Execution) -> str:
        return self._row(_cut(visible(ex.queue), self.queue_w), str(ex.priority))

    def _row(self, queue: str, priority: str) -> str:
        out = f"{queue:<{self.queue_w}}  " if self.queue_w else ""
        return out + (f"{priority:<{self.priority_w}}  " if self.priority_w else "")


#: the widest a queue name is shown in a column
QUEUE_COLUMN = 20


def queue_columns(executions: list[Execution]) -> QueueColumns:
    queue_w = 0
    if any(ex.queue != DEFAULT_QUEUE for ex in executions):
        widest = max(len(visible(ex.queue)) for ex in executions)
        queue_w = min(max(len("queue"), widest), QUEUE_COLUMN)
    priority_w = 0
    if any(ex.priority != 0 for ex in executions):
        priority_w = max(len("priority"), *(len(str(ex.priority)) for ex in executions))
    return QueueColumns(queue_w, priority_w)


def _cut(text: str, width: int) -> str:
    return text if width == 0 or len(text) <= width else text[: width - 1] + "…"


def compact_header(view: View, now_ms: int, style: Style) -> Text:
    """One line per execution in the live view."""
    ex = view.execution
    out = Text()
    out.append(visible(ex.workflow_name), "bold")
    out.append("  ")
    out.append(visible(ex.id), "dim")
    out.append("  ")
    out.append_text(status_text(shown_status(ex)))
    out.append(f"  attempt {ex.attempt}/{ex.max_attempts}  ", "dim")
    out.append_text(execution_note(view, now_ms))
    return out


@dataclass
class TimelineRow:
    """One row of an execution's timeline (a step, a checkpoint, a sleep, an attempt of a
    step, a step in flight): the model ``timeline`` draws in the terminal and the web UI
    (``hydra.ui``) draws in a page. ``name`` and ``details`` are already made visible."""

    mark: str
    kind: str  # the status as shown
    name: str  # made visible
    attempts: str
    start: int | None
    end: int | None
    bar: str  # "step" or "wait"
    details: list[Text] = field(default_factory=list)
    #: the step's attempts, drawn under it (indented) when it took more than one
    attempts_rows: list[TimelineRow] = field(default_factory=list)
    indent: int = 0


def _attempt_rows(step: StepRecord, style: Style, detail_width: int) -> list[TimelineRow]:
    """One row per attempt of a step that took several: its number, outcome, start and
    duration on the trace's axis, and the error of a failed one."""
    rows: list[TimelineRow] = []
    for attempt in step.attempt_history:
        kind = attempt.status.value
        row = TimelineRow(
            style.mark(kind),
            kind,
            f"attempt {attempt.number}",
            "",
            ms_of(attempt.started_at),
            ms_of(attempt.completed_at),
            "step",
            indent=2,
        )
        if attempt.error_type is not None:
            error = one_line(f"{attempt.error_type}: {attempt.error_message or ''}", detail_width)
            row.details.append(Text(error, "red"))
        rows.append(row)
    return rows


def with_attempts(rows: list[TimelineRow]) -> list[TimelineRow]:
    """The rows in drawing order: each step's row, then its attempts' rows."""
    return [r for row in rows for r in (row, *row.attempts_rows)]


def timeline_rows(view: View, now_ms: int, style: Style, detail_width: int) -> list[TimelineRow]:
    ex = view.execution
    rows: list[TimelineRow] = []
    for step in ex.steps:
        state = step_state(ex, step, now_ms)
        start, end = step_span(step, ex.completed_at)
        name = visible(step.name)
        row = TimelineRow(style.mark(state), state, name, str(step.attempts), start, end, "step")
        if step.kind in MAIL_KINDS or step.kind in CHILD_KINDS:
            row.attempts = ""
            if step.kind in WAIT_KINDS:
                row.bar = "wait"
                if row.end is None and not ex.terminal:
                    row.end = max(now_ms, start or now_ms)  # no deadline: waiting so far
            if step.kind in CHILD_KINDS:
                row.details.append(child_summary(view, step, now_ms, detail_width))
            else:
                row.details.append(checkpoint_summary(ex, step, now_ms, detail_width))
        elif is_sleep(step):
            row.bar = "wait"
            row.attempts = ""
            wake = sleep_wake_ms(step)
            if wake is not None:
                row.details.append(sleep_detail(ex, step, wake, now_ms))
        elif step.error_type is not None:
            if shows_attempts(step):
                # Every attempt's error is drawn under it; the last one is this one.
                row.attempts_rows = _attempt_rows(step, style, detail_width - 2)
            else:
                error = one_line(f"{step.error_type}: {step.error_message or ''}", detail_width)
                row.details.append(Text(error, "red"))
            if state == "retrying" and ex.sleep_until is not None and not ex.terminal:
                wake = to_ms(ex.sleep_until)
                if all(r.name != step.name for r in view.in_flight):
                    row.details.append(
                        Text(
                            f"attempt {step.attempts + 1} at {fmt_time(wake)} "
                            f"({due(wake, now_ms, ex.workflow_name, ex.queue)})",
                            "yellow",
                        )
                    )
            elif step.status in CUT_SHORT:
                row.details.append(Text(cut_short_note(ex, "its next attempt"), "magenta"))
        elif step.status == StepStatus.COMPLETED:
            row.details.append(Text("→ " + preview(step.output, detail_width - 2), "dim"))
            if shows_attempts(step):
                row.attempts_rows = _attempt_rows(step, style, detail_width - 2)
        if step.at is not None:
            _with_position(row, step.at, detail_width)
        rows.append(row)
    for running in () if ex.terminal else view.in_flight:
        # Each step in flight (several under hydra.gather), after the checkpoints, on
        # the axis from when it started: running steps overlap there as they do in time.
        running_name = visible(running.name)
        existing = next((r for r in rows if r.name == running_name), None)
        earlier: list[TimelineRow] = []
        if existing is not None:
            rows.remove(existing)
            earlier = existing.attempts_rows  # the attempts before the one running now
        row = TimelineRow(
            style.mark("running"),
            "running",
            running_name,
            str(running.attempt),
            running.since_ms,
            now_ms,
            "step",
            attempts_rows=earlier,
        )
        row.details.append(
            Text(f"attempt {running.attempt} running for {fmt_duration(now_ms - running.since_ms)}")
        )
        rows.append(row)
    return rows


def _with_position(row: TimelineRow, at: str, width: int) -> None:
    """The checkpoint's code position (``at shop.py:42``), under its other details (a
    line of its own: they keep their width, and a violation's positions read there)."""
    row.details.append(Text(one_line(f"at {at}", width), "dim"))


def sleep_detail(ex: Execution, step: StepRecord, wake: int, now_ms: int) -> Text:
    """The line under a sleep: its wake time, and whether it is still to come, overdue,
    or was cut short by the execution's end."""
    when = f"until {fmt_time(wake)}"
    if step.status == StepStatus.SLEEPING:
        colour = "yellow" if wake < now_ms else "blue"  # overdue: nobody picked it up
        return Text(f"{when} ({due(wake, now_ms, ex.workflow_name, ex.queue)})", colour)
    if step.status in CUT_SHORT:
        return Text(f"{when}: {cut_short_note(ex, 'its wake time')}", "magenta")
    return Text(when, "blue")


def cut_short_note(ex: Execution, what: str) -> str:
    """``the execution was cancelled before its wake time`` and the like."""
    ended = "was cancelled" if ex.status == Status.CANCELLED else "failed"
    return f"the execution {ended} before {what}"


def time_axis(view: View, rows: list[TimelineRow], now_ms: int) -> tuple[int, int]:
    """The timeline's axis: its origin (the execution's creation, Unix ms) and its length
    (to the execution's end, or now, or the latest end of a row such as a wake time)."""
    t0 = to_ms(view.execution.created_at)
    t1 = execution_end_ms(view.execution, now_ms)
    for row in rows:
        if row.end is not None:
            t1 = max(t1, row.end)
    return t0, max(t1 - t0, 1)


def timeline(view: View, now_ms: int, style: Style, *, bars: bool = True) -> Text:
    """The steps, one line each (plus details), with duration bars on a common axis from
    the execution's creation to its end (or now, or the latest wake time)."""
    ex = view.execution
    width = max(style.width, 60)
    detail_width = max(width - 8, 30)
    rows = with_attempts(timeline_rows(view, now_ms, style, detail_width))
    out = Text()
    if not rows:
        out.append("  no steps yet", "dim")
        if ex.status == Status.PENDING:
            out.append(" (no worker has started it)", "dim")
        out.append("\n")
        return out
    t0, span = time_axis(view, rows, now_ms)
    name_w = min(max(len(r.name) + r.indent for r in rows), 40)
    name_w = max(name_w, 4)
    status_w = 9
    tries_w = 5
    start_w = 8
    took_w = 8
    fixed = 2 + 2 + name_w + 2 + status_w + 2 + tries_w + 2 + start_w + 2 + took_w + 2
    bar_w = min(max(width - fixed - 1, 20), 50) if bars else 0

    out.append(" " * 4)
    out.append(f"{'step':<{name_w}}  {'status':<{status_w}}  {'tries':<{tries_w}}  ", "dim")
    out.append(f"{'start':>{start_w}}  {'took':>{took_w}}", "dim")
    if bars:
        left, right = "0", fmt_duration(span)
        fill = max(bar_w - len(left) - len(right) - 2, 1)
        out.append(f"  {left} {style.bar('axis') * fill} {right}", "dim")
    out.append("\n")
    for row in rows:
        room = name_w - row.indent  # an attempt's row is indented under its step's
        name = row.name if len(row.name) <= room else row.name[: room - 1] + "…"
        out.append("  " + " " * row.indent)
        out.append(row.mark, STATUS_STYLES.get(row.kind, ""))
        out.append(" ")
        out.append(f"{name:<{room}}")
        out.append("  ")
        out.append(f"{row.kind:<{status_w}}", STATUS_STYLES.get(row.kind, ""))
        out.append(f"  {row.attempts:<{tries_w}}  ")
        start = "" if row.start is None else "+" + fmt_duration(row.start - t0)
        took = "" if row.start is None or row.end is None else fmt_duration(row.end - row.start)
        out.append(f"{start:>{start_w}}  {took:>{took_w}}")
        if bars and row.start is not None:
            a = int((row.start - t0) / span * bar_w)
            b = int(((row.end if row.end is not None else row.start) - t0) / span * bar_w)
            a = min(max(a, 0), bar_w - 1)
            b = min(max(b, a + 1), bar_w)
            out.append("  " + " " * a)
            out.append(style.bar(row.bar) * (b - a), STATUS_STYLES.get(row.kind, ""))
        out.append("\n")
        for detail in row.details:
            out.append(" " * (6 + row.indent))
            out.append_text(detail)
            out.append("\n")
    return out


def trace(view: View, now_ms: int, style: Style) -> RenderableType:
    """What ``hydra trace`` prints: the header, a blank line, the timeline."""
    return Group(header(view, now_ms), timeline(view, now_ms, style))


def live_frame(
    views: Iterable[View], now_ms: int, style: Style, footer: Text | None = None
) -> RenderableType:
    """One frame of ``hydra dev run``'s live view."""
    parts: list[RenderableType] = []
    for view in views:
        parts.append(compact_header(view, now_ms, style))
        parts.append(timeline(view, now_ms, style))
    if footer is not None:
        parts.append(footer)
    return Group(*parts)


# -- progress lines (no live terminal) ---------------------------------------------------


class ProgressPrinter:
    """Turns successive snapshots of executions into one line per change.

    Used where there is no live terminal (pipes, CI, ``CliRunner``): each new step record,
    each change of a step's status or attempts, and each change of the execution's status
    prints a line. Intermediate states between two snapshots are not seen (the attempts
    count still tells how many there were).
    """

    def __init__(self) -> None:
        self._status: dict[str, tuple[str, int, int]] = {}
        self._steps: dict[tuple[str, str], tuple[str, int]] = {}

    def changes(self, view: View, now_ms: int) -> list[Text]:
        ex = view.execution
        lines: list[Text] = []

        def line(*parts: Text | str) -> None:
            text = Text()
            text.append(short_id(ex.id), "dim")
            text.append("  ")
            text.append(visible(ex.workflow_name), "bold")
            text.append("  ")
            for part in parts:
                text.append_text(part) if isinstance(part, Text) else text.append(part)
            lines.append(text)

        status = (shown_status(ex), ex.attempt, ex.parks)
        status_changed = self._status.get(ex.id) != status
        self._status[ex.id] = status
        if status_changed and ex.parked:
            line(status_text("parked"), ": ", parked_note(ex, now_ms))
        elif status_changed and ex.status == Status.RUNNING:
            line(status_text("running"), f" (attempt {ex.attempt} of {ex.max_attempts})")
        elif status_changed and ex.status == Status.PENDING and ex.next_retry_at is not None:
            error = one_line(f"{ex.error_type}: {ex.error_message or ''}")
            line("attempt ", str(ex.attempt - 1), " failed: ", Text(error, "red"), "; ")
            lines[-1].append_text(execution_note(view, now_ms))
        for step in ex.steps:
            state = step_state(ex, step, now_ms)
            key = (ex.id, step.name)
            seen = self._steps.get(key)
            if seen == (state, step.attempts) or (seen is not None and state == "slept"):
                continue
            self._steps[key] = (state, step.attempts)
            start, end = step_span(step, ex.completed_at)
            name = visible(step.name)
            if is_sleep(step):
                wake = sleep_wake_ms(step)
                if state == "sleeping" and wake is not None:
                    when = (
                        f" until {fmt_time(wake)} ({due(wake, now_ms, ex.workflow_name, ex.queue)})"
                    )
                    line("sleep ", name, " ", status_text(state), when)
                elif state != "slept" or seen is None:
                    line("sleep ", name, " ", status_text(state))
                continue
            if step.kind in MAIL_KINDS:
                summary = checkpoint_summary(ex, step, now_ms, OUTPUT_PREVIEW)
                line(step.kind, " ", name, " ", status_text(state), ": ", summary)
                continue
            if step.kind == "child":
                # Once, when started: the child's own lines follow when it is watched.
                started = child_summary(view, step, now_ms, OUTPUT_PREVIEW, with_status=False)
                line("child ", name, ": ", started)
                continue
            if step.kind == "child_wait":
                summary = child_summary(view, step, now_ms, OUTPUT_PREVIEW)
                line("wait ", name, " ", status_text(state), ": ", summary)
                continue
            took = "" if start is None or end is None else f", {fmt_duration(end - start)}"
            parts: list[Text | str] = ["step ", name, " ", status_text(state)]
            parts.append(f" (attempt {step.attempts}{took})")
            if step.error_type is not None:
                parts.append(": ")
                error = one_line(f"{step.error_type}: {step.error_message or ''}")
                parts.append(Text(error, "red"))
                if state == "retrying" and ex.sleep_until is not None and not ex.terminal:
                    wake = to_ms(ex.sleep_until)
                    parts.append(
                        Text(f"; attempt {step.attempts + 1} {relative(wake, now_ms)}", "yellow")
                    )
            elif step.status == StepStatus.COMPLETED:
                parts.append(Text(" → " + preview(step.output), "dim"))
            line(*parts)
        if status_changed and ex.terminal:
            line(status_text(ex.status.value), "  ", execution_note(view, now_ms))
        return lines
