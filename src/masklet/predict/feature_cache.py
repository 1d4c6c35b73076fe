"""Image-encoder outputs kept for reuse across predictors: an LRU bounded in bytes.

A server has one model and many annotators, each with their own `ImagePredictor`; without a
shared cache every one of them encodes every frame it is shown (seconds at 1024 px on a CPU).
Entries are keyed by the model and the digest of the exact input tensor, so a hit returns what
the encoder would return; a caller that knows what the pixels are (a video's content digest and
a frame index) may give that as the key instead, and then neither hashes 12 MB of input nor
builds the input at all on a hit. The tensors are handed out as they are stored and must not be
changed (the predictors only read them). Requests for the same pixels at the same time encode
once: the others wait for that result.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from torch import Tensor

from masklet.model.sam2 import ImageFeatures

__all__ = ["FeatureCache"]


def _nbytes(features: ImageFeatures) -> int:
    return sum(t.numel() * t.element_size() for t in (*features.backbone_fpn, *features.vision_pos_enc))


class FeatureCache:
    """At most `max_bytes` of ImageFeatures, least recently used dropped first; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, Hashable], tuple[ImageFeatures, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, Hashable], threading.Event] = {}  # keys being encoded right now
        self.hits = self.misses = 0

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def features(
        self,
        model: object,
        pixels: Tensor | Callable[[], Tensor],
        encode: Callable[[Tensor], ImageFeatures],
        *,
        key: Hashable | None = None,
    ) -> ImageFeatures:
        """`encode(pixels)`, or the stored result for the same model and the same input bits.

        `key`: what identifies the input instead of its bits (it must change whenever the input
        would); `pixels` may then be a function that builds the input, called on a miss only.
        """
        if key is None:
            if callable(pixels):
                pixels = pixels()
            key = hashlib.sha1(pixels.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        key = (id(model), key)
        while True:
            with self._lock:
                found = self._entries.get(key)
                if found is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return found[0]
                waiting = self._pending.get(key)
                if waiting is None:  # nobody encodes these pixels yet: this caller does
                    self._pending[key] = threading.Event()
                    self.misses += 1
                    break
            waiting.wait()  # another request encodes the same frame: take its result (or retry)
        try:
            features = encode(pixels() if callable(pixels) else pixels)  # outside the lock
            size = _nbytes(features)
            with self._lock:
                if size <= self.max_bytes:
                    self._entries[key] = (features, size)
                    self._bytes += size
                    while self._bytes > self.max_bytes:
                        _, (_, dropped) = self._entries.popitem(last=False)
                        self._bytes -= dropped
        finally:
            with self._lock:
                self._pending.pop(key).set()
        return features
