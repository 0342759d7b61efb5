"""``hydra dev run FILE``: run a file's workflows in this process and watch them.

The dev-run hook: FILE may define ``def dev(engine: hydra.Engine) -> list[str] | None`` at
module level. ``hydra dev run`` calls it once, before the workers start, to start the
executions to watch; it returns their ids (optional: every execution it starts through
``engine`` is watched anyway). ``--start NAME [--input JSON]`` starts one execution
instead of calling the hook.

Workers are ordinary ``hydra.Worker`` threads on one engine. The live view reads the
executions back from the database (so it shows exactly what ``hydra trace`` will), plus
the step each local run is inside right now, which only this process can know: an
observer of the engine (``LiveObserver``) keeps each run as it starts.

An input is checked before anything is stored where the code is at hand: ``--start NAME
--input JSON`` (a one-line error) and the hook's ``engine.start_workflow(workflow, ...)``
given the workflow itself (``PayloadError``, as ``Engine`` always does) are decoded into
the workflow's input type as a worker would decode them. A start by name is stored
unchecked, as ``Engine`` stores it (the execution then fails with ``PayloadError``).
The ids the hook starts are recorded by the ``LiveObserver`` (``execution_started``).

Log lines (``devlogs``): the workflows' own, from ``--log-level`` up, and hydra's warnings
are printed among the progress lines, or above the live view, by the watch loop.

Without ``--fast-forward`` the engine runs on its default clock: the database's time on
PostgreSQL and MySQL/MariaDB (``hydra.clock.DatabaseClock``), this machine's on SQLite, as
every other worker of that database does.

``--fast-forward`` runs the engine and the workers on a ``hydra.testing.FakeClock``
flowing at rate 1 over that same default clock (so it reads the default clock plus an
offset). Whenever nothing is running here and nothing is due, the offset jumps to the
earliest wake time in the database (``Store.next_wake_at``) or the next cron slot of the
dev workers, so sleeps, step backoffs, cron slots and workflow retry delays are skipped
while everything else (leases, ordering, the claim query) works as in production. Stored
times are virtual: a 48-hour sleep ends 48 hours "later" in the trace. The jumps are
local to this process by design: other workers sharing the database (not part of this dev
run) keep the database's time and see the virtual times as far in the future. The real
part of the time is never this machine's wall clock when the database has its own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from hydra import Engine, Status, Worker, Workflow
from hydra.clock import Clock, default_clock
from hydra.errors import PayloadError
from hydra.events import Observer, RunInfo
from hydra.marshal import JSONMarshaller, Marshaller
from hydra.queues import held_back_until
from hydra.store.base import Claim, Store
from hydra.testing.clock import FakeClock

from . import childview, devlogs, output, render
from . import ui as ui_command
from .commands import hydra_command, trace_command
from .db import DEFAULT_NAMESPACE, Database, DbOption, NamespaceOption, database, namespace
from .db import open_store as open_db_store
from .errors import EXIT_NOT_COMPLETED, CliError
from .loader import DEV_HOOK, WorkflowFile, find_workflows, import_file
from .render import RunningStep, View
from .session import style_for
from .visible import visible

if typing.TYPE_CHECKING:
    from hydra.ui.serve import BackgroundServer

app = typer.Typer(
    name="dev",
    help="Run workflows locally while you write them.",
    no_args_is_help=True,
)

EXIT_INTERRUPTED = 130
# How often the view reads the executions back, and how often idle workers poll (a
# start in this process wakes them at once; polls find sleeps and backoffs that are due).
# Fast-forward polls faster: every jump of the clock is followed by a poll.
WATCH_POLL_S = 0.1
#: how long due executions must wait with no run before fast-forward takes them for held
#: back by a queue's limits (a rate window) and jumps to when that changes
HELD_BACK_S = 0.3
FAST_WATCH_POLL_S = 0.02
POLL_INTERVAL = timedelta(milliseconds=100)
FAST_POLL_INTERVAL = timedelta(milliseconds=10)
SHUTDOWN_TIMEOUT_S = 5.0

RUN_HELP = (
    "Run the workflows of a Python FILE in this process and watch them run.\n\n"
    "FILE is imported by path. Every hydra.Workflow instance it holds at module level (and "
    "in a WORKFLOWS list) is registered on --workers worker threads, each running up to "
    "--concurrency executions, on the database (by default the embedded SQLite file "
    ".hydra/hydra.db).\n\n"
    "What runs: with --start NAME, one execution of workflow NAME, with --input JSON as its "
    "input (refused, with nothing stored, if it does not decode into the workflow's input "
    f"type). Otherwise FILE's dev-run hook: a module-level function {DEV_HOOK}(engine) that "
    "starts the executions to watch (engine.start_workflow(...)) and returns their ids.\n\n"
    "A live view shows each execution and its steps as they happen (status, attempts, "
    "durations, errors, sleeps with their wake time); without a terminal, one line per "
    "change. At the end it prints each execution's id and the hydra trace command that "
    "shows it.\n\n"
    "--fast-forward runs on virtual time: whenever nothing is due, the clock jumps to the "
    "next wake time, so sleeps and retry backoffs take no time (the times stored are "
    "virtual).\n\n"
    "Log lines are shown among the progress (above the live view): what the workflows log "
    "through ctx.logger (once each, not again when a run replays) and cron handlers through "
    "theirs, from --log-level up, and hydra's own warnings and errors.\n\n"
    "An execution whose code no longer matches its history (a workflow changed under an "
    "execution of an earlier run: NonDeterminismError) is parked, shown as parked with the "
    "mismatch; as this run's code cannot change, the watch does not wait for it: it ends "
    "when every execution has ended or is parked.\n\n"
    "Exit code 0 when every execution completed, 3 when one failed, was cancelled or is "
    "parked, 130 on Ctrl-C or SIGTERM (the executions stay in the database; the next run "
    "resumes them)."
)


class LiveObserver(Observer):
    """One of the engine's observers: keeps the latest run of each execution, to show
    the step it is inside right now."""

    def __init__(self) -> None:
        #: the executions started through the engine while ``recording`` (the dev hook's)
        self.started: list[str] = []
        self.recording = True
        self._runs: dict[str, RunInfo] = {}
        self._first_seen: dict[tuple[str, str, int], int] = {}

    def execution_started(self, execution_id: str, workflow_name: str) -> None:
        if self.recording and execution_id not in self.started:
            self.started.append(execution_id)

    def run_started(self, run: RunInfo, claim: Claim) -> None:
        self._runs[run.execution_id] = run

    def worker(self, execution_id: str) -> str | None:
        run = self._runs.get(execution_id)
        return run.lease.worker_id if run is not None else None

    def running(self, execution_id: str, now_ms: int) -> tuple[RunningStep, ...]:
        """The steps a local run is inside right now, in the order they were entered
        (several under ``hydra.gather``), each since it was first seen here."""
        run = self._runs.get(execution_id)
        if run is None or run.lost:
            return ()
        steps = []
        for name in run.running_steps:
            record = run.steps.get(name)
            attempt = (record.attempts if record is not None else 0) + 1
            since = self._first_seen.setdefault((execution_id, name, attempt), now_ms)
            steps.append(RunningStep(name, attempt, since))
        return tuple(steps)


@dataclass
class DevOptions:
    file: str
    start: str | None
    payload: Any
    fast_forward: bool
    workers: int
    concurrency: int
    namespace: str
    #: the lowest level of the workflows' log lines shown (hydra's own: WARNING up)
    log_level: int = logging.INFO
    #: --input as given (None without it), for error messages
    input_text: str | None = None
    #: --ui: serve the web UI on this port of 127.0.0.1 while the run lasts (None: no UI)
    ui_port: int | None = None


def parse_input(value: str | None, start: str | None) -> Any:
    if value is None:
        return None
    if start is None:
        raise CliError("--input needs --start NAME (the workflow to start with that input)")
    try:
        return json.loads(value)
    except ValueError as exc:
        raise CliError(f"malformed --input JSON: {exc} (in {value!r})") from exc


def type_label(tp: Any) -> str:
    """A type as a user wrote it: ``str``, ``Order``, ``list[int]``, ``str | None``."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return str(tp).replace("typing.", "")


def input_mismatch(workflow: Workflow[Any], payload: Any, marshaller: Marshaller) -> str | None:
    """Why ``payload`` would not decode into the workflow's input type, or None if it
    would: the round trip a worker makes (encoded at start, decoded before ``run``)."""
    try:
        marshaller.unmarshal(marshaller.marshal(payload), workflow.input_type())
    except PayloadError as exc:
        return str(exc)
    return None


def check_start_input(found: WorkflowFile, opts: DevOptions) -> None:
    """``--start NAME [--input JSON]``: fail before touching the database if the input
    does not decode into the workflow's input type (a worker would fail it later)."""
    if opts.start is None:
        return
    workflow = next(wf for wf in found.workflows if wf.name == opts.start)
    why = input_mismatch(workflow, opts.payload, JSONMarshaller())
    if why is None:
        return
    given = (
        "null (no --input given)"
        if opts.input_text is None
        else f"--input {render.one_line(opts.input_text, 200)}"
    )
    raise CliError(
        f"workflow {opts.start!r} takes {type_label(workflow.input_type())}, not {given}: {why}"
    )


def check_what_to_start(found: WorkflowFile, opts: DevOptions) -> None:
    """Fail before touching the database if there is nothing (valid) to start."""
    if opts.start is not None:
        names = [wf.name for wf in found.workflows]
        if opts.start not in names:
            raise CliError(
                f"--start {opts.start!r}: {opts.file} has no workflow of that name "
                f"(it has {', '.join(repr(n) for n in names)})"
            )
    elif found.hook is None:
        raise CliError(
            f"{opts.file} has no {DEV_HOOK}(engine) hook: pass --start NAME [--input JSON] "
            "to say what to run"
        )


def start_executions(
    engine: Engine, observer: LiveObserver, found: WorkflowFile, opts: DevOptions
) -> list[str]:
    check_what_to_start(found, opts)
    if opts.start is not None:
        return [engine.start_workflow(opts.start, opts.payload)]
    assert found.hook is not None
    try:
        returned = found.hook(engine)
    except Exception as exc:
        raise CliError(
            f"{DEV_HOOK}(engine) in {opts.file} raised {type(exc).__name__}: {exc}"
        ) from exc
    ids: list[str] = []
    if isinstance(returned, str):
        ids.append(returned)
    elif isinstance(returned, Iterable):
        ids.extend(str(x) for x in returned)
    elif returned is not None:
        raise CliError(
            f"{DEV_HOOK}(engine) in {opts.file} returned {type(returned).__name__}: it should "
            "return the ids of the executions it started (or nothing)"
        )
    for execution_id in observer.started:
        if execution_id not in ids:
            ids.append(execution_id)
    if not ids:
        raise CliError(f"{DEV_HOOK}(engine) in {opts.file} started no executions")
    for execution_id in ids:
        engine.get_execution(execution_id)  # an id the hook made up: a clear error
    return ids


class FastForward:
    """Jumps the fast-forward clock to the next wake time when the dev workers are idle."""

    def __init__(
        self, clock: FakeClock, store: Store, ns: str, names: Sequence[str], workers: list[Worker]
    ) -> None:
        self.clock = clock
        self.store = store
        self.namespace = ns
        self.names = list(names)
        self.workers = workers
        self.worker_ids = {w.worker_id for w in workers}
        # since when (monotonic s) due executions have waited with no run here
        self._held_since: float | None = None

    def _busy(self) -> bool:
        return any(w.in_flight for w in self.workers)

    def maybe_jump(self) -> bool:
        if self._busy():
            return False
        due = wake = self._next_due()
        now = self.clock.now_ms()
        if wake is not None and wake <= now:
            wake = self._after_held_back(now)
        else:
            self._held_since = None
        if wake is None or wake <= now:
            return False
        # A run of ours whose claim committed but which its worker has not counted yet:
        # its wake time is its lease expiry, and jumping there would expire the lease.
        for name in self.names:
            running = self.store.list_executions(
                self.namespace, status=Status.RUNNING, workflow_name=name, limit=100
            )
            if any(row.lease_owner in self.worker_ids for row in running):
                return False
        if self._busy() or self._next_due() != due:
            return False
        self.clock.set_ms(wake)
        return True

    def _after_held_back(self, now: int) -> int | None:
        """Due executions and no run here: if it stays so for a moment (not a claim about
        to happen), a queue's limits hold them back (a rate window): the next time that
        changes, a window reopening or something waking later."""
        seen = time.monotonic()
        if self._held_since is None:
            self._held_since = seen
            return None
        if seen - self._held_since < HELD_BACK_S:
            return None
        later = [
            held_back_until(self.store, self.namespace, self.names, now_ms=now),
            *(w.next_cron_due_ms() for w in self.workers),
        ]
        known = [t for t in later if t is not None and t > now]
        return min(known) if known else None

    def _next_due(self) -> int | None:
        """The earliest of the executions' wake times and the cron slots."""
        dues = [self.store.next_wake_at(self.namespace, self.names)]
        dues += [w.next_cron_due_ms() for w in self.workers]
        known = [d for d in dues if d is not None]
        return min(known) if known else None


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the watch like Ctrl-C does (workers shut down, ids printed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class DevRun:
    """One ``hydra dev run``: set up, start, watch, summarise."""

    def __init__(self, opts: DevOptions, target: Database, console: Console) -> None:
        self.opts = opts
        self.target = target
        self.console = console
        #: the log lines to show, collected while ``run`` runs
        self.logs = devlogs.DevLogs(opts.log_level)

    def run(self) -> int:
        found = find_workflows(self.opts.file, import_file(self.opts.file))
        check_what_to_start(found, self.opts)
        check_start_input(found, self.opts)
        store = open_db_store(self.target, create=True)
        try:
            with devlogs.collected(self.logs):
                return self._run(found, store)
        finally:
            store.close()

    def _run(self, found: WorkflowFile, store: Store) -> int:
        opts = self.opts
        # The time base every worker of this database uses (the database's own clock on
        # PostgreSQL and MySQL/MariaDB); --fast-forward adds its local jumps to it.
        base = default_clock(store)
        jump_clock = FakeClock(base.now(), rate=1.0, base=base) if opts.fast_forward else None
        clock: Clock = jump_clock if jump_clock is not None else base
        observer = LiveObserver()
        engine = Engine(store, namespace=opts.namespace, clock=clock, observers=[observer])
        pid = os.getpid()
        workers = [
            Worker(
                engine,
                worker_id=f"dev-{pid}-{i + 1}",
                concurrency=opts.concurrency,
                poll_interval=FAST_POLL_INTERVAL if opts.fast_forward else POLL_INTERVAL,
                heartbeat_interval=timedelta(seconds=2),
                claim_timeout=timedelta(seconds=30),
            )
            for i in range(opts.workers)
        ]
        for worker in workers:
            for wf in found.workflows:
                worker.register(wf)
        ids = start_executions(engine, observer, found, opts)
        observer.recording = False  # later starts (cron slots) are not the hook's
        names = [wf.name for wf in found.workflows]
        self._intro(names, ids)
        fast = (
            FastForward(jump_clock, store, engine.namespace, names, workers)
            if jump_clock is not None
            else None
        )
        ui = self._start_ui(store, engine)
        for worker in workers:
            worker.start()
        interrupted = False
        try:
            with _sigterm_interrupts():
                views = self._watch(engine, observer, ids, fast, jump_clock)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for worker in workers:
                worker.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
            if ui is not None:
                ui.stop()
            self._print_logs()
        if interrupted:
            now = clock.now_ms()
            views = [View(engine.get_execution(eid)) for eid in ids]
        else:
            now = clock.now_ms()
        return self._summary(views, now, interrupted)

    def _start_ui(self, store: Store, engine: Engine) -> BackgroundServer | None:
        """With --ui: the web UI on this run's store, namespace and clock, on a thread."""
        if self.opts.ui_port is None:
            return None
        try:
            from hydra.ui import create_app
            from hydra.ui.serve import BackgroundServer
        except ImportError as exc:
            raise CliError(f"--ui: {ui_command.MISSING_EXTRA} ({exc})") from exc
        app = create_app(store, engine.namespace, engine=engine, allow_actions=True)
        try:
            server = BackgroundServer(app, "127.0.0.1", self.opts.ui_port).start()
        except (OSError, OverflowError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise CliError(
                f"--ui: cannot listen on 127.0.0.1:{self.opts.ui_port}: {why} "
                "(--ui-port N picks another port)"
            ) from exc
        note = Text("web UI: ", "bold")
        note.append(server.url)
        note.append(" (actions on; it stops with this run: `hydra ui` serves the same)", "dim")
        self.console.print(note)
        return server

    def _print_logs(self) -> None:
        """The log lines collected since the last call (above the live view, if any)."""
        for line in self.logs.drain():
            self.console.print(line)

    def _intro(self, names: list[str], ids: list[str]) -> None:
        intro = Text("hydra dev run ", "bold")
        intro.append(visible(self.opts.file))
        intro.append(f": {len(ids)} execution{'s' if len(ids) != 1 else ''} of ", "dim")
        intro.append(visible(", ".join(names)))
        where = f" on {self.target.display}, namespace {self.opts.namespace}"
        intro.append(visible(where), "dim")
        if self.opts.fast_forward:
            intro.append(" (fast-forward: virtual time)", "dim")
        self.console.print(intro)

    def _views(
        self, engine: Engine, observer: LiveObserver, ids: list[str], now: int
    ) -> list[View]:
        views = []
        for eid in ids:
            execution = engine.get_execution(eid)
            running = () if execution.terminal else observer.running(eid, now)
            view = View(
                execution,
                running=running[0] if running else None,
                running_steps=running,
                worker=observer.worker(eid),
            )
            # The children's statuses (one read, for an execution that started some):
            # what its start rows show, and how a child its wait took the end of ended.
            views.append(childview.load(engine, view, ends=False))
        return views

    def _footer(self, views: list[View], clock: FakeClock | None) -> Text:
        done = sum(1 for v in views if v.execution.terminal)
        footer = Text(f"{done}/{len(views)} finished", "dim")
        parked = sum(1 for v in views if v.execution.parked)
        if parked:
            footer.append(f" · {parked} parked", "yellow")
        if clock is not None:
            footer.append(f" · fast-forward skipped {render.fmt_duration(clock.skipped_ms)}", "dim")
        elif any(v.execution.status == Status.SLEEPING for v in views):
            footer.append(" · sleeping: --fast-forward skips sleeps and backoffs", "dim")
        footer.append(" · Ctrl-C stops (executions stay in the database)", "dim")
        return footer

    def _watch(
        self,
        engine: Engine,
        observer: LiveObserver,
        ids: list[str],
        fast: FastForward | None,
        clock: FakeClock | None,
    ) -> list[View]:
        console = self.console
        style = style_for(console)
        pause = WATCH_POLL_S if fast is None else FAST_WATCH_POLL_S
        if console.is_terminal:
            with Live(console=console, auto_refresh=False, transient=False) as live:
                while True:
                    now = engine.clock.now_ms()
                    views = self._views(engine, observer, ids, now)
                    frame = render.live_frame(views, now, style, self._footer(views, clock))
                    self._print_logs()
                    live.update(frame, refresh=True)
                    if all(_settled(v) for v in views):
                        return views
                    if fast is None or not fast.maybe_jump():
                        time.sleep(pause)
        printer = render.ProgressPrinter()
        while True:
            now = engine.clock.now_ms()
            views = self._views(engine, observer, ids, now)
            self._print_logs()
            for view in views:
                for change in printer.changes(view, now):
                    console.print(change)
            if all(_settled(v) for v in views):
                return views
            if fast is None or not fast.maybe_jump():
                time.sleep(pause)

    def _summary(self, views: list[View], now: int, interrupted: bool) -> int:
        console = self.console
        completed = [v for v in views if v.execution.status == Status.COMPLETED]
        console.print()
        if interrupted:
            console.print(
                Text(
                    "interrupted: the executions stay in the database; "
                    "`hydra dev run` again resumes them",
                    "yellow",
                )
            )
        elif len(completed) == len(views):
            done = "the execution" if len(views) == 1 else f"all {len(views)} executions"
            console.print(Text(f"{done} completed", "green"))
        else:
            parked = sum(1 for v in views if v.execution.parked)
            why = f" ({parked} parked: the code no longer matches their history)" if parked else ""
            console.print(
                Text(
                    f"{len(views) - len(completed)} of {len(views)} executions did not "
                    f"complete{why}",
                    "bold red",
                )
            )
        names = [visible(v.execution.workflow_name) for v in views]
        width = max(len(name) for name in names)
        for view, name in zip(views, names, strict=True):
            ex = view.execution
            line = Text("  ")
            line.append_text(render.status_text(f"{render.shown_status(ex):<9}"))
            line.append(f"  {name:<{width}}  {visible(ex.id)}")
            if ex.error_type is not None and (ex.status == Status.FAILED or ex.parked):
                line.append("  ")
                line.append(
                    render.one_line(f"{ex.error_type}: {ex.error_message or ''}", 100), "red"
                )
            console.print(line)
        console.print(Text("trace them with:" if len(views) > 1 else "trace it with:", "dim"))
        for view in views:
            command = trace_command(view.execution.id, self.target, self.opts.namespace)
            console.print(Text("  " + visible(command)))
        if interrupted:
            return EXIT_INTERRUPTED
        return 0 if len(completed) == len(views) else EXIT_NOT_COMPLETED


def _settled(view: View) -> bool:
    """Nothing more to watch: ended, or parked (its code cannot change in this run, so
    each of its next tries would park it again)."""
    return view.execution.terminal or view.execution.parked


@app.command("run", help=RUN_HELP, short_help="Run a file's workflows here, with a live view.")
def run(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", show_default=False)],
    start: Annotated[
        str | None,
        typer.Option("--start", metavar="NAME", help="Start one execution of this workflow."),
    ] = None,
    input_json: Annotated[
        str | None,
        typer.Option("--input", metavar="JSON", help="The --start execution's input, as JSON."),
    ] = None,
    fast_forward: Annotated[
        bool,
        typer.Option("--fast-forward", help="Virtual time: skip sleeps and retry backoffs."),
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, metavar="N", help="Worker threads to run.")
    ] = 1,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, metavar="N", help="Executions each worker runs at once."
        ),
    ] = 4,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="Show the workflows' log lines from this level up: debug, info, warning or "
            "error (hydra's own: warning and up).",
        ),
    ] = "info",
    ui: Annotated[
        bool,
        typer.Option("--ui", help="Serve the web UI (hydra ui) beside the run, actions on."),
    ] = False,
    ui_port: Annotated[
        int,
        typer.Option("--ui-port", metavar="PORT", help="The --ui port."),
    ] = ui_command.DEFAULT_PORT,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    payload = parse_input(input_json, start)
    level = devlogs.parse_level(log_level)
    opts = DevOptions(
        file,
        start,
        payload,
        fast_forward,
        workers,
        concurrency,
        namespace(ns),
        log_level=level,
        input_text=input_json,
        ui_port=ui_port if ui else None,
    )
    target = database(ctx, db)
    code = DevRun(opts, target, output.stdout()).run()
    if code:
        raise typer.Exit(code)


__all__ = ["LiveObserver", "app", "hydra_command", "trace_command"]
