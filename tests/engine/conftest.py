"""Engine fixtures: a fresh store on either backend (`store_url` is in tests/conftest.py), a video.

The engine tests' `small_model` remembers its frame encodings, so that the second backend does
not pay for the encoder again.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Iterator

import pytest

from masklet.engine.store import Store, Video

ENCODINGS_KEPT = 256  # about 1.6 MB each at 128 px: enough for one test's frames and crops, run twice


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store(store_url) as opened:
        yield opened


@pytest.fixture
def video(store: Store) -> Video:
    """A 10-frame 6x8 (h x w) video in a fresh project."""
    project = store.create_project("demo")
    return store.add_video(
        project.id, "clips/demo.mp4", fps=24.0, width=8, height=6, frame_count=10, content_hash="a" * 64
    )


@pytest.fixture(scope="session")
def small_model(small_model):
    """A copy of the root `small_model` whose `encode_image` answers pixels it has seen from a cache.

    A test speed-up only, as `reuse_frame_encodings` in tests/predict/test_video_parity.py: the
    encoder is deterministic (the key includes torch's thread count, on which its last bits depend)
    and has its own tests. A test run on both backends encodes the same frames with the same weights
    twice, and the workflows of a video's masklets each encode its frames again.
    Features are handed out as clones, so nothing downstream can change the cached ones; the root
    fixture, used outside tests/engine, stays as it is.
    """
    import torch

    from masklet.model.sam2 import ImageFeatures

    model = copy.deepcopy(small_model)
    encode, cache = model.encode_image, OrderedDict()

    def encode_once(pixels: torch.Tensor) -> ImageFeatures:
        digest = hashlib.sha256(pixels.detach().cpu().numpy().tobytes()).hexdigest()
        key = (tuple(pixels.shape), pixels.dtype, torch.get_num_threads(), digest)
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = encode(pixels)
            if len(cache) > ENCODINGS_KEPT:
                cache.popitem(last=False)
        features = cache[key]
        return ImageFeatures(
            backbone_fpn=tuple(t.clone() for t in features.backbone_fpn),
            vision_pos_enc=tuple(t.clone() for t in features.vision_pos_enc),
        )

    model.encode_image = encode_once
    return model
