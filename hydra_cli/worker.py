"""``hydra worker MODULE:ATTR``: a production worker process."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from hydra import Worker
from hydra.logs import ContextFormatter

from . import output
from .errors import CliError
from .loader import load_worker

WORKER_HELP = (
    "Run a worker process until SIGTERM or SIGINT, then shut down gracefully: stop claiming, "
    "let the runs in flight finish (keeping their leases alive), exit 0.\n\n"
    "MODULE:ATTR names a hydra.Worker, or a function that returns one (so that importing the "
    "module connects to nothing), e.g. myapp.workers:worker or myapp.workers:make_worker. "
    "MODULE is imported as python -m would, with the current directory on the import path. "
    "The worker brings everything else: its engine's database and namespace, and the "
    "workflows registered on it (worker.register(...)).\n\n"
    "--concurrency and --metrics-port override the worker's own settings. Logs go to stderr."
)


def worker(
    target: Annotated[str, typer.Argument(metavar="MODULE:ATTR", show_default=False)],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            metavar="N",
            help="Executions run at once (default: the worker's).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            metavar="PORT",
            help="Serve Prometheus metrics on this port (default: the worker's setting).",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", metavar="LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise CliError(f"--log-level {log_level!r}: use debug, info, warning or error")
    the_worker = load_worker(target)
    if the_worker._started:
        raise CliError(f"{target} was already started: hand the CLI an unstarted worker")
    if not the_worker.workflow_names:
        raise CliError(f"{target} has no workflows registered: call worker.register(...) first")
    if concurrency is not None:
        the_worker.concurrency = concurrency
    if metrics_port is not None:
        the_worker.metrics_port = metrics_port
    configure_logging(level)
    describe(the_worker)
    the_worker.run()


def configure_logging(level: int) -> None:
    """Log to stderr at ``level``, each line naming the execution it is about.

    Unless the application configured the root logger already (then its handlers and
    format stay), a stderr handler with ``hydra.logs.ContextFormatter``: time, level,
    logger, ``<workflow>/<execution id>`` (``-`` for records about no execution), message.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(ContextFormatter())
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("hydra").setLevel(level)


def describe(w: Worker) -> None:
    engine = w.engine
    store_url = getattr(engine.store, "url", type(engine.store).__name__)
    output.line(
        "worker ",
        (w.worker_id, "bold"),
        f": {', '.join(w.workflow_names)} in namespace {engine.namespace} on {store_url}, "
        f"concurrency {w.concurrency}"
        + (f", metrics on :{w.metrics_port}" if w.metrics_port is not None else ""),
    )
