"""AutomaticMaskGenerator against the official generator with hole/speck clean-up and with crops.

Fixtures: tests/data/parity/amg_truck_small_regions.json and amg_truck_crops.json from
tools/parity/amg_fixture.py (512-px model input, seeded weights; tools/parity/README.md).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from masklet.build import build_sam2
from masklet.io.masks import decode_rle
from masklet.predict.automatic import AutomaticMaskGenerator

pytestmark = [pytest.mark.slow, pytest.mark.threads(2)]


def _generate(data_dir, name: str) -> tuple[list, list[dict]]:
    from seeded_weights import PARITY_SEED, seeded_state_dict, shapes_of, state_dict_digest

    meta = json.loads((data_dir / "parity" / f"{name}.json").read_text())
    model = build_sam2(meta["model"], image_size=meta["image_size"])
    weights = seeded_state_dict(shapes_of(model.state_dict()), PARITY_SEED)
    assert state_dict_digest(weights) == meta["weights_sha256"], "seeded weight rule changed: regenerate"
    model.load_state_dict(weights, strict=True)
    with Image.open(data_dir / "images" / "truck.jpg") as im:
        im = im.convert("RGB")
        width = meta["image"]["hw"][1]
        image = np.array(im.resize((width, round(im.height * width / im.width)), Image.Resampling.BILINEAR))
    assert hashlib.sha256(image.tobytes()).hexdigest() == meta["image"]["sha256_rgb"]
    args = {k: v for k, v in meta["generator_args"].items() if k != "use_m2m"}
    assert not meta["generator_args"]["use_m2m"]
    return AutomaticMaskGenerator(model, **args).generate(image), meta["masks"]


def _compare(records: list, expected: list[dict], *, min_iou: float, stability_atol: float) -> None:
    assert len(records) == len(expected), f"{len(records)} masks, expected {len(expected)}"
    for ours, ref in zip(records, expected, strict=True):
        where = f"mask at {ref['point_coords']} from crop {ref['crop_box']}"
        a, b = decode_rle(ours.segmentation), decode_rle(ref["segmentation"])
        iou = (a & b).sum() / max((a | b).sum(), 1)
        assert iou >= min_iou, f"{where}: IoU {iou:.5f}"
        assert ours.crop_box == ref["crop_box"], where
        assert ours.bbox == pytest.approx(ref["bbox"], abs=1), where
        assert ours.area == pytest.approx(ref["area"], rel=1 - min_iou), where
        assert ours.predicted_iou == pytest.approx(ref["predicted_iou"], abs=1e-4), where
        assert ours.stability_score == pytest.approx(ref["stability_score"], abs=stability_atol), where
        assert ours.point_coords[0] == pytest.approx(ref["point_coords"][0], abs=1e-3), where


def test_min_mask_region_area_matches(data_dir) -> None:
    """Holes and specks of <= 100 low-res pixels cleaned up at the predictor's threshold 0.

    Tight bounds: the speck rule of the official code (specks found before hole filling)
    against the other order moves masks by 0.1-1.2 % IoU and stability by up to 4e-3.
    """
    records, expected = _generate(data_dir, "amg_truck_small_regions")
    assert len(expected) >= 6
    _compare(records, expected, min_iou=0.9995, stability_atol=2e-4)


def test_crop_layer_matches(data_dir) -> None:
    records, expected = _generate(data_dir, "amg_truck_crops")
    assert len({tuple(m["crop_box"]) for m in expected}) > 1
    _compare(records, expected, min_iou=0.99, stability_atol=1e-3)
