"""JSONMarshaller: plain-JSON encoding, typed decoding, and errors that name the path."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Any, Literal, NewType, Optional, TypedDict, Union
from uuid import UUID

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra.errors import HydraError, PayloadError
from hydra.marshal import JSONMarshaller, Marshaller

M = JSONMarshaller()


class Color(Enum):
    RED = "red"
    GREEN = "green"


class Priority(IntEnum):
    LOW = 1
    HIGH = 2


class Mode(StrEnum):
    FAST = "fast"
    SAFE = "safe"


@dataclass
class Item:
    sku: str
    quantity: int
    price: Decimal
    color: Color = Color.RED


@dataclass
class Customer:
    id: UUID
    name: str
    email: str | None = None


@dataclass
class Order:
    id: UUID
    customer: Customer
    items: list[Item]
    placed_at: datetime
    priority: Priority
    note: Optional[str] = None  # noqa: UP045 -- the typing.Optional spelling on purpose
    tags: set[str] = field(default_factory=set)
    delivery: date | None = None
    window: tuple[time, time] | None = None
    ttl: timedelta = timedelta(hours=1)


class Address(pydantic.BaseModel):
    street: str
    zip_code: str


class Account(pydantic.BaseModel):
    id: UUID
    created: datetime
    balance: Decimal
    addresses: list[Address]


class StrictAccount(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True)

    id: UUID
    created: datetime
    span: tuple[int, int]


@dataclass
class Envelope:
    account: Account
    attempts: int = 0


class Movie(TypedDict):
    title: str
    year: int
    director: Customer


class Partial(TypedDict, total=False):
    name: str
    when: datetime


@dataclass
class Computed:
    base: int
    doubled: int = field(init=False)

    def __post_init__(self) -> None:
        self.doubled = self.base * 2


@dataclass
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n must be positive")


class Opaque:
    """Not a dataclass nor a model: the marshaller must refuse it."""


UserId = NewType("UserId", int)

TZ = timezone(timedelta(hours=5, minutes=30))


def make_order() -> Order:
    return Order(
        id=UUID("12345678-1234-5678-1234-567812345678"),
        customer=Customer(id=UUID(int=7), name="Zoë", email=None),
        items=[
            Item("A-1", 2, Decimal("19.99")),
            Item("B-2", 1, Decimal("0.10"), Color.GREEN),
        ],
        placed_at=datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=TZ),
        priority=Priority.HIGH,
        note="leave at the door",
        tags={"gift", "fragile", "express"},
        delivery=date(2024, 3, 4),
        window=(time(9, 0), time(17, 30)),
        ttl=timedelta(days=2, seconds=5, microseconds=250),
    )


def roundtrip(value: Any, type_: Any) -> Any:
    return M.unmarshal(M.marshal(value), type_)


# ----------------------------------------------------------------------------- round trips


def test_is_a_marshaller() -> None:
    assert isinstance(M, Marshaller)


def test_nested_dataclass_round_trip() -> None:
    order = make_order()
    back = roundtrip(order, Order)
    assert back == order
    assert isinstance(back.items[0], Item)
    assert back.items[1].color is Color.GREEN
    assert back.priority is Priority.HIGH
    assert back.placed_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert back.items[0].price == Decimal("19.99")


def test_dataclass_is_plain_json_without_type_tags() -> None:
    data = json.loads(M.marshal(make_order()))
    assert data["customer"] == {
        "email": None,
        "id": "00000000-0000-0000-0000-000000000007",
        "name": "Zoë",
    }
    assert data["items"][1] == {"color": "green", "price": "0.10", "quantity": 1, "sku": "B-2"}
    assert data["placed_at"] == "2024-03-01T12:30:15.123456+05:30"
    assert data["priority"] == 2
    assert data["tags"] == ["express", "fragile", "gift"]
    assert data["ttl"] == 172805.00025
    assert data["window"] == ["09:00:00", "17:30:00"]


def test_dataclass_fields_with_defaults_may_be_missing() -> None:
    data = b'{"sku": "A", "quantity": 1, "price": 2.5}'
    assert M.unmarshal(data, Item) == Item("A", 1, Decimal("2.5"), Color.RED)


def test_dataclass_field_not_in_init_is_recomputed() -> None:
    assert M.marshal(Computed(4)) == b'{"base":4,"doubled":8}'
    assert roundtrip(Computed(4), Computed) == Computed(4)


def test_pydantic_model_round_trip() -> None:
    account = Account(
        id=UUID(int=1),
        created=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        balance=Decimal("10.50"),
        addresses=[Address(street="Main 1", zip_code="01234")],
    )
    assert roundtrip(account, Account) == account
    assert roundtrip(Envelope(account, 3), Envelope) == Envelope(account, 3)


def test_strict_pydantic_model_round_trip() -> None:
    value = StrictAccount(id=UUID(int=2), created=datetime(2024, 1, 1, tzinfo=UTC), span=(1, 2))
    assert roundtrip(value, StrictAccount) == value


def test_pydantic_validation_error_is_wrapped_with_path() -> None:
    data = b'{"account": {"id": "not-a-uuid", "created": "2024-01-01T00:00:00Z",'
    data += b' "balance": "1", "addresses": [{"street": "x"}]}}'
    with pytest.raises(PayloadError) as info:
        M.unmarshal(data, Envelope)
    message = str(info.value)
    assert "invalid Account at $.account" in message
    assert "$.account.id" in message
    assert "$.account.addresses[0].zip_code" in message
    assert isinstance(info.value.__cause__, pydantic.ValidationError)


def test_typeddict() -> None:
    movie: Movie = {"title": "Heat", "year": 1995, "director": Customer(UUID(int=3), "Mann")}
    back = roundtrip(movie, Movie)
    assert back == movie
    assert isinstance(back["director"], Customer)
    assert M.unmarshal(b'{"when": "2024-01-01T00:00:00+00:00"}', Partial) == {
        "when": datetime(2024, 1, 1, tzinfo=UTC)
    }
    with pytest.raises(PayloadError, match=r"expected Movie at \$, got array"):
        M.unmarshal(b"[]", Movie)
    with pytest.raises(PayloadError, match=r"expected int at \$\.year, got string"):
        M.unmarshal(b'{"title": "Heat", "year": "1995"}', Movie)


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        (None, None),
        (None, type(None)),
        (True, bool),
        (False, bool),
        (0, int),
        (-(10**30), int),
        (1.5, float),
        (-0.0, float),
        ("", str),
        ('héllo ✓ \n "quoted"', str),
        (date(2024, 2, 29), date),
        (time(23, 59, 59, 999999), time),
        (time(8, 0, tzinfo=TZ), time),
        (datetime(2024, 1, 1, 0, 0), datetime),
        (datetime(2024, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-7))), datetime),
        (timedelta(days=-1, seconds=3), timedelta),
        (UUID(int=123), UUID),
        (Decimal("3.14159265358979323846264338327950288"), Decimal),
        (Color.GREEN, Color),
        (Priority.LOW, Priority),
        (Mode.SAFE, Mode),
        (UserId(5), UserId),
    ],
)
def test_scalar_round_trip(value: Any, type_: Any) -> None:
    back = roundtrip(value, type_)
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, datetime | time) and value.tzinfo is not None:
        assert back.utcoffset() == value.utcoffset()


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ([1, 2], list[int], [1, 2]),
        ((1, 2, 3), tuple[int, ...], (1, 2, 3)),
        ((1, "a"), tuple[int, str], (1, "a")),
        ({3, 1}, set[int], {1, 3}),
        (frozenset({"x"}), frozenset[str], frozenset({"x"})),
        ({1: "a", 2: "b"}, dict[int, str], {1: "a", 2: "b"}),
        ({1.5: True}, dict[float, bool], {1.5: True}),
        ({True: 1}, dict[bool, int], {True: 1}),
        ({UUID(int=9): 1}, dict[UUID, int], {UUID(int=9): 1}),
        ({Color.RED: 1, Priority.LOW: 2, 3: 3}, dict[str, int], {"red": 1, "1": 2, "3": 3}),
        ({Priority.HIGH: "x"}, dict[Priority, str], {Priority.HIGH: "x"}),
        (None, Optional[int], None),  # noqa: UP045
        (4, int | None, 4),
        ("4", Union[int, str], "4"),  # noqa: UP007
        (4.0, float | int, 4.0),
        (4.0, int | float, 4),
        ("b", Literal["a", "b"], "b"),
        (Color.RED, Literal[Color.RED], Color.RED),
        ([[1, 2], [3]], list[list[int]], [[1, 2], [3]]),
        ({"a": [Item("x", 1, Decimal(1))]}, dict[str, list[Item]], None),
        ([1, "a", None], list, [1, "a", None]),
        ({"k": 1}, dict, {"k": 1}),
        ({"k": 1}, object, {"k": 1}),
    ],
)
def test_container_round_trip(value: Any, type_: Any, expected: Any) -> None:
    back = roundtrip(value, type_)
    assert back == (value if expected is None else expected)
    assert type(back) is type(value if expected is None else expected)


def test_int_accepts_integral_float_only() -> None:
    assert M.unmarshal(b"2.0", int) == 2
    assert M.unmarshal(b"2", float) == 2.0
    with pytest.raises(PayloadError, match=r"expected int at \$, got number 2\.5"):
        M.unmarshal(b"2.5", int)
    with pytest.raises(PayloadError, match=r"expected int at \$, got boolean true"):
        M.unmarshal(b"true", int)
    with pytest.raises(PayloadError, match=r"expected bool at \$, got integer 1"):
        M.unmarshal(b"1", bool)
    with pytest.raises(PayloadError, match=r"expected float at \$, got boolean"):
        M.unmarshal(b"false", float)


def test_decimal_from_number_keeps_the_short_form() -> None:
    assert M.unmarshal(b"0.1", Decimal) == Decimal("0.1")


# ----------------------------------------------------------------------------- determinism


def test_compact_utf8_output() -> None:
    assert M.marshal({"b": 1, "a": [1, 2.5, None, True], "é": "ü"}) == (
        '{"a":[1,2.5,null,true],"b":1,"é":"ü"}'.encode()
    )


def test_sets_give_the_same_bytes_whatever_their_insertion_order() -> None:
    words = [f"w{i}" for i in range(50)]
    forward, backward = set(words), set(reversed(words))
    assert M.marshal(forward) == M.marshal(backward)
    assert json.loads(M.marshal(forward)) == sorted(words)
    # Unorderable mixes still come out in a fixed order.
    assert M.marshal({1, "a", (2, 3)}) == M.marshal({(2, 3), "a", 1})


def test_dicts_give_the_same_bytes_whatever_their_insertion_order() -> None:
    one = {"z": 1, "a": {"y": 2, "b": 3}}
    two = {"a": {"b": 3, "y": 2}, "z": 1}
    assert M.marshal(one) == M.marshal(two) == b'{"a":{"b":3,"y":2},"z":1}'


# ----------------------------------------------------------------------------- encode errors


def test_unencodable_object_names_type_and_path() -> None:
    value = {"items": [1, 2, {"owner": Opaque()}]}
    with pytest.raises(PayloadError, match=r"type 'Opaque' at \$\.items\[2\]\.owner"):
        M.marshal(value)


def test_unencodable_values_inside_dataclass_and_odd_keys() -> None:
    with pytest.raises(PayloadError, match=r"type 'function' at \$\.customer\.name"):
        M.marshal(dataclasses.replace(make_order(), customer=Customer(UUID(int=1), lambda: 1)))  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match=r'at \$\["a b"\]\[0\]'):
        M.marshal({"a b": [object()]})


def test_bytes_are_refused_with_a_hint() -> None:
    with pytest.raises(PayloadError, match=r"type 'bytes' at \$\.blob: .*base64"):
        M.marshal({"blob": b"\x00\x01"})
    with pytest.raises(PayloadError, match="bytearray"):
        M.marshal(bytearray(b"x"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(bad: float) -> None:
    with pytest.raises(PayloadError, match=r"type 'float' at \$\.x\[1\]"):
        M.marshal({"x": [1.0, bad]})


def test_circular_reference_is_refused() -> None:
    loop: list[Any] = [1]
    loop.append({"again": loop})
    with pytest.raises(PayloadError, match=r"at \$\[1\]\.again: circular reference"):
        M.marshal(loop)
    shared = [1]
    assert M.marshal([shared, shared]) == b"[[1],[1]]"  # sharing is not a cycle


def test_bad_dict_keys_are_refused() -> None:
    with pytest.raises(PayloadError, match=r"key of type 'tuple' at \$\.m"):
        M.marshal({"m": {(1, 2): "x"}})
    with pytest.raises(PayloadError, match="both encode to '1'"):
        M.marshal({1: "a", "1": "b"})


def test_marshal_never_falls_back_to_repr() -> None:
    with pytest.raises(PayloadError):
        M.marshal(Opaque)
    with pytest.raises(PayloadError):
        M.marshal(complex(1, 2))


# ----------------------------------------------------------------------------- decode errors


def test_missing_required_field_names_field_and_path() -> None:
    data = json.loads(M.marshal(make_order()))
    del data["items"][1]["sku"]
    with pytest.raises(
        PayloadError, match=r"missing required field 'sku' of Item at \$\.items\[1\]\.sku"
    ):
        M.unmarshal(json.dumps(data).encode(), Order)


def test_wrong_type_deep_inside_names_path_and_expected_type() -> None:
    data = json.loads(M.marshal(make_order()))
    data["items"][1]["quantity"] = "many"
    with pytest.raises(PayloadError) as info:
        M.unmarshal(json.dumps(data).encode(), Order)
    assert str(info.value) == 'expected int at $.items[1].quantity, got string "many"'


@pytest.mark.parametrize(
    ("data", "type_", "pattern"),
    [
        (b'{"sku": "a", "quantity": 1, "price": "1", "extra": 1}', Item, r"unknown field 'extra'"),
        (b'{"sku": "a", "quantity": 1, "price": "x"}', Item, r"expected Decimal at \$\.price"),
        (b'{"sku": "a", "quantity": 1, "price": 1, "color": "blue"}', Item, r"\$\.color.*'red'"),
        (b'"2024-13-01"', date, r"expected date at \$"),
        (b'"nope"', datetime, r"expected datetime at \$"),
        (b'"1234"', UUID, r"expected UUID at \$"),
        (b"[1, 2, 3]", tuple[int, int], r"3 items instead of 2"),
        (b'{"x": 1}', dict[int, int], r"dict key of type int at \$\.x"),
        (b'"c"', Literal["a", "b"], r"expected Literal\['a', 'b'\] at \$"),
        (b'{"n": 0}', Positive, r"cannot build Positive at \$: n must be positive"),
        (b"[[1]]", set[Any], r"not hashable"),
        (b"null", int, r"expected int at \$, got null"),
        (b'[{"a": 1}]', list[int | str], r"expected int \| str at \$\[0\], got object"),
        (b'{"a": {"b": [1, "x"]}}', dict[str, dict[str, list[int]]], r"\$\.a\.b\[1\]"),
    ],
)
def test_decode_errors(data: bytes, type_: Any, pattern: str) -> None:
    with pytest.raises(PayloadError, match=pattern):
        M.unmarshal(data, type_)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b'{"a": 1', r"not valid JSON: Expecting .* \(line 1, column"),
        (b"", r"not valid JSON"),
        (b"[1, NaN]", r"not valid JSON: NaN is not allowed"),
        (b"Infinity", r"not valid JSON: Infinity"),
        (b'"\xff"', r"not valid UTF-8"),
    ],
)
def test_invalid_payloads(data: bytes, pattern: str) -> None:
    with pytest.raises(PayloadError, match=pattern):
        M.unmarshal(data)


def test_unsupported_target_type_fails_at_unmarshal() -> None:
    with pytest.raises(
        PayloadError, match=r"cannot decode into Opaque at \$\.x\[0\]: .*not supported"
    ):
        M.unmarshal(b'{"x": [1]}', dict[str, list[Opaque]])


def test_unresolvable_annotations_are_reported() -> None:
    @dataclass
    class Local:
        inner: Hidden  # type: ignore[name-defined]  # noqa: F821 -- unresolvable on purpose

    with pytest.raises(PayloadError, match="type hints cannot be resolved"):
        M.unmarshal(b'{"inner": 1}', Local)


def test_payload_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        M.unmarshal(b"{")
    assert issubclass(PayloadError, HydraError)


def test_pydantic_is_not_imported_by_the_module() -> None:
    code = "import sys, hydra.marshal; assert 'pydantic' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(database=None)
@given(json_values)
def test_json_values_round_trip(value: Any) -> None:
    data = M.marshal(value)
    assert M.unmarshal(data, Any) == value
    assert M.marshal(M.unmarshal(data)) == data
