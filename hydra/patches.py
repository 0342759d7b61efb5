"""``hydra.patched``: the supported way to change a workflow's code under live executions.

``if hydra.patched(ctx, "fraud-check"): <new code>`` answers True for an execution that
gets there with no later checkpoint stored (new code may run), False for one whose
history already goes past this point (it ran the old code there, and must replay it).
The answer is a checkpoint of its own (kind ``patch``, named ``patch:<id>``), so every
later run of the execution gets the same answer whatever the timing. It has no position
in the history: a patch call removed from the code later (the last step of the patch,
deprecate, remove cycle) is not a mismatch.
"""

from __future__ import annotations

from hydra.errors import DuplicateStepError
from hydra.run import Run
from hydra.status import StepStatus
from hydra.store.base import StepRow
from hydra.workflow import validate_name


def patched(run: Run, patch_id: str) -> bool:
    """See ``hydra.patched``."""
    validate_name(patch_id, "patch id")
    name = f"patch:{patch_id}"
    run.guard(name, "patch")
    existing = run.steps.get(name)
    if existing is not None:
        if existing.kind != "patch":
            raise DuplicateStepError(f"patch name {name!r} is already used by a {existing.kind}")
        return existing.output == b"true"
    answer = not run.replaying  # a later checkpoint is stored: the old code ran here
    run.note_position(name)
    now = run.clock.now_ms()
    row = StepRow(
        execution_id=run.execution_id,
        name=name,
        order=run.position,
        status=StepStatus.COMPLETED,
        attempts=1,
        output=b"true" if answer else b"false",
        started_at=now,
        completed_at=now,
        kind="patch",
        detail=run.detail_for(name, {"patch": patch_id}),
    )
    if run.hooks is not None:
        run.hooks.step_reached(run, name)
    run.save_checkpoint(row, now)
    if run.hooks is not None:
        run.hooks.checkpoint_written(run, name)
    return answer
