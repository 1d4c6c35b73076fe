"""Does a checkpoint written by `masklet train` load into Meta's sam2 and give masklet's outputs?

    python tools/parity/trained_checkpoint.py --reference-python ../refenv/bin/python \
        --checkpoint RUN/checkpoint.pt --image-size 128

Both packages run the same code through the official API (`sam2.build_sam` in the
reference venv, `masklet.compat` here): the image predictor on a click and a box, and the
video predictor on a click propagated through a short synthetic clip (the official side's
hole filling, a CUDA extension, replaced by the CPU equivalent of cpu_components.py, as the video
fixtures do). The official builder
loads the file strictly (it raises on a missing or unexpected key). Prints the largest
logit difference and the share of equal mask pixels, and exits 1 when they are off
(logits beyond 1e-3, or any mask pixel different).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def run_side(package: str, checkpoint: str, image_size: int, work: Path) -> None:
    """The outputs of one package, written to WORK/{package}.npz (runs under that package's python)."""
    import torch

    if package == "official":
        from cpu_components import CountingComponents
        from sam2.build_sam import build_sam2, build_sam2_video_predictor
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        from sam2.utils import misc

        # the CUDA extension's hole filling on the CPU, as tools/parity/video_fixtures.py does
        misc.get_connected_components = CountingComponents(max_area=8)
    else:
        from masklet.compat import SAM2ImagePredictor, build_sam2, build_sam2_video_predictor
    overrides = [] if image_size == 1024 else [f"++model.image_size={image_size}"]
    image = np.load(work / "image.npy")
    out = {}
    with torch.inference_mode():
        predictor = SAM2ImagePredictor(build_sam2(CONFIG, checkpoint, device="cpu", hydra_overrides_extra=overrides))
        if package == "official":  # it hard-codes the backbone feature sizes of a 1024-px input
            s = image_size // 4
            predictor._bb_feat_sizes = [(s, s), (s // 2, s // 2), (s // 4, s // 4)]
        predictor.set_image(image)
        masks, scores, logits = predictor.predict(point_coords=np.array([[40.0, 60.0]]), point_labels=np.array([1]),
                                                  multimask_output=True)  # fmt: skip
        out["image_click_masks"], out["image_click_scores"], out["image_click_logits"] = masks, scores, logits
        masks, scores, logits = predictor.predict(box=np.array([20.0, 30.0, 90.0, 100.0]), multimask_output=False)
        out["image_box_masks"], out["image_box_scores"], out["image_box_logits"] = masks, scores, logits

        video = build_sam2_video_predictor(CONFIG, checkpoint, device="cpu", hydra_overrides_extra=overrides)
        state = video.init_state(str(work / "frames"))
        video.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=np.array([[40.0, 60.0]], dtype=np.float32),
                                    labels=np.array([1], dtype=np.int32))  # fmt: skip
        for frame, _, logits in video.propagate_in_video(state):
            out[f"video_{frame:03d}"] = logits.float().numpy()
    np.savez(work / f"{package}.npz", **out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--reference-python", help="python of a venv with Meta's sam2 (driver mode)")
    parser.add_argument("--side", choices=("official", "masklet"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args.side, args.checkpoint, args.image_size, Path(args.work))
        return 0
    if not args.reference_python:
        parser.error("--reference-python is required")

    from masklet.io.synthetic import make_synthetic_video, write_frame_folder

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = make_synthetic_video(6, 128, 160, 2, seed=5)
        np.save(work / "image.npy", clip.frames[0])
        write_frame_folder(clip.frames, work / "frames")
        for side, python in (("official", args.reference_python), ("masklet", sys.executable)):
            subprocess.run([python, __file__, "--side", side, "--checkpoint", args.checkpoint,
                            "--image-size", str(args.image_size), "--work", str(work)], check=True)  # fmt: skip
        official, ours = np.load(work / "official.npz"), np.load(work / "masklet.npz")
        if set(official) != set(ours):
            print(f"different outputs: {sorted(set(official) ^ set(ours))}")
            return 1
        report = {}
        for key in sorted(official):
            a, b = official[key].astype(np.float64), ours[key].astype(np.float64)
            entry = {"max_abs_diff": float(np.abs(a - b).max())}
            if "logits" in key or key.startswith("video"):
                entry["mask_pixels_equal"] = float(np.mean((a > 0) == (b > 0)))
            report[key] = entry
        print(json.dumps(report, indent=1))
        worst = max(e["max_abs_diff"] for k, e in report.items() if "logits" in k or k.startswith("video"))
        equal = min(e.get("mask_pixels_equal", 1.0) for e in report.values())
        print(f"checkpoint {args.checkpoint}: loaded strictly by both; worst logit difference {worst:.2e}, "
              f"mask pixels equal {equal:.4%}")  # fmt: skip
        return 0 if worst <= 1e-3 and equal == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
