"""The messages' one-statement forms and their fallbacks.

``SQLStore`` sends with an insert that does nothing for a taken id or key (PostgreSQL,
SQLite 3.35+; on PostgreSQL with the wake-up and NOTIFY in the same statement) and takes a
message with one ``UPDATE ... RETURNING`` where the database has it. Where it has not
(MySQL/MariaDB, an older SQLite) the store looks a message up before a plain INSERT and
takes one with a locked SELECT and an UPDATE. MySQL/MariaDB run the fallbacks on Core
connections; here they run on the driver path too (SQLite, PostgreSQL), against the
whole ``MessageStore`` contract.
"""

from __future__ import annotations

import pytest

from hydra.store.base import Store
from hydra.store.sql import SQLStore
from hydra.testing.contract import Check, messages
from tests.conftest import BackendStoreFactory


def without_one_statement_forms(factory: BackendStoreFactory) -> SQLStore:
    store = factory()
    assert isinstance(store, SQLStore)
    store._insert_new_message = None
    store._waking_insert = None
    store._take_message = None
    return store


@pytest.mark.parametrize("check", messages.CHECKS, ids=lambda c: c.__name__[len("check_") :])
def test_message_contract_with_the_fallbacks(
    check: Check, sql_store_factory: BackendStoreFactory
) -> None:
    if sql_store_factory.backend == "mysql":
        pytest.skip("MySQL/MariaDB always run the fallbacks (test_store_contract)")

    def make() -> Store:
        return without_one_statement_forms(sql_store_factory)

    check(make)


def test_the_one_statement_forms_are_used(sql_store_factory: BackendStoreFactory) -> None:
    """Which backends have which form (so the contract run on each covers the fast one)."""
    store = sql_store_factory()
    assert isinstance(store, SQLStore)
    backend = sql_store_factory.backend
    assert (store._insert_new_message is not None) == (backend in ("sqlite", "postgres"))
    assert (store._waking_insert is not None) == (backend == "postgres")
    assert (store._take_message is not None) == (backend in ("sqlite", "postgres"))
