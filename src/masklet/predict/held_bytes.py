"""How many bytes of array data an object graph keeps alive: torch tensors and numpy arrays.

`held_array_bytes(session)` walks a session's attributes and containers (not the model it
uses) and adds up every distinct buffer it reaches once, however many views share it. It
is how a session reports what it holds in RAM (`TrackingSession.memory_usage().ram_bytes`)
and what the tests hold the bounded-memory promise to: a count of everything reachable,
not of the containers someone remembered to list.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

# objects whose arrays are not per-session state, and that never lead back to it
_OPAQUE = (nn.Module, type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
_SCALARS = (str, bytes, bytearray, int, float, complex, bool, type(None))


def held_array_bytes(root: Any, *, skip: Iterable[Any] = ()) -> int:
    """Bytes of the distinct tensor storages and numpy buffers reachable from `root`.

    Follows dict/list/tuple/set items and the attributes of objects (`__dict__` and
    `__slots__`), never into `nn.Module`s (a model's weights are shared, not held) or
    the objects in `skip`. Meta tensors count nothing.
    """
    seen_objects: set[int] = {id(s) for s in skip}
    seen_buffers: dict[tuple[str, int], int] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen_objects or isinstance(obj, _SCALARS) or isinstance(obj, _OPAQUE):
            continue
        seen_objects.add(id(obj))
        if isinstance(obj, torch.Tensor):
            _count_tensor(obj, seen_buffers)
        elif isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            seen_buffers[("numpy", base.__array_interface__["data"][0])] = base.nbytes
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        else:
            stack.extend(_attributes(obj))
    return sum(seen_buffers.values())


def _count_tensor(tensor: torch.Tensor, seen: dict[tuple[str, int], int]) -> None:
    if tensor.device.type == "meta":
        return
    storage = tensor.untyped_storage()
    seen[(str(tensor.device), storage.data_ptr())] = storage.nbytes()


def _attributes(obj: Any) -> list[Any]:
    values = list(getattr(obj, "__dict__", {}).values())
    for cls in type(obj).__mro__:
        slots = getattr(cls, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                values.append(getattr(obj, name))
    return values
