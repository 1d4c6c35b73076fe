"""The official image-path names work over masklet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.compat import (
    SAM2AutomaticMaskGenerator,
    SAM2ImagePredictor,
    apply_hydra_overrides,
    build_sam2,
    config_name_from_file,
)
from masklet.configs import get_config
from masklet.errors import ConfigError


def test_config_files_map_to_names():
    assert config_name_from_file("configs/sam2.1/sam2.1_hiera_t.yaml") == "sam2.1_hiera_t"
    assert config_name_from_file("sam2_hiera_b+.yaml") == "sam2_hiera_b+"
    with pytest.raises(ConfigError, match="unknown SAM 2 config file"):
        config_name_from_file("configs/sam3/sam3.yaml")


def test_hydra_overrides_reach_typed_fields():
    cfg = apply_hydra_overrides(
        get_config("sam2.1_hiera_t"),
        ["++model.fill_hole_area=0", "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.9",
         "++model.image_size=512", "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor"],
    )
    assert cfg.tracking.fill_hole_area == 0
    assert cfg.mask_decoder.dynamic_multimask_stability_thresh == 0.9
    assert cfg.image_size == 512
    with pytest.raises(ConfigError, match="names no known SAM 2 setting"):
        apply_hydra_overrides(cfg, ["++model.flux_capacitor=1"])


def test_build_and_predict_like_the_official_notebook():
    torch.manual_seed(0)
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                       hydra_overrides_extra=["++model.image_size=128"], apply_postprocessing=False)
    assert not model.training and not model.config.mask_decoder.dynamic_multimask_via_stability
    predictor = SAM2ImagePredictor(model)
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    predictor.set_image(image)
    masks, scores, logits = predictor.predict(point_coords=np.array([[40, 30]]), point_labels=np.array([1]))
    assert masks.shape == (3, 64, 80) and scores.shape == (3,) and logits.shape == (3, 32, 32)
    records = SAM2AutomaticMaskGenerator(model, points_per_side=2, pred_iou_thresh=0,
                                         stability_score_thresh=0).generate(image)
    assert records and set(records[0]) >= {"segmentation", "area", "bbox", "predicted_iou", "stability_score"}


@pytest.fixture(scope="module")
def seeded_small():
    """sam2.1 tiny at 128 px with the parity weights (masks react to prompts, the stable branch varies)."""
    from seeded_weights import PARITY_SEED, seeded_state_dict, shapes_of

    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                       hydra_overrides_extra=["++model.image_size=128"])
    model.load_state_dict(seeded_state_dict(shapes_of(model.state_dict()), PARITY_SEED))
    return model


def _image(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_predict_returns_float_masks_as_upstream(seeded_small):
    """Upstream returns float32 masks (0/1, or logits), float32 scores and low-res logits."""
    from masklet.predict.image import ImagePredictor

    image, click = _image(), {"point_coords": np.array([[40, 30]]), "point_labels": np.array([1])}
    official, native = SAM2ImagePredictor(seeded_small), ImagePredictor(seeded_small)
    official.set_image(image)
    native.set_image(image)
    masks, scores, low_res = official.predict(**click)
    bool_masks, _, _ = native.predict(**click)
    assert masks.dtype == np.float32 and scores.dtype == np.float32 and low_res.dtype == np.float32
    assert set(np.unique(masks)) == {0.0, 1.0} and np.array_equal(masks, bool_masks.astype(np.float32))
    assert bool_masks.dtype == bool  # masklet's own predictor keeps boolean masks
    logits, _, _ = official.predict(**click, return_logits=True)
    assert logits.dtype == np.float32 and np.array_equal(logits > 0, bool_masks)

    official.set_image_batch([image, _image(seed=1)])
    batch_masks, batch_scores, batch_low = official.predict_batch([click["point_coords"]] * 2,
                                                                  [click["point_labels"]] * 2)
    assert [m.dtype for m in batch_masks] == [np.float32] * 2
    assert np.array_equal(batch_masks[0], masks)
    assert all(s.dtype == np.float32 for s in batch_scores) and all(x.dtype == np.float32 for x in batch_low)


def _refined(predictor, point: list[float], threshold: float) -> list[tuple[float, np.ndarray]]:
    """The refinement rule spelled out: each multimask candidate's low-res logits go back in as the
    mask prompt with its point, single-mask output; -> (IoU, binary mask) per candidate."""
    coords, labels = np.array([point]), np.array([1])
    _, _, low_res = predictor.predict(point_coords=coords, point_labels=labels, multimask_output=True)
    out = []
    for candidate in low_res:
        logits, iou, _ = predictor.predict(point_coords=coords, point_labels=labels, mask_input=candidate[None],
                                           multimask_output=False, return_logits=True)
        out.append((float(iou[0]), logits[0] > threshold))
    return out


def test_use_m2m_refines_every_candidate_with_its_own_logits(seeded_small):
    from masklet.io.masks import decode_rle

    image = _image(96, 128, seed=3)
    args = dict(points_per_side=2, points_per_batch=5, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                box_nms_thresh=1.0, mask_threshold=4.0, output_mode="coco_rle")
    refined = SAM2AutomaticMaskGenerator(seeded_small, use_m2m=True, **args).generate(image)
    plain = SAM2AutomaticMaskGenerator(seeded_small, **args).generate(image)
    assert refined and plain
    assert sorted(r["predicted_iou"] for r in refined) != sorted(r["predicted_iou"] for r in plain)

    predictor = SAM2ImagePredictor(seeded_small)
    predictor.set_image(image)
    for record in refined:
        candidates = _refined(predictor, record["point_coords"][0], args["mask_threshold"])
        mask = decode_rle(record["segmentation"])
        assert any(
            abs(iou - record["predicted_iou"]) < 1e-5 and np.array_equal(m, mask) for iou, m in candidates
        ), f"mask at {record['point_coords']} is not one of its refined candidates"


@pytest.mark.slow  # about 40 s on two busy cores: 64 points, 192 refinements
def test_use_m2m_matches_the_official_generator(data_dir):
    """tools/parity/amg_m2m_fixture.py: the official generator with use_m2m=True, seeded weights, 256-px input."""
    import hashlib
    import json

    from PIL import Image
    from seeded_weights import PARITY_SEED, seeded_state_dict, shapes_of, state_dict_digest

    from masklet.io.masks import decode_rle

    meta = json.loads((data_dir / "parity" / "amg_m2m_truck.json").read_text())
    model = build_sam2(f"configs/sam2.1/{meta['model']}.yaml", None, device="cpu",
                       hydra_overrides_extra=[f"++model.image_size={meta['image_size']}"])
    weights = seeded_state_dict(shapes_of(model.state_dict()), PARITY_SEED)
    assert state_dict_digest(weights) == meta["weights_sha256"], "seeded weight rule changed: regenerate"
    model.load_state_dict(weights, strict=True)
    with Image.open(data_dir / "images" / "truck.jpg") as im:
        im = im.convert("RGB")
        image = np.array(im.resize((256, round(im.height * 256 / im.width)), Image.Resampling.BILINEAR))
    assert hashlib.sha256(image.tobytes()).hexdigest() == meta["image"]["sha256_rgb"]
    records = SAM2AutomaticMaskGenerator(model, **meta["generator_args"]).generate(image)
    expected = meta["masks"]
    assert len(records) == len(expected) >= 3
    for ours, ref in zip(records, expected, strict=True):
        a, b = decode_rle(ours["segmentation"]), decode_rle(ref["segmentation"])
        assert (a & b).sum() / max((a | b).sum(), 1) >= 0.99, f"mask at {ref['point_coords']}"
        assert ours["bbox"] == pytest.approx(ref["bbox"], abs=1)
        assert ours["predicted_iou"] == pytest.approx(ref["predicted_iou"], abs=1e-4)
        assert ours["stability_score"] == pytest.approx(ref["stability_score"], abs=1e-3)
        assert ours["point_coords"][0] == pytest.approx(ref["point_coords"][0], abs=1e-3)
