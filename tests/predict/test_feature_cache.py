"""FeatureCache: image encodings shared by predictors, the same answers as without it, bounded in bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.build import build_sam2
from masklet.predict.feature_cache import FeatureCache
from masklet.predict.image import ImagePredictor

pytestmark = pytest.mark.threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam2("sam2.1_hiera_t", image_size=128).eval()


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(n)]


def test_shared_encodings_give_the_same_masks(model) -> None:
    calls = []
    encode = model.encode_image

    def counting(batch):
        calls.append(1)
        return encode(batch)

    model.encode_image = counting
    try:
        cache = FeatureCache(2**30)
        a, b = ImagePredictor(model, feature_cache=cache), ImagePredictor(model, feature_cache=cache)
        plain = ImagePredictor(model)
        image = _images(1)[0]
        point = dict(point_coords=np.array([[40.0, 30.0]]), point_labels=np.array([1]))
        a.set_image(image)
        b.set_image(image.copy())  # equal pixels, another array: a hit
        assert (cache.hits, cache.misses, len(calls)) == (1, 1, 1)
        plain.set_image(image)
        ref = plain.predict(**point, return_logits=True)
        for predictor in (a, b):
            got = predictor.predict(**point, return_logits=True)
            for x, y in zip(got, ref, strict=True):
                np.testing.assert_array_equal(x, y)
        other = image.copy()
        other[0, 0, 0] ^= 1  # one bit differs: a miss
        a.set_image(other)
        assert cache.misses == 2
    finally:
        model.encode_image = encode


def test_bounded_in_bytes(model) -> None:
    probe = FeatureCache(2**30)
    ImagePredictor(model, feature_cache=probe).set_image(_images(1)[0])
    one = probe.bytes_held
    cache = FeatureCache(2 * one)
    predictor = ImagePredictor(model, feature_cache=cache)
    for image in _images(3):
        predictor.set_image(image)
    assert len(cache) == 2 and cache.bytes_held == 2 * one  # the oldest went
    predictor.set_image(_images(3)[0])
    assert cache.misses == 4  # the first image was dropped, so it is encoded again
    tiny = FeatureCache(one - 1)
    ImagePredictor(model, feature_cache=tiny).set_image(_images(1)[0])
    assert len(tiny) == 0 and tiny.bytes_held == 0  # an entry larger than the cache is not kept
    with pytest.raises(ValueError):
        FeatureCache(-1)


def test_one_encoding_for_simultaneous_requests(model) -> None:
    import threading
    import time

    calls = []
    release = threading.Event()

    def slow(batch):
        calls.append(1)
        release.wait(10)
        return model.encode_image(batch)

    cache = FeatureCache(2**30)
    pixels = torch.zeros(1, 3, 128, 128)
    out = []
    threads = [
        threading.Thread(target=lambda: out.append(cache.features(model, pixels, slow))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)  # all four are in: one encodes, three wait
    release.set()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(out) == 4 and all(o is out[0] for o in out)
    assert (cache.misses, cache.hits) == (1, 3)


def test_a_named_input_is_neither_hashed_nor_built_on_a_hit(model) -> None:
    cache = FeatureCache(2**30)
    built = []
    pixels = torch.rand(1, 3, 128, 128)

    def make():
        built.append(1)
        return pixels

    first = cache.features(model, make, model.encode_image, key=("video-digest", 7))
    again = cache.features(model, make, model.encode_image, key=("video-digest", 7))
    assert again is first and len(built) == 1 and (cache.hits, cache.misses) == (1, 1)
    other = cache.features(model, make, model.encode_image, key=("video-digest", 8))
    assert other is not first and len(built) == 2  # another frame: encoded
    # a named entry and the same bits unnamed are different entries (the name is the caller's word)
    cache.features(model, pixels, model.encode_image)
    assert cache.misses == 3
    predictor = ImagePredictor(model, feature_cache=cache)
    predictor.set_image(_images(1)[0], cache_key=("video-digest", 7))
    assert predictor._features is first
