"""Errors and exit codes, and the boundary that reports them.

Usage errors (a bad option value, a missing argument, an unknown option or command) are
Click's: ``HydraGroup.main`` prints each as one line ``error: <message> (see '... --help')``
on stderr, exit code 2, where Typer would draw a box.

Every command runs inside ``HydraGroup.invoke`` (the root group's class). Expected failures --
``CliError``, hydra's own errors, database/driver errors, OS errors -- become one line
``error: <message>`` on stderr and exit code ``EXIT_ERROR`` (2); with ``--debug`` the traceback
is printed first. Anything else is a bug in hydra: its traceback is always printed, then
``error: internal error ...``, exit code ``EXIT_INTERNAL`` (1). Passwords of the database URLs
the command used are scrubbed from everything printed here.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from hydra import HydraError

from . import output
from .helptext import HelpGroup, use_hydra_help
from .visible import visible

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_ERROR = 2
EXIT_NOT_COMPLETED = 3  # hydra dev run: an execution failed, was cancelled or is parked

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 2 usage, configuration or database error "
    "(one line on stderr starting with 'error:'); 3 hydra dev run: an execution failed, "
    "was cancelled or is parked; 1 hydra replay-check: an execution no longer replays, "
    "else an internal error (a bug: please report it)."
)

# user:password@ in anything that looks like a URL, for URLs too malformed to parse (the
# literal placeholder "password", as in usage examples, is left alone).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):(?!password@)(\S+)@")
# Shorter registered secrets are only scrubbed in their URL form, by _URL_PASSWORD.
_MIN_SECRET = 4


class CliError(Exception):
    """An expected failure, reported as ``error: <message>`` with exit code 2."""


@dataclass
class CliState:
    """Per-invocation state shared by the root callback, the commands and the boundary."""

    debug: bool = False
    secrets: set[str] = field(default_factory=set)

    def hide(self, secret: str | None) -> None:
        """Never print ``secret`` (a database password) in errors or tracebacks."""
        if secret:
            self.secrets.add(secret)

    def scrub(self, text: str) -> str:
        text = _URL_PASSWORD.sub(r"\1:***@", text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= _MIN_SECRET:
                text = text.replace(secret, "***")
        return text


def state(ctx: typer.Context) -> CliState:
    """The invocation's ``CliState`` (created by the root callback)."""
    found = ctx.find_object(CliState)
    if found is None:  # a command invoked without the root app (library use)
        found = ctx.ensure_object(CliState)
    return found


def one_line(text: str) -> str:
    """A message on one line: its lines joined with ``; ``, control characters (from
    stored values or other APIs' replies it quotes) made visible."""
    lines = (part.strip() for part in text.strip().split("\n"))
    return visible("; ".join(part for part in lines if part))


def describe(exc: BaseException) -> str | None:
    """The message for an expected error, or None if ``exc`` is a bug."""
    if isinstance(exc, CliError | HydraError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig) if exc.orig is not None else str(exc)
        return f"database error: {reason}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {exc}"
    if isinstance(exc, OSError):
        return str(exc)
    if type(exc).__name__ == "CommandError" and type(exc).__module__.startswith("alembic"):
        return f"migration failed: {exc}"
    return None


def _passes_through(exc: BaseException) -> bool:
    """Typer/Click control flow (exit, abort, usage errors): for Typer and ``main``."""
    if isinstance(exc, typer.Exit | typer.Abort | BrokenPipeError):
        return True  # Typer exits quietly on a closed pipe (``hydra ... | head``)
    # Click's own exceptions (vendored inside newer Typer versions, plain click in older).
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def report(exc: BaseException, cli_state: CliState) -> int:
    """Print ``exc`` as the CLI reports errors; return the exit code."""
    message = describe(exc)
    if message is None or cli_state.debug:
        trace = "".join(traceback.format_exception(exc))
        sys.stderr.write(visible(cli_state.scrub(trace), multiline=True))
        sys.stderr.flush()
    if message is None:
        message = f"internal error: {type(exc).__name__}: {exc} (please report this bug)"
        code = EXIT_INTERNAL
    else:
        code = EXIT_ERROR
    output.stderr().print(
        output.styled(("error:", "bold red"), " ", cli_state.scrub(one_line(message)))
    )
    return code


def _is_click_exception(exc: BaseException) -> bool:
    # Click's exceptions are vendored inside newer Typer versions (plain click in older):
    # recognised by class name, as in ``_passes_through``.
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def report_usage_error(exc: Exception) -> int:
    """Print a Click usage error (bad option value, missing argument, unknown option or
    command) as one line ``error: <message>`` with the hint to ``--help``; return its exit
    code (2 for usage errors). Typer would draw a box of several lines instead."""
    format_message = getattr(exc, "format_message", None)
    message = str(format_message()) if callable(format_message) else str(exc)
    # Typer validates values with pydantic, whose messages open with "Value error, ".
    message = message.replace("Value error, ", "").rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        message += f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    line = CliState().scrub(one_line(message))
    output.stderr().print(output.styled(("error:", "bold red"), " ", line))
    code = getattr(exc, "exit_code", EXIT_ERROR)
    return code if isinstance(code, int) else EXIT_ERROR


def _exit_code_of(exc: Exception) -> int:
    """What standalone Click does with an exception that leaves a command, except that a
    usage error is one line (``report_usage_error``); anything else is re-raised."""
    name = type(exc).__name__
    if name == "NoArgsIsHelpError":  # ``hydra executions``: the help is already printed
        return int(getattr(exc, "exit_code", EXIT_ERROR))
    if name == "Abort":  # end of input at a prompt
        output.stderr().print("Aborted!")
        return EXIT_INTERNAL
    if _is_click_exception(exc):
        return report_usage_error(exc)
    raise exc


class HydraGroup(HelpGroup):
    """The root command group: its ``main`` reports usage errors on one line, and its
    ``invoke`` is the CLI's error boundary for everything the commands raise. It also gives
    the whole command tree hydra's ``--help`` rendering (``helptext``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use_hydra_help(self)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; as a program (``standalone_mode``), exit with its exit code.

        Typer is run in non-standalone mode so that a usage error reaches this method as an
        exception instead of being printed as a box: ``report_usage_error`` prints it.
        """
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except Exception as exc:
            sys.exit(_exit_code_of(exc))
        # Non-standalone Typer returns the code of a typer.Exit, else the command's result.
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if _passes_through(exc):
                raise
            found = ctx.find_object(CliState)
            code = report(exc, found if found is not None else CliState())
            raise typer.Exit(code) from exc
