"""Record the official SAM2AutomaticMaskGenerator's output under seeded weights, for parity tests.

Runs only in the oracle venv (sam2==1.1.0, pycocotools, scipy), from the repository root:
    /work/refenv/bin/python tools/parity/amg_fixture.py [--fixtures NAME ...]

Writes tests/data/parity/<name>.json for each fixture in FIXTURES (generator arguments, model
input size, input recipe, the masks as COCO RLE with their scores) and, for amg_truck,
tests/data/parity/amg_truck.npz (every candidate's scores before filtering, to locate a
divergence). tools/parity/README.md documents them.

Two fixtures run the model at a 512-px input to stay fast. The official image predictor hard-codes
the backbone feature sizes of a 1024 input (`_bb_feat_sizes`); the script sets them from the
model's image size. `min_mask_region_area` makes the predictor fill holes and remove specks with the
official CUDA extension, which the CPU run skips with a warning: as in video_fixtures.py,
`sam2.utils.misc.get_connected_components` is replaced by a scipy stand-in (8-connectivity), so the
recorded masks are what a GPU computes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seeded_weights as sw  # noqa: E402
from cpu_components import connected_components  # noqa: E402

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


# name -> (model input size, generator arguments); amg_truck is the original fixture.
FIXTURES: dict[str, tuple[int, dict[str, Any]]] = {
    "amg_truck": (1024, GENERATOR_ARGS),
    # The predictor post-processes low-res logits at ITS threshold (0, not mask_threshold): holes of
    # <= 100 px become +10 (foreground at mask_threshold 8 too), specks -10. The filled holes are
    # spread over the image, so every candidate's box is the whole image and box NMS either keeps
    # all (threshold 1.0) or one; the predicted-IoU threshold keeps the six best.
    "amg_truck_small_regions": (
        512,
        dict(
            GENERATOR_ARGS,
            points_per_side=8,
            min_mask_region_area=100,
            box_nms_thresh=1.0,
            pred_iou_thresh=0.765,
        ),
    ),
    # One crop layer: four overlapping crops with a 4 x 4 grid each besides the whole image;
    # crop-edge filtering and the NMS between crops both remove masks.
    "amg_truck_crops": (
        512,
        dict(GENERATOR_ARGS, points_per_side=8, crop_n_layers=1, crop_n_points_downscale_factor=2),
    ),
}


def load_image(width: int = WIDTH) -> np.ndarray:
    """truck.jpg, RGB, resized with PIL bilinear to `width` pixels wide (height rounded)."""
    im = Image.open(IMAGE).convert("RGB")
    height = round(im.height * width / im.width)
    return np.array(im.resize((width, height), Image.Resampling.BILINEAR))


def image_record(image: np.ndarray, width: int = WIDTH) -> dict[str, Any]:
    """How a test rebuilds the generator's input, and the digest it must match."""
    return {
        "file": "tests/data/images/truck.jpg",
        "recipe": f'im = PIL.Image.open(path).convert("RGB"); '
        f"np.array(im.resize(({width}, round(im.height * {width} / im.width)), "
        f"PIL.Image.Resampling.BILINEAR))",
        "hw": list(image.shape[:2]),
        "sha256_rgb": hashlib.sha256(image.tobytes()).hexdigest(),
    }


def mask_records(anns: list[dict]) -> list[dict]:
    """The generator's annotations as JSON: COCO RLE (counts as str) and every score."""
    out = []
    for a in anns:
        seg = a["segmentation"]
        counts = seg["counts"].decode() if isinstance(seg["counts"], bytes) else seg["counts"]
        out.append(
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
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes the way torchvision computes it (areas (x1-x0)*(y1-y0), no +1)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def decision_margins(
    iou: np.ndarray,
    stab: np.ndarray,
    boxes: np.ndarray,
    passed: np.ndarray,
    anns: list[dict],
    args: dict[str, Any],
) -> dict[str, float]:
    """How close the closest candidate came to each filter's threshold (a parity test's slack).

    Also replays the greedy box NMS on the candidates that passed and checks that it keeps
    exactly the generator's masks, in the generator's order (one crop only).
    """
    margins = {
        "pred_iou": float(np.min(np.abs(iou - args["pred_iou_thresh"]))),
        "stability": float(
            np.min(np.abs(stab[iou > args["pred_iou_thresh"]] - args["stability_score_thresh"]))
        ),
    }
    if args["crop_n_layers"] > 0:
        return margins
    idx = np.flatnonzero(passed.ravel())
    order = idx[np.argsort(-iou.ravel()[idx], kind="stable")]
    b = boxes.reshape(-1, 4)[order].astype(np.float64)
    overlap = box_iou(b, b)
    kept: list[int] = []
    nms_margin = np.inf
    for j in range(len(order)):
        worst = max((overlap[j, k] for k in kept), default=0.0)
        nms_margin = min(nms_margin, abs(worst - args["box_nms_thresh"]))
        if worst <= args["box_nms_thresh"]:
            kept.append(j)
    replay = [float(iou.ravel()[order[j]]) for j in kept]
    assert np.allclose(replay, [a["predicted_iou"] for a in anns], atol=0, rtol=0), "NMS replay differs"
    return {**margins, "box_nms_iou": float(nms_margin)}


def record(name: str, image_size: int, args: dict[str, Any]) -> None:
    from importlib.metadata import version

    import sam2.automatic_mask_generator as amg_module
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2
    from sam2.utils.amg import batched_mask_to_box, calculate_stability_score

    image = load_image()
    overrides = [] if image_size == 1024 else [f"++model.image_size={image_size}"]
    model = build_sam2(MODEL[1], None, device="cpu", hydra_overrides_extra=overrides)
    weights = sw.seeded_state_dict(sw.shapes_of(model.state_dict()), sw.PARITY_SEED)
    model.load_state_dict(weights, strict=True)
    generator = SAM2AutomaticMaskGenerator(model, **args)
    s = image_size // 4
    generator.predictor._bb_feat_sizes = [(s, s), (s // 2, s // 2), (s // 4, s // 4)]

    # Every candidate (point x multimask output) before any filter, in grid order (crop by crop).
    seen: dict[str, list[np.ndarray]] = {"iou": [], "stability": [], "boxes": [], "area": []}
    raw_predict = generator.predictor._predict

    def predict(point_coords: torch.Tensor, *pargs: Any, **kwargs: Any) -> Any:
        masks, iou, low_res = raw_predict(point_coords, *pargs, **kwargs)
        seen["iou"].append(iou.numpy().astype(np.float32))
        stability = calculate_stability_score(masks, args["mask_threshold"], args["stability_score_offset"])
        seen["stability"].append(stability.numpy().astype(np.float32))
        binary = masks > args["mask_threshold"]
        seen["boxes"].append(batched_mask_to_box(binary).numpy().astype(np.int64))
        seen["area"].append(binary.sum(dim=(-2, -1)).numpy().astype(np.int64))
        return masks, iou, low_res

    generator.predictor._predict = predict
    near_edge = [0]
    raw_near_edge = amg_module.is_box_near_crop_edge

    def count_near_edge(*eargs: Any, **kwargs: Any) -> torch.Tensor:
        out = raw_near_edge(*eargs, **kwargs)
        near_edge[0] += int(out.sum())
        return out

    amg_module.is_box_near_crop_edge = count_near_edge
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a skipped hole filling only warns
        with torch.no_grad():
            anns = generator.generate(image)
    amg_module.is_box_near_crop_edge = raw_near_edge

    all_iou = np.concatenate(seen["iou"])  # (P, 3)
    all_stab = np.concatenate(seen["stability"])  # (P, 3)
    all_boxes = np.concatenate(seen["boxes"])  # (P, 3, 4) xyxy, inclusive pixel extents
    all_area = np.concatenate(seen["area"])  # (P, 3)
    passed = (all_iou > args["pred_iou_thresh"]) & (all_stab >= args["stability_score_thresh"])
    print(
        f"{name}: image {image.shape}, model input {image_size}, {all_iou.size} candidates, "
        f"{int(passed.sum())} pass IoU+stability, {near_edge[0]} of those near a crop edge, {len(anns)} in the end"
    )
    print(
        f"  predicted IoU {all_iou.min():.3f}..{all_iou.max():.3f}, stability {all_stab.min():.3f}..{all_stab.max():.3f}"
    )
    assert len(anns) >= 6, f"only {len(anns)} masks passed; lower the thresholds"
    assert passed.sum() < all_iou.size, "the IoU/stability filters removed nothing"
    crop_layers = {tuple(a["crop_box"]) for a in anns}
    if args["crop_n_layers"] > 0:
        assert near_edge[0] > 0, "crop-edge filtering removed nothing"
        assert len(crop_layers) > 1, "every mask comes from one crop"
        assert passed.sum() - near_edge[0] > len(anns), "NMS removed nothing"
    elif args["box_nms_thresh"] < 1.0:
        assert passed.sum() > len(anns), "box NMS removed nothing"
    covers = np.array([a["area"] for a in anns]) / (image.shape[0] * image.shape[1])
    print(f"  cover of kept masks {covers.min():.3f}..{covers.max():.3f}, from {len(crop_layers)} crops")
    margins = decision_margins(all_iou, all_stab, all_boxes, passed, anns, args)
    print(f"  closest call per filter: {margins}")

    masks = mask_records(anns)
    doc = {
        "model": MODEL[0],
        "image_size": image_size,
        "seed": sw.PARITY_SEED,
        "rule_version": sw.RULE_VERSION,
        "weight_gain": sw.WEIGHT_GAIN,
        "weights_sha256": sw.state_dict_digest(weights),
        "sam2_version": version("sam2"),
        "torch_version": torch.__version__,
        "image": image_record(image),
        "generator_args": args,
        "num_candidates": int(all_iou.size),
        "num_passing_filters": int(passed.sum()),
        "num_near_crop_edge": near_edge[0],
        "decision_margins": margins,
        "masks": masks,
    }
    if name == "amg_truck":  # the original file, unchanged in layout
        del doc["image_size"], doc["num_near_crop_edge"]
    written = [f"{name}.json"]
    (OUT_DIR / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    if name == "amg_truck":
        grid = generator.point_grids[0] * np.array(image.shape[:2])[None, ::-1]  # (P, 2) pixels (x, y)
        np.savez_compressed(
            OUT_DIR / "amg_truck.npz",
            points=grid.astype(np.float32),
            candidate_iou=all_iou,
            candidate_stability=all_stab,
            candidate_boxes=all_boxes,
            candidate_area=all_area,
        )
        written.append("amg_truck.npz")
    for file in written:
        print(f"  wrote {file}: {(OUT_DIR / file).stat().st_size / 1e3:.0f} kB")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fixtures", nargs="+", default=list(FIXTURES), choices=list(FIXTURES))
    names = parser.parse_args().fixtures
    torch.set_num_threads(2)
    import sam2.utils.misc as misc

    misc.get_connected_components = connected_components
    for name in names:
        image_size, args = FIXTURES[name]
        record(name, image_size, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
