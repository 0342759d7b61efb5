"""Every exception hydra raises or lets users raise."""

from __future__ import annotations


class HydraError(Exception):
    """Base class of hydra's own errors."""


class NonRetryableError(HydraError):
    """Raise it (or a subclass) from a step or a workflow to fail at once, without retries."""


class InvalidNameError(NonRetryableError, ValueError):
    """A name or key that some database could not store or compare exactly.

    Workflow names, namespaces, step and sleep names, idempotency keys, worker ids and
    cron job names must be non-empty strings of at most 255 characters, without leading
    or trailing whitespace, control characters (C0, DEL, C1: NUL, escape, newline...) or
    lone surrogates, so that every backend stores them alike. Raised inside a workflow
    (an invalid step or sleep name), it fails the execution at once: no retry would help.
    """


class StepFailedError(HydraError):
    """Raised inside the workflow when a step has used all its attempts.

    The workflow may catch it to compensate (refund a payment, release a reservation).
    If it escapes ``run``, the execution fails without further workflow attempts: the
    step already had its own retries, and compensation code may already have run.
    """

    def __init__(self, step_name: str, attempts: int, error_type: str, error_message: str) -> None:
        self.step_name = step_name
        self.attempts = attempts
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(
            f"step {step_name!r} failed after {attempts} attempt(s): {error_type}: {error_message}"
        )

    @property
    def last_error(self) -> str:
        """The last attempt's error as ``Type: message``."""
        return f"{self.error_type}: {self.error_message}"


class DuplicateStepError(HydraError):
    """A step (or sleep) name was used twice in one run of a workflow."""


class MisplacedCheckpointError(NonRetryableError, RuntimeError):
    """A step, sleep, receive, send, event, child or patch was called inside a step's
    function: checkpoints belong to the workflow's own code. Never retried: the same
    function would call it again."""


class WorkflowNotFoundError(HydraError):
    """No workflow of that name is registered here."""


class ExecutionNotFoundError(HydraError):
    """No execution with that id exists in this namespace."""


class ChildFailedError(HydraError):
    """Raised by ``hydra.wait_child`` (and ``call_child``) when the child execution
    failed or was cancelled. The parent may catch it to compensate; if it escapes
    ``run``, the parent fails without further attempts (every replay would raise it
    again). ``execution_id`` is the child's, ``status`` its final status (``failed`` or
    ``cancelled``), ``error`` its ``"Type: message"`` (None for a cancellation)."""

    def __init__(
        self,
        execution_id: str,
        status: str,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.status = str(status)
        self.error_type = error_type
        self.error_message = error_message
        self.error = f"{error_type}: {error_message}" if error_type else None
        why = f": {self.error}" if self.error else ""
        super().__init__(f"child execution {execution_id} {self.status}{why}")


class NonDeterminismError(HydraError):
    """The workflow's code no longer matches the history stored for an execution.

    Raised while a run replays: at a checkpoint position where the history has another
    checkpoint (a step, sleep, receive, send, event or child renamed, removed, reordered,
    or a new one inserted before existing checkpoints; a sleep that became a step), for a
    stored result that no longer decodes into the step's declared type, or when the code
    ends or raises before reaching the checkpoints it reached before. The execution is
    parked, not failed: no attempt is used, the error is shown, and it is tried again
    after a growing delay, so that a corrected deploy resumes it (``hydra executions
    retry`` at once). ``position`` is the checkpoint's index in the run (0-based),
    ``stored`` and ``code`` describe the two sides (None where a side has nothing).
    """

    def __init__(
        self,
        execution_id: str,
        position: int | None,
        stored: str | None,
        code: str | None,
        detail: str = "",
    ) -> None:
        self.execution_id = execution_id
        self.position = position
        self.stored = stored
        self.code = code
        where = "" if position is None else f" at checkpoint {position}"
        what = detail or f"the history has {stored or 'nothing'}, the code did {code or 'nothing'}"
        super().__init__(f"execution {execution_id} no longer matches its code{where}: {what}")


class ExecutionFinishedError(HydraError):
    """A message was sent to an execution that has already ended (``completed``,
    ``failed`` or ``cancelled``): nobody would ever receive it, so nothing was stored."""


class WaitTimeoutError(HydraError):
    """A wait ended at its deadline with nothing to show for it.

    Raised inside a workflow by ``hydra.receive`` when no message of its topic arrived
    before its timeout (the timeout is a stored deadline: a restart does not extend it,
    and every replay raises it again), and by ``Engine.get_event`` when the key was not
    set within its ``timeout``. A workflow may catch it (escalate, remind, give up).
    """


class LeaseLostError(HydraError):
    """This worker no longer owns the execution: nothing it writes for it may land.

    Raised when a fenced write matches no row: the lease expired and another worker took
    the execution over, or it was cancelled. The run is abandoned.
    """


class StepTimeoutError(HydraError):
    """A step attempt ran longer than its ``timeout``."""


class WorkflowTimeoutError(NonRetryableError):
    """The execution ran past its ``timeout``."""


class DatabaseUnavailableError(HydraError):
    """The database could not be reached; the message names the URL without its password."""


class SchemaNotReadyError(HydraError):
    """The database has no hydra schema (or an old one): run ``hydra migrate``."""


class PayloadError(HydraError, ValueError):
    """A value could not be encoded or decoded by the marshaller."""
