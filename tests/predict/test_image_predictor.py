"""ImagePredictor behaviour beyond parity: shapes, batching, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.errors import PromptError, SessionError
from masklet.predict.image import ImagePredictor


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(90, 120, 3), dtype=np.uint8)
    img[30:60, 40:80] = (250, 20, 20)
    return img


@pytest.fixture()
def predictor(small_model, image) -> ImagePredictor:
    pred = ImagePredictor(small_model)
    pred.set_image(image)
    return pred


def test_predict_shapes_follow_the_official_predictor(predictor):
    side = 4 * predictor.model.config.image_embedding_size
    masks, scores, low_res = predictor.predict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]))
    assert masks.shape == (3, 90, 120) and masks.dtype == bool
    assert scores.shape == (3,) and low_res.shape == (3, side, side)
    masks, scores, low_res = predictor.predict(box=np.array([40, 30, 80, 60]), multimask_output=False)
    assert masks.shape == (1, 90, 120)
    masks, scores, _ = predictor.predict(box=np.array([[40, 30, 80, 60], [0, 0, 50, 50]]), multimask_output=False)
    assert masks.shape == (2, 1, 90, 120) and scores.shape == (2, 1)


def test_logits_threshold_to_masks(predictor):
    kwargs = dict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]), multimask_output=False)
    masks, _, _ = predictor.predict(**kwargs)
    logits, _, _ = predictor.predict(return_logits=True, **kwargs)
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(masks, logits > 0)


def test_low_res_logits_feed_back_as_mask_input(predictor):
    _, _, low_res = predictor.predict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]))
    with_mask, _, _ = predictor.predict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]),
                                        mask_input=low_res[:1], multimask_output=False, return_logits=True)
    without, _, _ = predictor.predict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]),
                                      multimask_output=False, return_logits=True)
    assert np.abs(with_mask - without).max() > 0  # the mask prompt reaches the decoder


def test_batch_of_images_equals_single_images(small_model, image):
    other = np.ascontiguousarray(image[::-1, ::-1])
    single = ImagePredictor(small_model)
    expected = []
    for img in (image, other):
        single.set_image(img)
        expected.append(single.predict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]),
                                       return_logits=True))
    batch = ImagePredictor(small_model)
    batch.set_image_batch([image, other])
    masks, scores, low_res = batch.predict_batch([np.array([[60, 45]])] * 2, [np.array([1])] * 2, return_logits=True)
    for i in range(2):
        np.testing.assert_allclose(low_res[i], expected[i][2], atol=1e-4)
        np.testing.assert_allclose(scores[i], expected[i][1], atol=1e-5)


def test_pil_images_are_accepted(small_model, image):
    from PIL import Image

    pred = ImagePredictor(small_model)
    pred.set_image(Image.fromarray(image))
    assert pred.get_image_embedding().shape[0] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(point_coords=np.array([[500, 10]]), point_labels=np.array([1])), "outside the 120x90 image"),
        (dict(point_coords=np.array([[-1, 10]]), point_labels=np.array([1])), "outside"),
        (dict(point_coords=np.array([[10, 10]])), "point_labels must be given"),
        (dict(point_coords=np.array([[10, 10], [20, 20]]), point_labels=np.array([1])), "point_labels"),
        (dict(box=np.array([50, 30, 50, 60])), "empty or inverted"),
        (dict(box=np.array([80, 30, 40, 60])), "empty or inverted"),
        (dict(box=np.array([0, 0, 200, 60])), "outside"),
        (dict(mask_input=np.zeros((1, 64, 64))), "mask_input must be low-res logits"),
        (dict(point_coords=np.array([[np.nan, 10]]), point_labels=np.array([1])), "NaN"),
    ],
)
def test_bad_prompts_raise_prompt_error(predictor, kwargs, message):
    with pytest.raises(PromptError, match=message):
        predictor.predict(**kwargs)
    predictor.predict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]))  # still usable


def test_order_of_calls_is_checked(small_model, image):
    pred = ImagePredictor(small_model)
    with pytest.raises(SessionError, match="set_image"):
        pred.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))
    pred.set_image_batch([image, image])
    with pytest.raises(SessionError, match="predict_batch"):
        pred.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))
    with pytest.raises(PromptError, match="3 entries for 2 images"):
        pred.predict_batch([np.array([[1, 1]])] * 3, [np.array([1])] * 3)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), "image.jpg"])
def test_bad_images_raise(small_model, bad):
    with pytest.raises(PromptError):
        ImagePredictor(small_model).set_image(bad)


def test_model_is_not_mutated_by_prediction(small_model, image):
    before = {k: v.clone() for k, v in small_model.state_dict().items()}
    pred = ImagePredictor(small_model)
    pred.set_image(image)
    pred.predict(point_coords=np.array([[60, 45]]), point_labels=np.array([1]))
    after = small_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
