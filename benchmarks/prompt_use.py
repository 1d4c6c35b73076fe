"""Does a checkpoint follow its prompts? Boxes and clicks on every object of held-out frames.

    python benchmarks/prompt_use.py --checkpoint random --checkpoint runs/demo/checkpoint.pt

For each annotated object on the first two annotated frames of each video (an SA-V folder,
or `--synth N` held-out synthetic videos): the IoU of the mask from a box prompt, of the
candidate a click keeps (the highest predicted IoU) and of the best of the click's three
candidates; and how much the box masks of two different objects on the same frame overlap
(IoU). A model that ignores its prompts gives every object the same mask (overlap 1.0);
the best-of-three IoU above the kept one's says the IoU head picks badly.

Writes benchmarks/results/prompt_use.{json,md} (or --results).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class PromptUse:
    checkpoint: str
    objects: int
    box_iou: float
    click_kept_iou: float
    click_best_of_three_iou: float
    box_masks_overlap: float  # mean IoU between two objects' box masks on one frame
    pairs: int


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def measure(checkpoint: str, videos, *, model_name: str, image_size: int, seed: int = 0) -> PromptUse:
    import torch

    from masklet.build import build_sam2
    from masklet.io.frames import open_frame_source
    from masklet.predict.image import ImagePredictor

    torch.manual_seed(0)  # 'random' is the training loop's own initialisation
    model = build_sam2(model_name, checkpoint=None if checkpoint == "random" else checkpoint,
                       image_size=image_size).eval()  # fmt: skip
    predictor = ImagePredictor(model)
    rng = np.random.default_rng(seed)
    box, kept, best, overlap = [], [], [], []
    for video in videos:
        frames = open_frame_source(video.source)
        for index in range(min(2, len(video.frames))):
            predictor.set_image(np.asarray(frames[video.frames[index]]))
            box_masks = []
            for rles in video.masks.values():
                truth = rles[index].decode()
                if truth.sum() < 20:
                    continue
                ys, xs = np.nonzero(truth)
                from_box, _, _ = predictor.predict(box=np.array([xs.min(), ys.min(), xs.max(), ys.max()]),
                                                   multimask_output=False)  # fmt: skip
                j = rng.integers(len(ys))
                candidates, scores, _ = predictor.predict(np.array([[xs[j], ys[j]]]), np.array([1]))
                box.append(_iou(from_box[0], truth))
                kept.append(_iou(candidates[int(np.argmax(scores))], truth))
                best.append(max(_iou(c, truth) for c in candidates))
                box_masks.append(from_box[0])
            overlap += [_iou(a, b) for i, a in enumerate(box_masks) for b in box_masks[i + 1 :]]
    label = checkpoint if checkpoint == "random" else "/".join(Path(checkpoint).parts[-2:])
    return PromptUse(label, len(box), float(np.mean(box)), float(np.mean(kept)), float(np.mean(best)),
                     float(np.mean(overlap)) if overlap else float("nan"), len(overlap))  # fmt: skip


def render(rows: list[PromptUse], source: str) -> str:
    lines = [
        "# Prompt use: boxes and clicks on every object of held-out frames",
        "",
        f"Frames: {source}.",
        "",
        "| checkpoint | objects | box IoU | click IoU (kept candidate) | click IoU (best of 3) "
        "| overlap of two objects' box masks |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r.checkpoint} | {r.objects} | {r.box_iou:.3f} | {r.click_kept_iou:.3f} "
                     f"| {r.click_best_of_three_iou:.3f} | {r.box_masks_overlap:.3f} ({r.pairs} pairs) |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="a checkpoint of --model, or 'random' for a random init; repeatable")  # fmt: skip
    parser.add_argument("--model", default="sam2.1_hiera_t", help="config name (see `masklet models`)")
    parser.add_argument("--videos", help="an SA-V layout folder of held-out videos")
    parser.add_argument("--synth", type=int, default=8, help="without --videos: this many synthetic videos")
    parser.add_argument("--synth-seed", type=int, default=2, help="the loop benchmark's held-out sets: 2 and 3")
    parser.add_argument("--work", default="/tmp/masklet_prompt_use")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=str(OUT))
    args = parser.parse_args()

    import torch

    from masklet.io.synthetic_dataset import write_training_set
    from masklet.train.data import load_training_videos

    torch.set_num_threads(args.threads)
    if args.videos:
        folder, source = Path(args.videos), args.videos
    else:
        folder = Path(args.work) / f"synth_{args.synth}_{args.synth_seed}"
        if not folder.exists():
            write_training_set(folder, videos=args.synth, frames=48, height=args.image_size, width=args.image_size,
                               objects=(1, 3), seed=args.synth_seed)  # fmt: skip
        source = f"{args.synth} synthetic videos (seed {args.synth_seed}, {args.image_size} px)"
    videos = load_training_videos(folder)
    rows = [measure(c, videos, model_name=args.model, image_size=args.image_size) for c in args.checkpoint]
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prompt_use.json").write_text(json.dumps({"source": source, "rows": [asdict(r) for r in rows]}, indent=1))
    text = render(rows, source)
    (out / "prompt_use.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
