"""Time to the first mask on a long video, against Meta's sam2 (a script, not a test).

    python benchmarks/first_mask.py --reference-python ../refenv/bin/python [--frames 1000] [--threads 2]

A synthetic 960x540 clip of --frames frames (masklet.io.synthetic: moving textured shapes) is
written twice: as an mp4 and as the official predictor's JPEG folder (sam2 1.1.0 reads an mp4
only through decord, which it does not install). Each side runs in a process of its own, with the
same seeded weights (tools/parity/seeded_weights.py): from nothing to the mask of one click on
frame 0, i.e. the official `init_state` + `add_new_points_or_box`, masklet's `start` +
`add_prompt`. masklet is timed on the mp4 and on the same JPEG folder; the official on the folder
(writing the folder is not counted for it). Also reported: each process's peak RSS, and how far
masklet's first mask agrees with the official's on the same JPEGs.
Writes benchmarks/results/first_mask.json and .md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from seeded import load_seeded

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"
CLICK = [400.0, 200.0]
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_official(video: str, threads: int) -> dict:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.set_num_threads(threads)
    predictor = build_sam2_video_predictor(CONFIG, None, device="cpu")
    load_seeded(predictor)
    predictor.eval()
    with torch.inference_mode():
        t = time.perf_counter()
        state = predictor.init_state(video)
        _, _, logits = predictor.add_new_points_or_box(
            state, frame_idx=0, obj_id=1, points=np.array([CLICK], np.float32), labels=np.array([1], np.int32)
        )
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "mask": (logits[0, 0] > 0).numpy(), "peak_rss_mib": _peak_rss_mib()}


def run_masklet(video: str, threads: int) -> dict:
    import torch

    from masklet.build import build_sam2
    from masklet.predict.video import VideoPredictor

    torch.set_num_threads(threads)
    model = build_sam2("sam2.1_hiera_t")
    load_seeded(model)
    t = time.perf_counter()
    with VideoPredictor(model).start(video) as session:
        _, logits = session.add_prompt(frame=0, obj_id=1, points=[CLICK], labels=[1])
        seconds = time.perf_counter() - t
        mask = (logits[0] > 0).numpy()
    return {"seconds": seconds, "mask": mask, "peak_rss_mib": _peak_rss_mib()}


def _worker(python: str, which: str, video: Path, threads: int, out: Path) -> dict:
    cmd = [
        python,
        __file__,
        "--worker",
        which,
        "--video",
        str(video),
        "--threads",
        str(threads),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, cwd=REPO)
    with np.load(out) as z:
        return {"seconds": float(z["seconds"]), "mask": z["mask"], "peak_rss_mib": float(z["peak_rss_mib"])}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference-python", help="python of a venv with sam2==1.1.0")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=["masklet", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = (run_official if args.worker == "official" else run_masklet)(args.video, args.threads)
        np.savez(args.out, **result)
        return 0
    if not args.reference_python:
        parser.error("--reference-python is needed: the figure is a ratio against the official code")

    from masklet.io.synthetic import iter_synthetic_video, write_frame_folder, write_mp4

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"writing a {args.frames}-frame 960x540 clip as mp4 and as JPEGs ...", flush=True)
        mp4 = write_mp4(
            (f.image for f in iter_synthetic_video(args.frames, 540, 960, num_objects=3)), root / "clip.mp4"
        )
        folder = root / "frames"
        write_frame_folder(
            (f.image for f in iter_synthetic_video(args.frames, 540, 960, num_objects=3)), folder
        )
        runs = {
            "official (JPEG folder)": _worker(
                args.reference_python, "official", folder, args.threads, root / "o.npz"
            ),
            "masklet (mp4)": _worker(sys.executable, "masklet", mp4, args.threads, root / "m.npz"),
            "masklet (JPEG folder)": _worker(sys.executable, "masklet", folder, args.threads, root / "f.npz"),
        }
    official = runs["official (JPEG folder)"]
    agreement = float((official["mask"] == runs["masklet (JPEG folder)"]["mask"]).mean())
    result = {
        "frames": args.frames,
        "size": "960x540",
        "threads": args.threads,
        "model": "sam2.1_hiera_t (seeded random weights), 1024 input, float32",
        "seconds": {k: v["seconds"] for k, v in runs.items()},
        "peak_rss_mib": {k: v["peak_rss_mib"] for k, v in runs.items()},
        "speedup": {k: official["seconds"] / v["seconds"] for k, v in runs.items()},
        "first_mask_agreement_same_jpegs": agreement,
        "official_mask_cover": float(official["mask"].mean()),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "first_mask.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# Time to the first mask on a {args.frames}-frame 960x540 video ({result['model']}, {args.threads} threads)",
        "",
        "| | seconds | vs official | peak RSS |",
        "| --- | --- | --- | --- |",
        *[
            f"| {k} | {v['seconds']:.1f} s | {result['speedup'][k]:.1f}x | {v['peak_rss_mib']:.0f} MiB |"
            for k, v in runs.items()
        ],  # fmt: skip
        "",
        f"masklet's first mask on the same JPEGs equals the official's on {100 * agreement:.3f} % of the pixels "
        f"(the official mask covers {100 * result['official_mask_cover']:.1f} %"
        + (")." if 0.01 < result["official_mask_cover"] < 0.99
           else ": under random weights this click found no object, so the agreement says little; "
                "benchmarks/propagation.py compares non-trivial masks)."),  # fmt: skip
    ]
    (OUT / "first_mask.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
