"""What ``hydra.testing.replay_check`` found: ``ReplayReport`` and its ``ReplayViolation``s.

Kept apart from the replay itself (``hydra.testing.replay``) so that the CLI can render a
report (text or JSON) without caring how it was made.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ReplayViolation:
    """One stored execution the given code no longer replays.

    ``position`` is the checkpoint's index in the run (0-based; None when the mismatch has
    no position, such as an input that no longer decodes), ``stored`` and ``code`` describe
    the two sides (None where a side has nothing), ``message`` is what a worker would
    park the execution with (``hydra.NonDeterminismError``'s message).
    """

    execution_id: str
    workflow_name: str
    #: the execution's status in the store it was read from
    status: str
    position: int | None
    stored: str | None
    code: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.workflow_name} {self.execution_id}: {self.message}"


@dataclass(frozen=True, slots=True)
class SkippedExecution:
    """A stored execution not checked: no code was given for its workflow."""

    execution_id: str
    workflow_name: str
    status: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """The result of a replay check: ``ok`` when every checked execution replays."""

    #: how many executions were replayed against the code
    checked: int
    violations: list[ReplayViolation] = field(default_factory=list)
    #: executions of workflows no code was given for (not violations)
    skipped: list[SkippedExecution] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        """One line: ``12 executions checked, 1 violation, 3 skipped (no code for ...)``."""
        plural = "" if self.checked == 1 else "s"
        line = f"{self.checked} execution{plural} checked, {len(self.violations)} violation"
        line += "" if len(self.violations) == 1 else "s"
        if self.skipped:
            names = Counter(s.workflow_name for s in self.skipped)
            listed = ", ".join(repr(n) for n in sorted(names))
            line += f", {len(self.skipped)} skipped (no code given for workflow {listed})"
        return line

    def format(self) -> str:
        """One line per violation, then the summary line."""
        return "\n".join([*(str(v) for v in self.violations), self.summary()])

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON data (``hydra replay-check --json``)."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "violations": [asdict(v) for v in self.violations],
            "skipped": [asdict(s) for s in self.skipped],
        }

    def __str__(self) -> str:
        return self.format()


__all__ = ["ReplayReport", "ReplayViolation", "SkippedExecution"]
