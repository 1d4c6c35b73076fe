"""Record the official SAM2AutomaticMaskGenerator's output under seeded weights, for parity tests.

Runs only in the oracle venv (sam2==1.1.0, pycocotools), from the repository root:
    /work/refenv/bin/python tools/parity/amg_fixture.py

Writes tests/data/parity/amg_truck.json (generator arguments, input recipe, the masks as COCO RLE
with their scores) and tests/data/parity/amg_truck.npz (every candidate's scores before filtering,
to locate a divergence). tools/parity/README.md documents both.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seeded_weights as sw  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tests" / "data" / "parity"
IMAGE = REPO / "tests" / "data" / "images" / "truck.jpg"
MODEL = ("sam2.1_hiera_t", "configs/sam2.1/sam2.1_hiera_t.yaml")
WIDTH = 512  # the image is downscaled before the generator sees it; the model input stays 1024

# Random-weight masks are textures over the whole image: at the default mask_threshold (0) every
# candidate's box is the full image and box NMS keeps one mask. A high mask_threshold (8, on logits
# reaching about +-25) leaves the strongest regions, whose boxes differ; the IoU and stability
# thresholds are lowered from the defaults (0.8 / 0.95) so that >= 10 masks survive while every
# filter (predicted IoU, stability, box NMS) still removes candidates.
GENERATOR_ARGS: dict[str, Any] = dict(
    points_per_side=16,
    points_per_batch=64,
    pred_iou_thresh=0.4195,  # both sit in the widest gap between candidates' scores near 0.4 / 0.1
    stability_score_thresh=0.0835,
    stability_score_offset=1.0,
    mask_threshold=8.0,
    box_nms_thresh=0.9,
    crop_n_layers=0,
    crop_nms_thresh=0.7,
    crop_overlap_ratio=512 / 1500,
    crop_n_points_downscale_factor=1,
    min_mask_region_area=0,
    output_mode="coco_rle",
    use_m2m=False,
    multimask_output=True,
)


def load_image() -> np.ndarray:
    """truck.jpg, RGB, resized with PIL bilinear to WIDTH pixels wide (height rounded)."""
    im = Image.open(IMAGE).convert("RGB")
    height = round(im.height * WIDTH / im.width)
    return np.array(im.resize((WIDTH, height), Image.Resampling.BILINEAR))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes the way torchvision computes it (areas (x1-x0)*(y1-y0), no +1)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def decision_margins(
    iou: np.ndarray, stab: np.ndarray, boxes: np.ndarray, passed: np.ndarray, anns: list[dict]
) -> dict[str, float]:
    """How close the closest candidate came to each filter's threshold (a parity test's slack).

    Also replays the greedy box NMS on the candidates that passed and checks that it keeps
    exactly the generator's masks, in the generator's order.
    """
    idx = np.flatnonzero(passed.ravel())
    order = idx[np.argsort(-iou.ravel()[idx], kind="stable")]
    b = boxes.reshape(-1, 4)[order].astype(np.float64)
    overlap = box_iou(b, b)
    kept: list[int] = []
    nms_margin = np.inf
    for j in range(len(order)):
        worst = max((overlap[j, k] for k in kept), default=0.0)
        nms_margin = min(nms_margin, abs(worst - GENERATOR_ARGS["box_nms_thresh"]))
        if worst <= GENERATOR_ARGS["box_nms_thresh"]:
            kept.append(j)
    replay = [float(iou.ravel()[order[j]]) for j in kept]
    assert np.allclose(replay, [a["predicted_iou"] for a in anns], atol=0, rtol=0), "NMS replay differs"
    return {
        "pred_iou": float(np.min(np.abs(iou - GENERATOR_ARGS["pred_iou_thresh"]))),
        "stability": float(
            np.min(
                np.abs(
                    stab[iou > GENERATOR_ARGS["pred_iou_thresh"]] - GENERATOR_ARGS["stability_score_thresh"]
                )
            )
        ),
        "box_nms_iou": float(nms_margin),
    }


def main() -> int:
    torch.set_num_threads(2)
    from importlib.metadata import version

    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2
    from sam2.utils.amg import batched_mask_to_box, calculate_stability_score

    image = load_image()
    model = build_sam2(MODEL[1], None, device="cpu")
    weights = sw.seeded_state_dict(sw.shapes_of(model.state_dict()), sw.PARITY_SEED)
    model.load_state_dict(weights, strict=True)
    generator = SAM2AutomaticMaskGenerator(model, **GENERATOR_ARGS)

    # Every candidate (point x multimask output) before any filter, in grid order.
    seen: dict[str, list[np.ndarray]] = {"iou": [], "stability": [], "boxes": [], "area": []}
    raw_predict = generator.predictor._predict

    def predict(point_coords: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        masks, iou, low_res = raw_predict(point_coords, *args, **kwargs)
        seen["iou"].append(iou.numpy().astype(np.float32))
        stability = calculate_stability_score(
            masks, GENERATOR_ARGS["mask_threshold"], GENERATOR_ARGS["stability_score_offset"]
        )
        seen["stability"].append(stability.numpy().astype(np.float32))
        binary = masks > GENERATOR_ARGS["mask_threshold"]
        seen["boxes"].append(batched_mask_to_box(binary).numpy().astype(np.int64))
        seen["area"].append(binary.sum(dim=(-2, -1)).numpy().astype(np.int64))
        return masks, iou, low_res

    generator.predictor._predict = predict
    with torch.no_grad():
        anns = generator.generate(image)

    all_iou = np.concatenate(seen["iou"])  # (P, 3)
    all_stab = np.concatenate(seen["stability"])  # (P, 3)
    all_boxes = np.concatenate(seen["boxes"])  # (P, 3, 4) xyxy, inclusive pixel extents
    all_area = np.concatenate(seen["area"])  # (P, 3)
    grid = generator.point_grids[0] * np.array(image.shape[:2])[None, ::-1]  # (P, 2) pixels (x, y)
    passed = (all_iou > GENERATOR_ARGS["pred_iou_thresh"]) & (
        all_stab >= GENERATOR_ARGS["stability_score_thresh"]
    )
    print(
        f"image {image.shape}, {all_iou.size} candidates, {int(passed.sum())} pass IoU+stability, "
        f"{len(anns)} after NMS"
    )
    print(
        f"  predicted IoU {all_iou.min():.3f}..{all_iou.max():.3f}, stability {all_stab.min():.3f}..{all_stab.max():.3f}"
    )
    assert len(anns) >= 10, f"only {len(anns)} masks passed; lower the thresholds"
    assert passed.sum() > len(anns), "box NMS removed nothing"
    assert passed.sum() < all_iou.size, "the IoU/stability filters removed nothing"
    covers = np.array([a["area"] for a in anns]) / (image.shape[0] * image.shape[1])
    print(f"  cover of kept masks {covers.min():.3f}..{covers.max():.3f}")
    margins = decision_margins(all_iou, all_stab, all_boxes, passed, anns)
    print(f"  closest call per filter: {margins}")

    masks = []
    for a in anns:
        seg = a["segmentation"]
        counts = seg["counts"].decode() if isinstance(seg["counts"], bytes) else seg["counts"]
        masks.append(
            {
                "segmentation": {"size": list(seg["size"]), "counts": counts},
                "area": int(a["area"]),
                "bbox": [float(v) for v in a["bbox"]],
                "predicted_iou": float(a["predicted_iou"]),
                "stability_score": float(a["stability_score"]),
                "point_coords": [[float(v) for v in p] for p in a["point_coords"]],
                "crop_box": [float(v) for v in a["crop_box"]],
            }
        )
    doc = {
        "model": MODEL[0],
        "seed": sw.PARITY_SEED,
        "rule_version": sw.RULE_VERSION,
        "weight_gain": sw.WEIGHT_GAIN,
        "weights_sha256": sw.state_dict_digest(weights),
        "sam2_version": version("sam2"),
        "torch_version": torch.__version__,
        "image": {
            "file": "tests/data/images/truck.jpg",
            "recipe": f'im = PIL.Image.open(path).convert("RGB"); '
            f"np.array(im.resize(({WIDTH}, round(im.height * {WIDTH} / im.width)), "
            f"PIL.Image.Resampling.BILINEAR))",
            "hw": list(image.shape[:2]),
            "sha256_rgb": hashlib.sha256(image.tobytes()).hexdigest(),
        },
        "generator_args": GENERATOR_ARGS,
        "num_candidates": int(all_iou.size),
        "num_passing_filters": int(passed.sum()),
        "decision_margins": margins,
        "masks": masks,
    }
    (OUT_DIR / "amg_truck.json").write_text(json.dumps(doc, indent=1) + "\n")
    np.savez_compressed(
        OUT_DIR / "amg_truck.npz",
        points=grid.astype(np.float32),
        candidate_iou=all_iou,
        candidate_stability=all_stab,
        candidate_boxes=all_boxes,
        candidate_area=all_area,
    )
    for name in ("amg_truck.json", "amg_truck.npz"):
        print(f"wrote {name}: {(OUT_DIR / name).stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
