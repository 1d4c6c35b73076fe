"""Peak RSS against video length: the official predictor and masklet on 960x540 videos (a script).

    python benchmarks/memory.py --reference-python ../refenv/bin/python \\
        [--lengths 100,500,2000] [--image-size 1024] [--official-max-frames 1000]

For each length a synthetic 960x540 clip (masklet.io.synthetic) is written as an mp4 and as a JPEG
folder. Each run is a process of its own; its peak RSS is the figure.
- official: `init_state` on the folder and one click on frame 0. That is already where its memory
  goes (every frame as a float32 1024x1024 tensor, 12 MiB each); propagation only adds to it.
  Lengths above --official-max-frames are not run (2000 frames need 23.4 GiB for the frames alone).
- masklet: `start` on the mp4, one click on frame 0, then propagation through every frame, the
  session's default limits (bounded bank, 64 results in RAM, the rest spilled to disk).
At --image-size 1024 masklet's propagation costs seconds a frame on a CPU; a smaller model input
(--image-size 256) keeps the frames, masks and logits at the video's full 960x540, which is what
grows with the length, and shrinks the per-frame work. The results say which size was used.
Writes benchmarks/results/memory.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import (
    NAMES,
    add_common_arguments,
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

CLICK = [480.0, 270.0]


def run_official(args: argparse.Namespace) -> dict:
    predictor = official_video_predictor(args.model, args.checkpoint, args.threads)
    seconds, state, _mask = official_first_mask(predictor, args.video, CLICK)
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "frames": state["num_frames"]}


def run_masklet(args: argparse.Namespace) -> dict:
    import torch
    from tqdm import tqdm

    from masklet.build import build_sam2
    from masklet.predict.video import VideoPredictor

    torch.set_num_threads(args.threads)
    model = build_sam2(args.model, checkpoint=args.checkpoint, image_size=args.image_size)
    frames = 0
    with torch.inference_mode():
        t = time.perf_counter()
        with VideoPredictor(model).start(args.video) as session:
            session.add_prompt(frame=0, obj_id=1, points=[CLICK], labels=[1])
            for _ in tqdm(session.propagate(), total=session.num_frames, desc="masklet propagation"):
                frames += 1
            usage = session.memory_usage()
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "frames": frames,
            "session_ram_mib": usage.ram_bytes / 2**20}  # fmt: skip


WORKERS = {"official": run_official, "masklet": run_masklet}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--lengths", default="100,500,2000", help="video lengths in frames, comma-separated")
    parser.add_argument("--image-size", type=int, default=1024, help="masklet's model input (the video stays 960x540)")
    parser.add_argument("--official-max-frames", type=int, default=1000)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        save_worker_result(args.out, args.worker, WORKERS[args.worker](args))
        return 0
    sides = pythons(parser, args)
    lengths = sorted(int(n) for n in args.lengths.split(","))

    from masklet.io.synthetic import iter_synthetic_video, write_frame_folder, write_mp4

    official: dict[str, float] = {}
    ours: dict[str, dict] = {}
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # the official loads a 1024 model; masklet's may be smaller: each side its own weights file
        ref_checkpoint = args.checkpoint or str(write_seeded_checkpoint(args.model, root / "weights.pt"))
        for n in lengths:
            print(f"{n} frames: writing the clip ...", flush=True)
            mp4 = write_mp4((f.image for f in iter_synthetic_video(n, 540, 960, num_objects=3)), root / f"{n}.mp4")
            common_args = ["--model", args.model, "--threads", str(args.threads), "--image-size", str(args.image_size)]
            if n <= args.official_max_frames:
                folder = root / f"{n}_frames"
                write_frame_folder((f.image for f in iter_synthetic_video(n, 540, 960, num_objects=3)), folder)
                r = run_worker(sides["official"], __file__, "official", root / f"o{n}.npz",
                               [*common_args, "--checkpoint", ref_checkpoint, "--video", str(folder)])  # fmt: skip
                official[str(n)] = float(r["peak_rss_mib"])
                versions["official"] = str(r["version"])
                print(f"  official: {official[str(n)]:.0f} MiB", flush=True)
            ours_checkpoint = ref_checkpoint if args.image_size == 1024 else ""
            extra = ["--checkpoint", ours_checkpoint] if ours_checkpoint else []
            r = run_worker(sides["masklet"], __file__, "masklet", root / f"m{n}.npz",
                           [*common_args, *extra, "--video", str(mp4)])  # fmt: skip
            ours[str(n)] = {k: float(r[k]) for k in ("peak_rss_mib", "seconds", "frames", "session_ram_mib")}
            versions["masklet"] = str(r["version"])
            print(f"  masklet: {ours[str(n)]['peak_rss_mib']:.0f} MiB", flush=True)
    first, last = str(lengths[0]), str(lengths[-1])
    growth = ours[last]["peak_rss_mib"] / ours[first]["peak_rss_mib"] - 1
    result = {
        "machine": machine(args.threads, versions),
        "input": f"960x540 video; official: 1024 model input; masklet: {args.image_size} model input",
        "official_peak_rss_mib": official,
        "masklet_peak_rss_mib": {k: v["peak_rss_mib"] for k, v in ours.items()},
        "masklet_runs": ours,
        "masklet_growth": growth,
    }
    md = [
        f"# Peak RSS against video length ({result['input']})",
        "",
        machine_line(result["machine"]),
        "",
        "| frames | " + " | ".join(f"{n}" for n in lengths) + " |",
        "| --- | " + " | ".join("---" for _ in lengths) + " |",
        f"| {NAMES['official']} (init_state + 1 click) | "
        + " | ".join(f"{official[str(n)]:.0f} MiB" if str(n) in official else "not run" for n in lengths) + " |",
        f"| {NAMES['masklet']} (click + propagation through every frame) | "
        + " | ".join(f"{ours[str(n)]['peak_rss_mib']:.0f} MiB" for n in lengths) + " |",
        "| masklet session state at the end | "
        + " | ".join(f"{ours[str(n)]['session_ram_mib']:.1f} MiB" for n in lengths) + " |",
        "",
        f"masklet at {last} frames against {first}: {100 * growth:+.1f} %. Official lengths above "
        f"{args.official_max_frames} frames not run (12 MiB a frame of float32 frames before any tracking).",
    ]
    write_results("memory", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
