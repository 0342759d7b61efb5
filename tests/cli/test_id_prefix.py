"""Every command that takes an EXECUTION_ID accepts a unique prefix of it (at least 6
characters, compared exactly), as ``hydra dev run`` prints 8 characters of each id."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra_cli.session import MIN_ID_PREFIX, SHOWN_MATCHES

from .helpers import (
    assert_one_error_line,
    hydra_cli,
    hydra_script,
    sqlite_url,
    subprocess_env,
)

#: each command with an EXECUTION_ID, and what it prints to stdout on success
COMMANDS = {
    "trace": ["trace"],
    "show": ["executions", "show"],
    "cancel": ["executions", "cancel"],
    "retry": ["executions", "retry"],
}


def start_with_ids(url: str, ids: list[str], namespace: str = "default") -> None:
    """Start one (never run) execution per id, in ``namespace``."""
    chosen: Iterator[str] = iter(ids)
    store = hydra.SQLStore(url, auto_migrate=True)
    try:
        engine = hydra.Engine(store, namespace=namespace, id_factory=lambda: next(chosen))
        for _ in ids:
            engine.start_workflow("prefixed", None)
    finally:
        store.close()


def status_of(url: str, execution_id: str) -> str:
    store = hydra.SQLStore(url)
    try:
        return hydra.Engine(store).get_execution(execution_id).status.value
    finally:
        store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "prefix.db")


UNIQUE = "bd183f86-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
TWINS = ["a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"]


@pytest.fixture
def ids(url: str) -> None:
    start_with_ids(url, [UNIQUE, *TWINS])


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.usefixtures("ids")
def test_a_unique_prefix_names_the_execution(url: str, command: str) -> None:
    if command == "retry":  # retry wants a failed or cancelled execution
        assert hydra_cli("executions", "cancel", UNIQUE, "--db", url).exit_code == 0
    result = hydra_cli(*COMMANDS[command], UNIQUE[:8], "--db", url)
    assert result.exit_code == 0, result.output
    assert UNIQUE in result.stdout  # the whole id, as every command shows it
    if command == "cancel":
        assert result.stdout == f"cancelled {UNIQUE}\n"
        assert status_of(url, UNIQUE) == "cancelled"
    if command == "retry":
        assert status_of(url, UNIQUE) == "pending"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.usefixtures("ids")
def test_an_ambiguous_prefix_names_the_matches(url: str, command: str) -> None:
    result = hydra_cli(*COMMANDS[command], TWINS[0][:8], "--db", url)
    line = assert_one_error_line(result, contains="id prefix 'a1b2c3d4' is ambiguous")
    assert f"2 executions in namespace 'default' start with it ({TWINS[0]}, {TWINS[1]})" in line
    assert [status_of(url, t) for t in TWINS] == ["pending", "pending"]  # nothing cancelled


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.usefixtures("ids")
def test_a_short_prefix_is_refused(url: str, command: str) -> None:
    result = hydra_cli(*COMMANDS[command], UNIQUE[: MIN_ID_PREFIX - 1], "--db", url)
    assert_one_error_line(
        result,
        contains="no execution 'bd183' in namespace 'default' "
        "(an id prefix needs at least 6 characters)",
    )


@pytest.mark.usefixtures("ids")
def test_a_prefix_nothing_starts_with_is_not_found(url: str) -> None:
    result = hydra_cli("trace", "bd183f87", "--db", url)
    assert_one_error_line(result, contains="no execution 'bd183f87' in namespace 'default'")


@pytest.mark.usefixtures("ids")
def test_prefixes_compare_exactly(url: str) -> None:
    """Ids are compared exactly, so prefixes are too: letter case counts (on SQLite too,
    whose LIKE would ignore it), and % and _ are plain characters."""
    for given in (UNIQUE[:8].upper(), "bd183%", "bd18_f86", "a1b2c3d_"):
        assert_one_error_line(hydra_cli("trace", given, "--db", url), contains="no execution")


def test_a_whole_id_wins_over_longer_ids_it_starts(url: str) -> None:
    start_with_ids(url, ["order-1234", "order-1234-retry"])
    result = hydra_cli("executions", "show", "order-1234", "--json", "--db", url)
    assert result.exit_code == 0, result.output
    assert '"id": "order-1234"' in result.stdout


def test_many_matches_are_counted(url: str) -> None:
    many = [f"cafe0000-{i:04d}" for i in range(SHOWN_MATCHES + 3)]
    start_with_ids(url, many)
    line = assert_one_error_line(hydra_cli("trace", "cafe0000", "--db", url))
    shown = ", ".join(many[:SHOWN_MATCHES])
    assert f"8 executions in namespace 'default' start with it ({shown} and 3 more)" in line


def test_a_short_whole_id_still_works(url: str) -> None:
    start_with_ids(url, ["x1"])
    assert hydra_cli("trace", "x1", "--db", url).exit_code == 0


def test_a_prefix_in_another_namespace_is_hinted(url: str) -> None:
    start_with_ids(url, [UNIQUE], namespace="examples")
    result = hydra_cli("trace", UNIQUE[:8], "--db", url)
    hint = "it is in namespace 'examples': add --namespace examples"
    assert_one_error_line(result, contains=hint)
    assert hydra_cli("trace", UNIQUE[:8], "-n", "examples", "--db", url).exit_code == 0


def test_prefixes_on_every_sql_backend(sql_store_factory: Any) -> None:
    """The lookup on PostgreSQL and MySQL/MariaDB too (their own LIKE and collations)."""
    url = sql_store_factory.url
    stem = uuid.uuid4().hex[:8]  # ids are unique across a server's namespaces: fresh ones
    unique, twin_a, twin_b = f"{stem}aa-1", f"{stem}bb-1", f"{stem}bb-2"
    start_with_ids(url, [unique, twin_a, twin_b], namespace="cli-prefix")
    ns = ["--namespace", "cli-prefix", "--db", url]
    shown = hydra_cli("executions", "show", f"{stem}aa", "--json", *ns)
    assert shown.exit_code == 0, shown.output
    assert f'"id": "{unique}"' in shown.stdout
    ambiguous = hydra_cli("trace", f"{stem}bb", *ns)
    assert_one_error_line(ambiguous, contains=f"({twin_a}, {twin_b})")
    upper = hydra_cli("trace", f"{stem}AA".upper(), *ns)
    assert_one_error_line(upper, contains="no execution")


def test_dev_run_ids_trace_through_the_console_script(tmp_path: Path) -> None:
    """What a user does: copy the 8 characters ``dev run`` shows into ``hydra trace``."""
    url = sqlite_url(tmp_path / "prefix.db")
    start_with_ids(url, [UNIQUE])
    traced = subprocess.run(
        [str(hydra_script()), "trace", UNIQUE[:8], "--db", url],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.startswith("prefixed  pending\n")
    assert f"  execution  {UNIQUE}  (namespace default)" in traced.stdout.splitlines()
