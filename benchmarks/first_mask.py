"""Time to the first mask on a long video, against Meta's sam2 (a script, not a test).

    python benchmarks/first_mask.py --reference-python ../refenv/bin/python [--hf-python ../refenv/bin/python] \\
        [--frames 1000] [--threads 2]

A synthetic 960x540 clip of --frames frames (masklet.io.synthetic: moving textured shapes) is
written twice: as an mp4 and as the official predictor's JPEG folder (sam2 1.1.0 reads an mp4
only through decord, which it does not install). Each side runs in a process of its own, with the
same checkpoint (seeded random weights, or --checkpoint): from nothing to the mask of one click on
frame 0, i.e. the official `init_state` + `add_new_points_or_box`; Hugging Face's own way (the
JPEGs read with PIL, its processor's `init_video_session` over all of them, then the click; it has
no lazy loader); masklet's `start` + `add_prompt`. masklet is timed on the mp4 and on the same JPEG
folder; the others on the folder (writing the folder is not counted for anyone). Also reported:
each process's peak RSS, and how far each first mask agrees with the official's on the same JPEGs
(HF's processor resizes bilinearly, the official bicubically).
Writes benchmarks/results/first_mask.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    NAMES,
    WorkerFailed,
    add_common_arguments,
    agreement,
    machine,
    machine_line,
    official_first_mask,
    official_video_predictor,
    peak_rss_mib,
    pythons,
    run_worker,
    save_worker_result,
    write_results,
    write_seeded_checkpoint,
)

CLICK = [400.0, 200.0]


def run_official(args: argparse.Namespace) -> dict:
    predictor = official_video_predictor(args.model, args.checkpoint, args.threads)
    seconds, _state, mask = official_first_mask(predictor, args.video, CLICK)
    return {"seconds": seconds, "mask": mask, "peak_rss_mib": peak_rss_mib()}


def run_hf(args: argparse.Namespace) -> dict:
    import torch
    from hf_side import build_hf, hf_click
    from PIL import Image

    torch.set_num_threads(args.threads)
    net, processor = build_hf(args.model, Path(args.checkpoint))
    with torch.inference_mode():
        t = time.perf_counter()
        frames = []
        for path in sorted(Path(args.video).glob("*.jpg")):
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB")))
        session = processor.init_video_session(video=frames, inference_device="cpu")
        del frames
        logits = hf_click(net, processor, session, 0, 1, [CLICK], [1], True)
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "mask": (logits > 0).numpy(), "peak_rss_mib": peak_rss_mib()}


def run_masklet(args: argparse.Namespace) -> dict:
    import torch

    from masklet.build import build_sam2
    from masklet.predict.video import VideoPredictor

    torch.set_num_threads(args.threads)
    model = build_sam2(args.model, checkpoint=args.checkpoint)
    with torch.inference_mode():
        t = time.perf_counter()
        with VideoPredictor(model).start(args.video) as session:
            _, logits = session.add_prompt(frame=0, obj_id=1, points=[CLICK], labels=[1])
            seconds = time.perf_counter() - t
            mask = (logits[0] > 0).numpy()
    return {"seconds": seconds, "mask": mask, "peak_rss_mib": peak_rss_mib()}


WORKERS = {"official": run_official, "hf": run_hf, "masklet": run_masklet}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        save_worker_result(args.out, args.worker, WORKERS[args.worker](args))
        return 0
    sides = pythons(parser, args)

    from masklet.io.synthetic import iter_synthetic_video, write_frame_folder, write_mp4

    runs: dict[str, dict] = {}
    failed: dict[str, str] = {}
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = args.checkpoint or str(write_seeded_checkpoint(args.model, root / "weights.pt"))
        print(f"writing a {args.frames}-frame 960x540 clip as mp4 and as JPEGs ...", flush=True)
        mp4 = write_mp4(
            (f.image for f in iter_synthetic_video(args.frames, 540, 960, num_objects=3)), root / "clip.mp4"
        )
        folder = root / "frames"
        write_frame_folder(
            (f.image for f in iter_synthetic_video(args.frames, 540, 960, num_objects=3)), folder
        )
        plan = [(f"{NAMES[k]} (JPEG folder)", k, v, folder) for k, v in sides.items()]
        plan.append((f"{NAMES['masklet']} (mp4)", "masklet", sides["masklet"], mp4))
        for i, (label, which, python, video) in enumerate(plan):
            print(f"{label} ...", flush=True)
            forwarded = ["--model", args.model, "--threads", str(args.threads), "--checkpoint", checkpoint,
                         "--video", str(video)]  # fmt: skip
            try:
                runs[label] = run_worker(python, __file__, which, root / f"{i}.npz", forwarded)
            except WorkerFailed as failure:
                if which == "official":
                    raise
                failed[label] = str(failure)  # a side that cannot hold the video is a result too
                print(f"  {failure}", flush=True)
                continue
            versions[which] = str(runs[label]["version"])
    official = runs[f"{NAMES['official']} (JPEG folder)"]
    result = {
        "machine": machine(args.threads, versions),
        "frames": args.frames,
        "size": "960x540",
        "model": f"{args.model} ({'seeded random weights' if not args.checkpoint else args.checkpoint}), "
        "1024 input, float32",
        "seconds": {k: float(v["seconds"]) for k, v in runs.items()},
        "peak_rss_mib": {k: float(v["peak_rss_mib"]) for k, v in runs.items()},
        "speedup": {k: float(official["seconds"] / v["seconds"]) for k, v in runs.items()},
        "first_mask_agreement": {k: agreement(v["mask"], official["mask"]) for k, v in runs.items()},
        "official_mask_cover": float(official["mask"].mean()),
        "failed": failed,
    }
    cover = result["official_mask_cover"]
    md = [
        f"# Time to the first mask on a {args.frames}-frame 960x540 video ({result['model']})",
        "",
        machine_line(result["machine"]),
        "",
        "| | seconds | vs official | peak RSS | first mask equal to the official's |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {k} | {result['seconds'][k]:.1f} s | {result['speedup'][k]:.1f}x | {result['peak_rss_mib'][k]:.0f} MiB "
            f"| {100 * result['first_mask_agreement'][k]:.3f} % |"
            for k in runs
        ],
        *[f"| {k} | no result: {why} | - | - | - |" for k, why in failed.items()],
        "",
        f"The official mask covers {100 * cover:.1f} % of the frame"
        + ("." if 0.01 < cover < 0.99
           else ": under random weights this click found no object, so the agreement says little; "
                "benchmarks/propagation.py compares non-trivial masks."),  # fmt: skip
    ]
    write_results("first_mask", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
