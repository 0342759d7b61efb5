"""Defining workflows: ``hydra.Workflow``, ``@hydra.workflow`` and the context they get."""

from __future__ import annotations

import inspect
import logging
import re
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hydra.errors import InvalidNameError
from hydra.store.base import RESERVED_TOPIC_PREFIX

if TYPE_CHECKING:
    from hydra.run import Run

TReq = TypeVar("TReq")


class WorkflowContext:
    """What a running workflow knows about itself; passed as ``ctx`` to ``run``.

    ``attempt`` is the 1-based workflow attempt. ``logger`` (see there) adds
    ``execution_id``, ``workflow_name``, ``step_name``, ``attempt`` and ``worker_id`` to
    every record, and is silent while the run replays (``is_replaying``).
    """

    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def execution_id(self) -> str:
        return self._run.execution_id

    @property
    def workflow_name(self) -> str:
        return self._run.workflow_name

    @property
    def namespace(self) -> str:
        return self._run.namespace

    @property
    def attempt(self) -> int:
        return self._run.attempt

    @property
    def worker_id(self) -> str:
        return self._run.lease.worker_id

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """The workflow's logger: the ``workflow`` child of the engine's logger
        (``hydra.workflow`` by default), replay-aware.

        A run replays the workflow from the top, so code before its last checkpoint runs
        again on every run. ``ctx.logger`` drops records while the run is replaying: from
        the start of a run until it has reached every step and sleep checkpointed before
        it began, or earlier, as soon as it does something new (enters a step body, or
        reaches a sleep without a checkpoint). A line logged before a sleep therefore
        appears once, not once per run. From then on it logs as usual: a line after the
        last checkpoint is logged again if the run is cut short (a crash) before the next
        checkpoint, as that code runs again when the execution resumes (at-least-once,
        like the step that was in flight). Lines inside step bodies are always logged: a
        body runs only when it has no checkpoint. While muted, ``isEnabledFor`` is False.

        hydra's own lines about the run are never muted. To log on every run anyway, use a
        logger of your own (``logging.getLogger(...)``), and ``is_replaying`` to tell runs
        apart.
        """
        return self._run.workflow_logger

    @property
    def is_replaying(self) -> bool:
        """True while this run re-executes code an earlier run already executed: a
        checkpoint stored before the run began is still ahead of it, and the run has not
        yet done anything new (see ``logger``)."""
        return self._run.replaying

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.workflow_name} {self.execution_id} "
            f"attempt={self.attempt}>"
        )


class AsyncWorkflowContext(WorkflowContext):
    """The context of an ``async def run`` workflow: ``await hydra.step(...)`` there."""


class Workflow(Generic[TReq]):
    """Base class of class-based workflows.

    Subclasses set ``name`` (the stable identity stored in the database) and define
    ``run(self, ctx, req)``, sync or ``async``. The input is decoded into the type
    annotated on ``req`` (else the ``Workflow[T]`` parameter) before ``run`` is called.
    Code outside steps must be deterministic: it runs again on every replay.
    """

    name: str = ""

    def run(self, ctx: WorkflowContext, req: TReq) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define run(self, ctx, req)")

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)

    def input_type(self) -> Any:
        """The type the stored input is decoded into."""
        found = _param_type(self.run, skip=1)
        if found is not None:
            return found
        for base in getattr(type(self), "__orig_bases__", ()):
            if typing.get_origin(base) is Workflow:
                (arg,) = typing.get_args(base)
                if not isinstance(arg, TypeVar):
                    return arg
        return Any

    def __repr__(self) -> str:
        return f"<workflow {self.name!r}>"


def resolved_input_type(workflow: Workflow[Any]) -> Any:
    """``workflow.input_type()``, resolved once per workflow object: type-hint resolution
    re-evaluates annotations and would otherwise cost more than a short run."""
    try:
        return workflow.__dict__["_hydra_input_type"]
    except KeyError:
        resolved = workflow.__dict__["_hydra_input_type"] = workflow.input_type()
        return resolved


class FunctionWorkflow(Workflow[Any]):
    """A workflow made from a plain function by ``@hydra.workflow``."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def run(self, ctx: WorkflowContext, req: Any) -> Any:
        return self.fn(ctx, req)

    def input_type(self) -> Any:
        found = _param_type(self.fn, skip=1)
        return Any if found is None else found

    def __call__(self, ctx: WorkflowContext, req: Any) -> Any:
        return self.fn(ctx, req)


def workflow(name: str) -> Callable[[Callable[..., Any]], FunctionWorkflow]:
    """Turn ``fn(ctx, req)`` (sync or async) into a registrable ``Workflow``.

    >>> @workflow("greet")
    ... def greet(ctx, name: str) -> str:
    ...     return f"hello {name}"
    """
    validate_name(name, "workflow name")

    def wrap(fn: Callable[..., Any]) -> FunctionWorkflow:
        if not callable(fn):
            raise TypeError(f"@workflow({name!r}) decorates a function, not {fn!r}")
        return FunctionWorkflow(name, fn)

    return wrap


# C0 controls, DEL and C1 controls (PostgreSQL rejects NUL in text outright; the others
# are invisible in logs and UIs), and lone surrogates (not encodable as UTF-8: no driver
# can send them).
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def validate_name(name: object, what: str) -> str:
    """``name`` if every backend stores and compares it exactly, else ``InvalidNameError``.

    The rules (the same for every name and key hydra stores): a non-empty string of at
    most 255 characters, no leading or trailing whitespace, no control characters (C0,
    DEL, C1) and no lone surrogates.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > 255:
        raise InvalidNameError(f"{what} must be at most 255 characters, got {len(name)}")
    if name != name.strip():
        # Some databases ignore trailing spaces when comparing: 'a ' would equal 'a'.
        raise InvalidNameError(f"{what} must not start or end with whitespace, got {name!r}")
    bad = _UNSTORABLE.search(name)
    if bad is not None:
        char = bad.group()
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise InvalidNameError(
            f"{what} must not contain control characters or lone surrogates, got {name!r} "
            f"({kind} {char!r} at index {bad.start()})"
        )
    return name


def _param_type(fn: Callable[..., Any], skip: int) -> Any:
    """The annotation of ``fn``'s parameter after the first ``skip`` (ctx) ones, or None."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if len(params) <= skip:
        return None
    param = params[skip]
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    hint = hints.get(param.name, param.annotation)
    if hint is inspect.Parameter.empty or isinstance(hint, str):
        return None
    return hint


def user_topic(topic: str) -> str:
    """``topic`` if a workflow or a caller may use it: a valid name (``validate_name``)
    not starting with ``hydra.`` (hydra's own topics), else ``InvalidNameError``."""
    validate_name(topic, "topic")
    if topic.startswith(RESERVED_TOPIC_PREFIX):
        raise InvalidNameError(
            f"topic {topic!r}: topics starting with {RESERVED_TOPIC_PREFIX!r} are hydra's "
            "own (a child's end is sent to its parent on one)"
        )
    return topic
