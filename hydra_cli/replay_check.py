"""``hydra replay-check TARGET``: would this code still replay the stored executions?

The code is a workflow file (as for ``hydra dev run``) or ``MODULE:ATTR`` naming a worker
(as for ``hydra worker``: its registered workflows and its engine's marshaller). The
histories come from the database (the unfinished executions of a namespace; ``--all``:
every one), or, with ``--history``, from exported files (``hydra executions export``),
with no database touched. ``hydra.testing.replay_check`` does the work: nothing is
written and no step body runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hydra import JSONMarshaller, Marshaller, Workflow
from hydra.testing.history import HistoryFormatError, load_histories
from hydra.testing.replay import replay_check
from hydra.testing.replay_report import ReplayReport

from . import output
from .db import DEFAULT_NAMESPACE, DbOption, NamespaceOption, database, namespace, open_store
from .errors import CliError
from .loader import find_workflows, import_file, load_worker

#: the exit code when an execution no longer replays
EXIT_VIOLATIONS = 1

REPLAY_CHECK_HELP = (
    "Replay stored executions against the workflow code in TARGET, without running any "
    "step or writing anything, and report every execution the code no longer matches (a "
    "checkpoint renamed, removed, reordered or inserted before existing ones, a stored "
    "result that no longer decodes, code that ends or raises before its stored "
    "checkpoints): what a worker running this code would park.\n\n"
    "TARGET is a Python file defining workflows (as for hydra dev run), or MODULE:ATTR "
    "naming a hydra.Worker or a function returning one (as for hydra worker). Executions "
    "of workflows TARGET does not define are skipped.\n\n"
    "Checks the namespace's unfinished executions (pending, running, sleeping; --all: "
    "every execution), or, with --history, the histories in exported files (hydra "
    "executions export ID > history.json) without any database.\n\n"
    "Exit code 0 when every execution replays; 1 when some do not (one line each, then a "
    "summary line)."
)


def replay_check_command(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(metavar="TARGET", help="FILE.py or MODULE:ATTR.", show_default=False),
    ],
    check_all: Annotated[
        bool,
        typer.Option("--all", help="Check finished executions too (completed, failed, cancelled)."),
    ] = False,
    history: Annotated[
        list[Path] | None,
        typer.Option(
            "--history",
            metavar="FILE",
            help="Check this exported history instead of the database (repeatable).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    workflows, marshaller = load_code(target)
    if history:
        if db is not None:
            raise CliError("--history checks exported files: it takes no --db")
        report = _check_files(history, workflows, marshaller)
    else:
        store = open_store(database(ctx, db), create=False)
        try:
            report = replay_check(
                workflows,
                store,
                namespace=namespace(ns),
                include_finished=check_all,
                marshaller=marshaller,
            )
        finally:
            store.close()
    if as_json:
        output.raw(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        for violation in report.violations:
            output.line(str(violation))
        output.line(("ok: " if report.ok else "failed: ") + report.summary())
    if not report.ok:
        raise typer.Exit(EXIT_VIOLATIONS)


def load_code(target: str) -> tuple[list[Workflow[Any]], Marshaller]:
    """The workflows (and the marshaller) ``TARGET`` names: a file, or ``MODULE:ATTR``."""
    if target.endswith(".py") or Path(target).exists() or ":" not in target:
        found = find_workflows(target, import_file(target))
        return found.workflows, JSONMarshaller()
    worker = load_worker(target)
    if not worker.workflow_names:
        raise CliError(f"{target} has no workflows registered: call worker.register(...) first")
    return worker.workflows, worker.engine.marshaller


def _check_files(
    paths: list[Path], workflows: list[Workflow[Any]], marshaller: Marshaller
) -> ReplayReport:
    try:
        store = load_histories(paths)
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except HistoryFormatError as exc:
        raise CliError(str(exc)) from exc
    # Each history is checked in the namespace it was exported from, whatever its status.
    reports = [
        replay_check(workflows, store, namespace=ns, include_finished=True, marshaller=marshaller)
        for ns in store.list_namespaces(limit=len(paths))
    ]
    return ReplayReport(
        checked=sum(r.checked for r in reports),
        violations=[v for r in reports for v in r.violations],
        skipped=[s for r in reports for s in r.skipped],
    )


__all__ = ["REPLAY_CHECK_HELP", "load_code", "replay_check_command"]
