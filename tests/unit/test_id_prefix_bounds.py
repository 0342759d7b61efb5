"""The range ``find_execution_ids`` scans: ``prefix <= id < id_upper_bound(prefix)`` holds
for every id starting with the prefix, in byte order and under PostgreSQL's linguistic
collations (the contract suite runs on the test servers' byte-ordered collations only)."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from hydra.store.sql.statements import id_upper_bound

ID_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def test_examples() -> None:
    assert id_upper_bound("bd183f") == "bd183g"
    assert id_upper_bound("bd1839") == "bd183A"
    assert id_upper_bound("bd183f86-4e") == "bd183f87"
    assert id_upper_bound("az") == "b"
    assert id_upper_bound("zz") is None
    assert id_upper_bound("-abc") is None


@given(prefix=st.text(ID_CHARS, max_size=8), rest=st.text(ID_CHARS, max_size=8))
def test_every_id_with_the_prefix_is_in_range_in_byte_order(prefix: str, rest: str) -> None:
    execution_id = prefix + rest
    bound = id_upper_bound(prefix)
    assert prefix <= execution_id
    assert bound is None or execution_id < bound, (prefix, execution_id, bound)


def sample_pairs() -> list[tuple[str, str]]:
    """(prefix, id) pairs: uuid ids cut at every length, and custom ids with punctuation
    and upper case."""
    ids = [str(uuid.uuid4()) for _ in range(20)]
    ids += ["bd1839ff-0000", "bd183f86-4e00", "Order_12-x", "order_129", "az-9", "ZZ_top"]
    return [(i[:n], i) for i in ids for n in range(1, len(i) + 1)]


@pytest.mark.skipif(
    not os.environ.get("HYDRA_TEST_POSTGRES_URL"), reason="HYDRA_TEST_POSTGRES_URL is not set"
)
@pytest.mark.parametrize("collation", ["en-US-x-icu", "und-x-icu", "C"])
def test_every_id_with_the_prefix_is_in_range_under_postgres_collations(collation: str) -> None:
    engine = create_engine(os.environ["HYDRA_TEST_POSTGRES_URL"])
    pairs = [(p, i, id_upper_bound(p)) for p, i in sample_pairs()]
    try:
        with engine.connect() as conn:
            if (
                conn.execute(
                    text("SELECT count(*) FROM pg_collation WHERE collname = :c"), {"c": collation}
                ).scalar()
                == 0
            ):
                pytest.skip(f"the server has no collation {collation}")
            outside = [
                (prefix, execution_id, bound)
                for prefix, execution_id, bound in pairs
                if not conn.execute(
                    text(
                        f'SELECT (CAST(:id AS text) COLLATE "{collation}") >= :prefix '
                        f'AND (CAST(:id AS text) COLLATE "{collation}") < :bound'
                    ),
                    # No bound: the range only starts at the prefix.
                    {"id": execution_id, "prefix": prefix, "bound": bound or "\U0010ffff"},
                ).scalar()
            ]
    finally:
        engine.dispose()
    assert outside == []
