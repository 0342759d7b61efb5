"""The store contract (``hydra.testing.contract``) on every backend: every check, as one
test per backend and check (``test_contract[postgres-first_claim]``).

A check that needs a capability the store lacks (``supports_notify``,
``shared_across_processes``) is skipped by that flag, never by backend name.
"""

from __future__ import annotations

import inspect

import pytest

from hydra.testing import contract
from hydra.testing.contract import Check, StoreFactory


def check_id(check: Check) -> str:
    return check.__name__.removeprefix("check_")


@pytest.mark.parametrize("check", contract.ALL_CHECKS, ids=check_id)
def test_contract(check: Check, store_factory: StoreFactory) -> None:
    probe = store_factory()
    try:
        reason = contract.unsupported_reason(check, probe)
    finally:
        probe.close()
    if reason is not None:
        pytest.skip(reason)
    check(store_factory)


def test_every_check_is_listed_once() -> None:
    """A ``check_*`` function of a protocol's module is in that module's ``CHECKS`` (and so
    in ``ALL_CHECKS``, run above) exactly once, and importable from the package."""
    for protocol, checks in contract.CHECKS_BY_PROTOCOL.items():
        module = inspect.getmodule(checks[0])
        assert module is not None
        defined = [
            name
            for name, value in vars(module).items()
            if name.startswith("check_")
            and inspect.isfunction(value)
            and value.__module__ == module.__name__
        ]
        listed = [c.__name__ for c in checks]
        assert sorted(listed) == sorted(defined), f"{protocol}: {module.__name__}.CHECKS"
        assert all(inspect.getmodule(c) is module for c in checks), protocol
    names = [check_id(c) for c in contract.ALL_CHECKS]
    assert len(names) == len(set(names)), "two checks share a test id"
    for check in contract.ALL_CHECKS:
        assert getattr(contract, check.__name__) is check
        assert check.__name__ in contract.__all__
