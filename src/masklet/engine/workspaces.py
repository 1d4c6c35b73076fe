"""The annotation workflows a server process keeps open: bounded, closed when idle, rebuilt on demand.

A `MaskletWorkflow` holds a tracking session and decoded frames, so a click on a frame it has
seen answers fast; but it is only a cache of what the store holds (masks, prompts), so
closing one loses nothing: the next request for the same masklet, phase and annotator opens
a new one, seeded from the store. At most `max_open` are open (least recently used closed
first) and one unused for `idle_s` seconds is closed at the next request. One request at a time
uses a workflow; requests on different masklets run at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from masklet.engine.phases import MaskletWorkflow
from masklet.engine.store import StaleWriteError, Store

__all__ = ["WorkflowRegistry"]

Key = tuple[int, int, str]  # (masklet id, phase, annotator)


@dataclass
class _Open:
    work: MaskletWorkflow
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = 0.0


class WorkflowRegistry:
    def __init__(
        self,
        store: Store,
        model: Any,
        *,
        max_open: int = 8,
        idle_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        feature_cache: Any = None,
        fast: bool = False,
    ) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be at least 1, got {max_open}")
        self.store, self.model = store, model
        self.max_open, self.idle_s, self._clock = max_open, idle_s, clock
        self.feature_cache = feature_cache  # one predict.FeatureCache for every workflow's image predictor
        self.fast = fast  # every workflow's tracking session in fast mode
        self._open: OrderedDict[Key, _Open] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def num_open(self) -> int:
        return len(self._open)

    @contextmanager
    def workflow(self, masklet_id: int, *, phase: int, by: str) -> Iterator[MaskletWorkflow]:
        """The open workflow of (masklet, phase, annotator), opened if needed, for one request.

        A StaleWriteError inside (someone else saved first) re-reads the masklet before it
        propagates, so the next request works on the current masks.
        """
        entry = self._checkout((masklet_id, phase, by))
        with entry.lock:
            try:
                yield entry.work
            except StaleWriteError:
                entry.work.refresh()
                raise
            finally:
                entry.last_used = self._clock()

    def _checkout(self, key: Key) -> _Open:
        to_close: list[MaskletWorkflow] = []
        with self._lock:
            now = self._clock()
            for k, e in list(self._open.items()):
                if k != key and now - e.last_used > self.idle_s and not e.lock.locked():
                    to_close.append(self._open.pop(k).work)
            entry = self._open.get(key)
            if entry is None:
                masklet_id, phase, by = key
                work = MaskletWorkflow(
                    self.store,
                    masklet_id,
                    phase=phase,
                    by=by,
                    model=self.model,
                    feature_cache=self.feature_cache,
                    fast=self.fast,
                )
                entry = self._open[key] = _Open(work, last_used=now)
            self._open.move_to_end(key)
            while len(self._open) > self.max_open:
                oldest_key = next(iter(self._open))
                if self._open[oldest_key].lock.locked():
                    break  # in use: closed by a later request
                to_close.append(self._open.pop(oldest_key).work)
        for work in to_close:
            work.close()
        return entry

    def discard(self, masklet_id: int) -> None:
        """Close every open workflow of a masklet (deleted: nothing will use them again)."""
        with self._lock:
            works = [self._open.pop(k).work for k in list(self._open) if k[0] == masklet_id]
        for work in works:
            work.close()

    def close(self) -> None:
        with self._lock:
            works = [e.work for e in self._open.values()]
            self._open.clear()
        for work in works:
            work.close()
