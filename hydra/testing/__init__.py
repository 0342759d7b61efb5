"""Testing workflows: an in-memory store, a fake clock, simulated workers and crashes.

``TestEnvironment`` runs workflows deterministically in the test's thread through the
same execution loop as the real ``Worker``; ``FakeClock`` skips sleeps of days;
``crash``/``pause`` kill or freeze a simulated worker at a point in a step. The pytest
plugin (``hydra_clock``, ``hydra_store``, ``hydra_env``, ``crash_worker``) loads itself.
``TCPProxy`` sits between a real store and its database server and drops or refuses
connections on cue (docs/testing.md). ``replay_check`` replays stored executions against
new code without running or writing anything (docs/deploys.md).
"""

from hydra.testing.clock import FakeClock
from hydra.testing.env import (
    PHASES,
    Event,
    Phase,
    SimulatedCrash,
    StuckExecutionError,
    TestEnvironment,
    UnfiredPlanError,
)
from hydra.testing.explore import CrashCase, CrashReport, CrashSafetyError, explore_crashes
from hydra.testing.history import HistoryFormatError, history_document, load_histories
from hydra.testing.memory import MemoryStore
from hydra.testing.proxy import TCPProxy
from hydra.testing.replay import replay_check
from hydra.testing.replay_report import ReplayReport, ReplayViolation, SkippedExecution

__all__ = [
    "PHASES",
    "CrashCase",
    "CrashReport",
    "CrashSafetyError",
    "Event",
    "FakeClock",
    "HistoryFormatError",
    "MemoryStore",
    "Phase",
    "ReplayReport",
    "ReplayViolation",
    "SimulatedCrash",
    "SkippedExecution",
    "StuckExecutionError",
    "TCPProxy",
    "TestEnvironment",
    "UnfiredPlanError",
    "explore_crashes",
    "history_document",
    "load_histories",
    "replay_check",
]
