"""Importing user code: a workflow file by path (``hydra dev run``) and ``MODULE:ATTR``
(``hydra worker``). Anything that goes wrong while importing becomes a ``CliError`` whose
cause carries the original traceback (shown with ``--debug``)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hydra import Worker, Workflow

from .errors import CliError

DEV_HOOK = "dev"
WORKFLOWS_ATTR = "WORKFLOWS"


@dataclass
class WorkflowFile:
    """What ``hydra dev run`` found in a file."""

    path: Path
    module: ModuleType
    workflows: list[Workflow[Any]]
    hook: Callable[..., Any] | None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return f"SyntaxError: {exc.msg}{where}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def import_file(file: str) -> ModuleType:
    """Import a Python file by path, as a module of its own.

    The module is registered in ``sys.modules`` before it runs (dataclasses and postponed
    annotations resolve through it), and the file's directory goes first on ``sys.path``
    so that it can import its neighbours, as ``python FILE`` would.
    """
    path = Path(file)
    if not path.exists():
        raise CliError(f"no such file: {file}")
    if path.is_dir():
        raise CliError(f"{file} is a directory: give a Python file defining workflows")
    path = path.resolve()
    name = "hydra_dev_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot import {file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise CliError(f"cannot import {file}: {_describe(exc)}") from exc
    return module


def find_workflows(file: str, module: ModuleType) -> WorkflowFile:
    """Every ``hydra.Workflow`` instance the module holds at top level or in ``WORKFLOWS``,
    and its ``dev(engine)`` hook if it has one."""
    found: list[Workflow[Any]] = []
    listed = getattr(module, WORKFLOWS_ATTR, None)
    candidates: list[Any] = list(vars(module).values())
    if isinstance(listed, list | tuple):
        candidates.extend(listed)
    for value in candidates:
        if isinstance(value, Workflow) and not any(value is w for w in found):
            found.append(value)
    by_name: dict[str, Workflow[Any]] = {}
    for wf in found:
        if not isinstance(wf.name, str) or not wf.name:
            raise CliError(f"{file}: workflow {type(wf).__name__} has no name (set name = '...')")
        if wf.name in by_name:
            raise CliError(f"{file} defines two different workflows named {wf.name!r}")
        by_name[wf.name] = wf
    if not found:
        classes = [
            n
            for n, v in vars(module).items()
            if inspect.isclass(v) and issubclass(v, Workflow) and v.__module__ == module.__name__
        ]
        hint = (
            f" (it defines the class(es) {', '.join(classes)}: create instances at module "
            f"level, e.g. {WORKFLOWS_ATTR} = [{classes[0]}()])"
            if classes
            else " (define a hydra.Workflow subclass instance or an @hydra.workflow function)"
        )
        raise CliError(f"{file} defines no workflows{hint}")
    hook = getattr(module, DEV_HOOK, None)
    if hook is not None and not callable(hook):
        raise CliError(f"{file}: {DEV_HOOK} must be a function dev(engine), not {hook!r}")
    return WorkflowFile(Path(file), module, found, hook)


def load_worker(target: str) -> Worker:
    """``MODULE:ATTR`` -> the ``hydra.Worker`` it names (or that ``ATTR()`` returns)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"expected MODULE:ATTR (e.g. myapp.workers:worker), got {target!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules of the current dir
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]:
            raise CliError(
                f"cannot import {module_name!r}: no such module (run from the directory that "
                "contains it, or install it)"
            ) from exc
        raise CliError(f"cannot import {module_name!r}: {_describe(exc)}") from exc
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError as exc:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from exc
    if isinstance(value, Workflow):
        raise CliError(
            f"{target} is a workflow, not a hydra.Worker: point at a Worker that has it "
            "registered (worker.register(...)), or at a function returning one"
        )
    if not isinstance(value, Worker):
        if not callable(value) or inspect.isclass(value):
            raise CliError(
                f"{target} is {type(value).__name__}, not a hydra.Worker (or a function "
                "returning one)"
            )
        try:
            value = value()
        except Exception as exc:
            raise CliError(f"{target}() raised {_describe(exc)}") from exc
        if not isinstance(value, Worker):
            raise CliError(f"{target}() returned {type(value).__name__}, not a hydra.Worker")
    return value
