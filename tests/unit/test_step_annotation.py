"""``hydra.steps._return_annotation``: the decode type of a step, cached per function."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from hydra import steps


@dataclasses.dataclass
class Point:
    x: int


def annotated() -> Point:
    return Point(1)


async def awaited() -> Point:
    return Point(2)


def test_lambdas_and_unannotated_functions_decode_to_any() -> None:
    def plain():  # type: ignore[no-untyped-def]
        return 1

    assert steps._return_annotation(lambda: 1) is Any
    assert steps._return_annotation(plain) is Any
    assert steps._return_annotation(functools.partial(annotated)) is Any


def test_return_annotations_are_resolved_and_cached() -> None:
    assert steps._return_annotation(annotated) is Point
    assert steps._return_annotation(awaited) is Point
    assert steps._RETURN_TYPES[annotated] is Point
    assert steps._return_annotation(annotated) is Point  # from the cache


def test_unresolvable_annotation_is_any_and_not_cached() -> None:
    def later() -> NotYetDefined:  # type: ignore[name-defined]  # noqa: F821
        raise AssertionError

    assert steps._return_annotation(later) is Any
    assert later not in steps._RETURN_TYPES


def test_callable_objects() -> None:
    @dataclasses.dataclass  # eq=True: unhashable, so not cached
    class Call:
        n: int

        def __call__(self) -> int:
            return self.n

    assert steps._return_annotation(Call(1)) is Any
