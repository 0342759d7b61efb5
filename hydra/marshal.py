"""Turn workflow inputs, step results and outputs into bytes, and back.

Payloads are written to the database and read back by another process, maybe after a
deploy, so the format is plain JSON: readable from any SQL client, stable across Python
versions, and free of pickle's code-execution risk. No type tags are written; the reader
names the type it wants (from the workflow's or step's annotations) and the JSON is
converted into it. Every error names the JSON path of the offending value, because a
payload is often large and the mistake is usually one field deep inside it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import types
import typing
import uuid
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, MutableSet, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import MISSING
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar, Union, get_args, get_origin, runtime_checkable

from hydra.errors import PayloadError

__all__ = ["JSONMarshaller", "Marshaller"]

_NoneType = type(None)
_LIST_ORIGINS = (list, Sequence, MutableSequence)
_SET_ORIGINS = (set, frozenset, AbstractSet, MutableSet)
_DICT_ORIGINS = (dict, Mapping, MutableMapping)


@runtime_checkable
class Marshaller(Protocol):
    """Converts payloads to bytes for storage and back into the type the reader expects."""

    def marshal(self, value: Any) -> bytes:
        """Encode ``value``; raise :class:`PayloadError` if it cannot be stored faithfully."""
        ...

    def unmarshal(self, data: bytes, type_: Any = Any) -> Any:
        """Decode ``data`` into ``type_``; raise :class:`PayloadError` if it does not fit."""
        ...


class JSONMarshaller:
    """The default marshaller: compact UTF-8 JSON with sorted keys, no type tags.

    Keys are sorted and sets are ordered, so the bytes depend neither on a dict's
    insertion order nor on a set's iteration order (which varies between processes for
    strings): a value gives the same bytes in every process. Registering a cron job relies
    on it: the store compares the encoded payload with the stored one, and an unchanged
    payload leaves the job's definition, and its ``updated_at``, as they were.
    """

    def marshal(self, value: Any) -> bytes:
        try:
            tree = _encode(value, "$", set())
            text = json.dumps(
                tree, ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True
            )
            return text.encode("utf-8")
        except RecursionError as exc:
            raise PayloadError("cannot encode value: it is nested too deeply") from exc
        except PayloadError:
            raise
        except ValueError as exc:
            # Only reachable for inputs _encode lets through but json/utf-8 cannot take,
            # e.g. a str with lone surrogates or an int too long to print.
            raise PayloadError(f"cannot encode value: {exc}") from exc

    def unmarshal(self, data: bytes, type_: Any = Any) -> Any:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise PayloadError(f"payload must be bytes, not {type(data).__name__!r}")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"payload is not valid UTF-8: {exc}") from exc
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise PayloadError(
                f"payload is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from exc
        except PayloadError:
            raise
        except (ValueError, RecursionError) as exc:  # e.g. an int too long to parse
            raise PayloadError(f"payload is not valid JSON: {exc}") from exc
        try:
            return _decode(value, type_, "$")
        except RecursionError as exc:
            raise PayloadError("cannot decode payload: it is nested too deeply") from exc


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity by default, but other readers of the column do not.
    raise PayloadError(f"payload is not valid JSON: {name} is not allowed")


# ----------------------------------------------------------------------------- encoding


def _child(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _cannot_encode(value: Any, path: str, reason: str, what: str = "value") -> PayloadError:
    name = type(value).__name__
    return PayloadError(f"cannot encode {what} of type {name!r} at {path}: {reason}")


def _encode(value: Any, path: str, active: set[int]) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):  # before str/int: StrEnum and IntEnum are both
        return _encode(value.value, path, active)
    if isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _cannot_encode(value, path, f"{value} is not valid JSON")
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise _cannot_encode(
            value,
            path,
            "bytes are not stored implicitly; encode them as a "
            "base64 str (base64.b64encode(data).decode()) and decode on read",
        )
    # Containers: remember which ones are open so a cycle fails instead of recursing forever.
    if id(value) in active:
        raise _cannot_encode(value, path, "circular reference")
    active.add(id(value))
    try:
        return _encode_container(value, path, active)
    finally:
        active.discard(id(value))


def _encode_container(value: Any, path: str, active: set[int]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _encode_key(key, path)
            if name in out:
                raise _cannot_encode(key, path, f"two keys both encode to {name!r}", "key")
            out[name] = _encode(item, _child(path, name), active)
        return out
    if isinstance(value, list | tuple):
        return [_encode(item, f"{path}[{i}]", active) for i, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [_encode(item, f"{path}[{i}]", active) for i, item in enumerate(value)]
        try:
            return sorted(items)
        except TypeError:
            # Mixed or unorderable items: order by their JSON text, still deterministic.
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    cls = type(value)
    if hasattr(cls, "model_dump") and hasattr(cls, "model_validate"):
        try:
            dumped = value.model_dump(mode="json")
        except ValueError as exc:  # pydantic's serialization errors are ValueErrors
            raise _cannot_encode(value, path, str(exc)) from exc
        return _encode(dumped, path, active)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _encode(getattr(value, f.name), _child(path, f.name), active)
            for f in dataclasses.fields(value)
        }
    raise _cannot_encode(
        value,
        path,
        "not JSON-serializable; use a dataclass, a pydantic model, or "
        "JSON-like values (dict, list, str, int, float, bool, None)",
    )


def _encode_key(key: Any, path: str) -> str:
    # Mirrors what json.dumps does for non-str keys, plus UUIDs and enums.
    if isinstance(key, enum.Enum):
        return _encode_key(key.value, path)
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float) and math.isfinite(key):
        return repr(float(key))
    if isinstance(key, uuid.UUID):
        return str(key)
    raise _cannot_encode(key, path, "dict keys must be str, int, float, bool, UUID or enum", "key")


# ----------------------------------------------------------------------------- decoding


def type_name(tp: Any) -> str:
    """A type as a user writes it: ``str``, ``Order``, ``list[int]``, ``str | None``."""
    if tp is Any:
        return "Any"
    if tp is None or tp is _NoneType:
        return "None"
    if tp is Ellipsis:
        return "..."
    origin, args = get_origin(tp), get_args(tp)
    if origin is Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    return tp.__name__ if isinstance(tp, type) else repr(tp)


_JSON_KINDS = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _got(value: Any) -> str:
    kind = _JSON_KINDS.get(type(value), type(value).__name__)
    if isinstance(value, list | dict):
        return kind
    text = json.dumps(value, ensure_ascii=False)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _mismatch(value: Any, tp: Any, path: str, detail: str = "") -> PayloadError:
    suffix = f" ({detail})" if detail else ""
    return PayloadError(f"expected {type_name(tp)} at {path}, got {_got(value)}{suffix}")


@functools.lru_cache(maxsize=1024)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _resolved_hints(cls: type, path: str) -> dict[str, Any]:
    try:
        return _hints(cls)
    except Exception as exc:  # NameError for unresolvable string annotations, mostly
        raise PayloadError(
            f"cannot decode into {cls.__name__} at {path}: its type hints cannot be "
            f"resolved ({type(exc).__name__}: {exc}); define the referenced types at module level"
        ) from exc


def _decode(value: Any, tp: Any, path: str) -> Any:
    if tp is Any or tp is object or isinstance(tp, TypeVar):  # unbound TypeVars: no constraint
        return value
    if tp is None or tp is _NoneType:
        if value is not None:
            raise _mismatch(value, tp, path)
        return None
    if hasattr(tp, "__supertype__"):  # typing.NewType
        return _decode(value, tp.__supertype__, path)
    origin = get_origin(tp)
    if origin is not None:
        return _decode_generic(value, tp, origin, get_args(tp), path)
    if not isinstance(tp, type):
        raise PayloadError(f"cannot decode into {tp!r} at {path}: type not supported")
    if issubclass(tp, enum.Enum):
        return _decode_enum(value, tp, path)
    if hasattr(tp, "model_validate") and hasattr(tp, "model_dump"):
        return _decode_pydantic(value, tp, path)
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(value, tp, path)
    if typing.is_typeddict(tp):
        return _decode_typeddict(value, tp, path)
    if tp in (list, tuple, set, frozenset, dict):
        return _decode_generic(value, tp, tp, (), path)
    return _decode_scalar(value, tp, path)


def _decode_scalar(value: Any, tp: type, path: str) -> Any:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if tp is bool or tp is str:
        if type(value) is not tp:
            raise _mismatch(value, tp, path)
        return value
    if tp is int:
        if is_number and (isinstance(value, int) or value.is_integer()):
            return int(value)
        raise _mismatch(value, tp, path)
    if tp is float:
        if not is_number:
            raise _mismatch(value, tp, path)
        return float(value)
    if issubclass(tp, timedelta):
        if not is_number:
            raise _mismatch(value, tp, path, "seconds as a number")
        return _convert(lambda v: tp(seconds=v), value, tp, path)
    if issubclass(tp, Decimal):
        if not (is_number or isinstance(value, str)):
            raise _mismatch(value, tp, path)
        # Through str so that 0.1 gives Decimal("0.1"), not its binary expansion.
        return _convert(lambda v: tp(str(v)), value, tp, path)
    # issubclass rather than `is`, so that freezegun's FakeDatetime and friends work too.
    if issubclass(tp, datetime | date | time | uuid.UUID):
        if not isinstance(value, str):
            raise _mismatch(value, tp, path)
        parse = tp if issubclass(tp, uuid.UUID) else tp.fromisoformat
        return _convert(parse, value, tp, path)
    raise PayloadError(
        f"cannot decode into {type_name(tp)} at {path}: type not supported by JSONMarshaller"
    )


def _convert(build: Callable[[Any], Any], value: Any, tp: Any, path: str) -> Any:
    try:
        return build(value)
    except (ValueError, TypeError, ArithmeticError) as exc:  # InvalidOperation is one too
        raise _mismatch(value, tp, path, str(exc) or type(exc).__name__) from exc


def _decode_generic(value: Any, tp: Any, origin: Any, args: tuple[Any, ...], path: str) -> Any:
    if origin is Union or origin is types.UnionType:
        return _decode_union(value, tp, args, path)
    if origin is Literal:
        for choice in args:
            if isinstance(choice, enum.Enum):
                if choice.value == value and type(choice.value) is type(value):
                    return choice
            elif choice == value and type(choice) is type(value):
                return choice
        raise _mismatch(value, tp, path)
    if origin is typing.Annotated:
        return _decode(value, args[0], path)
    if origin in _DICT_ORIGINS:
        if not isinstance(value, dict):
            raise _mismatch(value, tp, path)
        key_tp, item_tp = args or (Any, Any)
        return {
            _decode_key(k, key_tp, path): _decode(v, item_tp, _child(path, k))
            for k, v in value.items()
        }
    if origin is not tuple and origin not in _LIST_ORIGINS and origin not in _SET_ORIGINS:
        raise PayloadError(f"cannot decode into {type_name(tp)} at {path}: type not supported")
    if not isinstance(value, list):
        raise _mismatch(value, tp, path)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise _mismatch(value, tp, path, f"{len(value)} items instead of {len(args)}")
        return tuple(
            _decode(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    item_tp = args[0] if args else Any
    items = [_decode(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return tuple(items)
    if origin in _LIST_ORIGINS:
        return items
    try:
        return frozenset(items) if origin is frozenset else set(items)
    except TypeError as exc:
        raise _mismatch(value, tp, path, "items are not hashable") from exc


def _decode_union(value: Any, tp: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None and _NoneType in args:
        return None
    members = [a for a in args if a is not _NoneType]
    if len(members) == 1:  # Optional[X]: X's own error is the precise one
        return _decode(value, members[0], path)
    errors = []
    for member in members:
        try:
            return _decode(value, member, path)
        except PayloadError as exc:
            errors.append(str(exc))
    raise _mismatch(value, tp, path, "; ".join(errors))


def _decode_key(key: str, tp: Any, path: str) -> Any:
    # Inverse of _encode_key: JSON object keys are always strings.
    where = _child(path, key)
    if tp is Any or tp is object or tp is str:
        return key
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if _encode_key(member, where) == key:
                return member
    elif tp in _KEY_PARSERS:
        try:
            return _KEY_PARSERS[tp](key)
        except (ValueError, KeyError):
            pass
    else:
        raise PayloadError(f"cannot decode dict keys into {type_name(tp)} at {path}: unsupported")
    raise PayloadError(f"expected a dict key of type {type_name(tp)} at {where}, got {key!r}")


def _parse_int_key(key: str) -> int:
    result = int(key)
    if str(result) != key:  # int() also takes " 1", "1_000" and "+1", which we never write
        raise ValueError(key)
    return result


def _parse_float_key(key: str) -> float:
    result = float(key)
    if not math.isfinite(result):
        raise ValueError(key)
    return result


_KEY_PARSERS: dict[Any, Callable[[str], Any]] = {
    int: _parse_int_key,
    float: _parse_float_key,
    bool: {"true": True, "false": False}.__getitem__,
    uuid.UUID: uuid.UUID,
}


def _decode_enum(value: Any, tp: type[enum.Enum], path: str) -> Any:
    try:
        return tp(value)
    except (ValueError, TypeError) as exc:
        allowed = ", ".join(repr(member.value) for member in tp)
        raise _mismatch(value, tp, path, f"one of {allowed}") from exc


def _decode_pydantic(value: Any, tp: Any, path: str) -> Any:
    try:
        # JSON mode, not model_validate(value): a strict model refuses the str form of a
        # datetime or UUID, and the list form of a tuple, in Python mode.
        return tp.model_validate_json(json.dumps(value, ensure_ascii=False))
    except ValueError as exc:  # pydantic_core.ValidationError subclasses ValueError
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise PayloadError(f"invalid {type_name(tp)} at {path}: {exc}") from exc
        details = []
        for error in errors()[:5]:
            where = path
            for part in error["loc"]:
                where = f"{where}[{part}]" if isinstance(part, int) else _child(where, str(part))
            details.append(f"{where}: {error['msg']}")
        raise PayloadError(f"invalid {type_name(tp)} at {path}: {'; '.join(details)}") from exc


def _decode_dataclass(value: Any, tp: type, path: str) -> Any:
    if not isinstance(value, dict):
        raise _mismatch(value, tp, path)
    hints = _resolved_hints(tp, path)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise PayloadError(f"unknown field {unknown[0]!r} for {tp.__name__} at {path}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if not field.init:
            continue  # recomputed by the class itself (e.g. in __post_init__)
        if name not in value:
            if field.default is MISSING and field.default_factory is MISSING:
                raise PayloadError(
                    f"missing required field {name!r} of {tp.__name__} at {_child(path, name)}"
                )
            continue
        kwargs[name] = _decode(value[name], hints[name], _child(path, name))
    try:
        return tp(**kwargs)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"cannot build {tp.__name__} at {path}: {exc}") from exc


def _decode_typeddict(value: Any, tp: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise _mismatch(value, tp, path)
    hints = _resolved_hints(tp, path)
    # Neither missing nor extra keys are errors: TypedDicts are not enforced at runtime, and
    # on Python 3.11 __required_keys__ is wrong for NotRequired under postponed annotations.
    return {k: _decode(v, hints[k], _child(path, k)) if k in hints else v for k, v in value.items()}
