"""Field checks shared by the JSON format readers; every failure is a FormatError naming where."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from masklet.errors import FormatError

NUMBER = (int, float)


def typed(value: Any, kinds: tuple[type, ...], where: str) -> Any:
    """`value` if it is one of `kinds` (bool never counts as a number), else a FormatError."""
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = "a number" if float in kinds else " or ".join(k.__name__ for k in kinds)
        raise FormatError(f"{where}: expected {expected}, got {type(value).__name__} {value!r:.60}")
    return value


def get_field(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    """`obj[key]` checked against `kinds`; a missing key names the field."""
    if key not in obj:
        raise FormatError(f"{where}: missing field {key!r}")
    return typed(obj[key], kinds, f"{where}.{key}")


def obj_list(obj: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """`obj[key]` as a list of JSON objects."""
    items = get_field(obj, key, (list,), where)
    for i, item in enumerate(items):
        typed(item, (dict,), f"{where}.{key}[{i}]")
    return items


def top_object(obj: Any, where: str, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: {what} holds a JSON object at the top, got {type(obj).__name__}")
    return obj


def bbox_field(value: Any, where: str) -> tuple[float, float, float, float]:
    box = typed(value, (list,), where)
    if len(box) != 4:
        raise FormatError(f"{where}: a box is [x, y, w, h], got {len(box)} numbers")
    return tuple(typed(v, NUMBER, f"{where}[{k}]") for k, v in enumerate(box))  # type: ignore[return-value]


def extra_fields(obj: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """The keys of `obj` a reader does not model, kept so a write gives them back."""
    return {k: v for k, v in obj.items() if k not in known}


def unique_ids(records: Any, where: str) -> dict[int, Any]:
    """{id: record}; a repeated id is a FormatError."""
    by_id: dict[int, Any] = {}
    for r in records:
        if r.id in by_id:
            raise FormatError(f"{where}: id {r.id} appears more than once")
        by_id[r.id] = r
    return by_id
