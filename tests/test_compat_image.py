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
