"""Write tests/data/eval/reference_scores.json: J and F computed by the official evaluation code.

Not part of the package or the tests' runtime. Run once, in an environment with numpy,
pycocotools, opencv-python-headless and scikit-image, pointing at the two official files:

    python tools/make_eval_reference.py \
        --davis-metrics davis2017-evaluation/davis2017/metrics.py \
        --sav-benchmark sam2/sav_dataset/utils/sav_benchmark.py

Inputs are masks of tests/data/sav/sav_000001_*.json, so tests rebuild them from the
committed files; the cases (frame pairs, shifts) are listed in the output next to the scores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[1]
SAV = ROOT / "tests" / "data" / "sav"

# single-frame cases: (pred annotated frame, gt annotated frame, object) from the auto file
FRAME_CASES = [(t, t + d, o) for t, d, o in [
    (0, 1, 0), (10, 1, 1), (20, 2, 2), (30, 1, 3), (40, 3, 4), (50, 1, 5), (60, 1, 6),
    (70, 2, 7), (80, 1, 8), (90, 5, 0), (100, 1, 6), (110, 4, 8), (5, 0, 1), (119, 1, 2),
]]  # fmt: skip
# video case on the manual file: annotated frames 90..120, prediction = gt two frames later,
# object 2 predicted empty on frames 95..99 (object 3 first appears at 113)
VIDEO_FRAMES = list(range(90, 121))
VIDEO_SHIFT = 2
VIDEO_EMPTY = {2: list(range(95, 100))}


def _load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis-metrics", required=True)
    parser.add_argument("--sav-benchmark", required=True)
    parser.add_argument("--out", default=str(ROOT / "tests" / "data" / "eval" / "reference_scores.json"))
    args = parser.parse_args()
    davis = _load_module(args.davis_metrics, "davis_metrics")
    sav = _load_module(args.sav_benchmark, "sav_benchmark")

    auto = json.loads((SAV / "sav_000001_auto.json").read_text())
    frames = []
    for tp, tg, o in FRAME_CASES:
        pred, gt = _decode(auto["masklet"][tp][o]), _decode(auto["masklet"][tg][o])
        frames.append({"pred": [tp, o], "gt": [tg, o], "J": float(davis.db_eval_iou(gt, pred)),
                       "F": float(davis.f_measure(pred, gt))})  # fmt: skip

    manual = json.loads((SAV / "sav_000001_manual.json").read_text())
    last = len(manual["masklet"]) - 1
    video = {}
    for skip in (True, False):
        per_obj = {}
        for o in range(manual["masklet_num"]):
            evaluator = sav.Evaluator(name="sav_000001", obj_id=o)
            scored = VIDEO_FRAMES[1:-1] if skip else VIDEO_FRAMES
            for t in scored:
                gt = _decode(manual["masklet"][t][o])
                pred = _decode(manual["masklet"][min(t + VIDEO_SHIFT, last)][o])
                if t in VIDEO_EMPTY.get(o, []):
                    pred = np.zeros_like(pred)
                evaluator.feed_frame(mask=pred.astype(np.uint8), gt=gt.astype(np.uint8))
            iou, boundary = evaluator.conclude()
            if iou:  # the official tool keeps only objects seen in the gt
                per_obj[str(o)] = {"J": float(iou[1]) / 100, "F": float(boundary[1]) / 100,
                                   "frames": len(evaluator.object_iou[1])}  # fmt: skip
        video["skip" if skip else "noskip"] = per_obj

    out = {
        "source": "davis2017-evaluation metrics.py (db_eval_iou, f_measure) and sam2 sav_benchmark.py Evaluator",
        "frame_cases": frames,
        "video_case": {"frames": VIDEO_FRAMES, "shift": VIDEO_SHIFT, "empty": VIDEO_EMPTY, "objects": video},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
