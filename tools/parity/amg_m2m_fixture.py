"""Record the official SAM2AutomaticMaskGenerator with `use_m2m=True` under seeded weights.

Runs only in the oracle venv (sam2==1.1.0, pycocotools), from the repository root:
    /work/refenv/bin/python tools/parity/amg_m2m_fixture.py

Writes tests/data/parity/amg_m2m_truck.json: generator arguments, input recipe and the masks as
COCO RLE with their scores. Small on purpose (model input 256 px, truck.jpg at 256 px wide, an
8 x 8 grid) so the parity test runs in seconds. The script refuses to write unless the refinement
changes the result (the same generator with use_m2m=False keeps other masks or other scores),
so a test that ignores use_m2m fails against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seeded_weights as sw  # noqa: E402
from amg_fixture import image_record, load_image, mask_records  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "parity" / "amg_m2m_truck.json"
MODEL = ("sam2.1_hiera_t", "configs/sam2.1/sam2.1_hiera_t.yaml")
IMAGE_SIZE = 256  # model input, through the official override ++model.image_size
WIDTH = 256

# As in amg_fixture.py: random-weight masks are textures, so a high mask_threshold (12) leaves
# regions with distinct boxes (at 8 the refined masks' boxes collapse into two under NMS); the IoU
# threshold sits among the refined candidates' scores (0.7-0.8), stability is lowered so that
# several masks survive.
GENERATOR_ARGS: dict[str, Any] = dict(
    points_per_side=8,
    points_per_batch=16,  # < the 8 * 8 * 3 candidates: the refinement runs in several batches
    pred_iou_thresh=0.75,
    stability_score_thresh=0.02,
    stability_score_offset=1.0,
    mask_threshold=12.0,
    box_nms_thresh=0.9,
    crop_n_layers=0,
    min_mask_region_area=0,
    output_mode="coco_rle",
    use_m2m=True,
    multimask_output=True,
)


def main() -> int:
    torch.set_num_threads(2)
    from importlib.metadata import version

    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    image = load_image(WIDTH)
    model = build_sam2(
        MODEL[1], None, device="cpu", hydra_overrides_extra=[f"++model.image_size={IMAGE_SIZE}"]
    )
    weights = sw.seeded_state_dict(sw.shapes_of(model.state_dict()), sw.PARITY_SEED)
    model.load_state_dict(weights, strict=True)
    generators = [
        SAM2AutomaticMaskGenerator(model, **{**GENERATOR_ARGS, "use_m2m": m2m}) for m2m in (True, False)
    ]
    side = IMAGE_SIZE // 4
    for generator in generators:
        # the official image predictor hard-codes the feature sizes of a 1024-px input
        generator.predictor._bb_feat_sizes = [(side, side), (side // 2, side // 2), (side // 4, side // 4)]
    with torch.no_grad():
        refined, plain = (mask_records(generator.generate(image)) for generator in generators)
    print(f"image {image.shape}: {len(refined)} masks with use_m2m, {len(plain)} without")
    assert len(refined) >= 3, f"only {len(refined)} masks; lower the thresholds"
    assert [r["predicted_iou"] for r in refined] != [r["predicted_iou"] for r in plain], "m2m changed nothing"
    doc = {
        "model": MODEL[0],
        "image_size": IMAGE_SIZE,
        "seed": sw.PARITY_SEED,
        "rule_version": sw.RULE_VERSION,
        "weight_gain": sw.WEIGHT_GAIN,
        "weights_sha256": sw.state_dict_digest(weights),
        "sam2_version": version("sam2"),
        "torch_version": torch.__version__,
        "image": image_record(image, WIDTH),
        "generator_args": GENERATOR_ARGS,
        "masks": refined,
        "masks_without_m2m": [{k: r[k] for k in ("predicted_iou", "point_coords")} for r in plain],
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT.name}: {OUT.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
