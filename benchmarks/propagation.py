"""Per-frame propagation time against Meta's sam2: same run, same weights, same frames (a script, not a test).

    python benchmarks/propagation.py --reference-python ../refenv/bin/python [--hf-python ../refenv/bin/python] \\
        [--model sam2.1_hiera_t] [--objects 1] [--frames 10] [--repeats 1] [--threads 2]

Each implementation runs in a process of its own (this script with --worker official|hf|masklet;
the official one under --reference-python, a venv with sam2==1.1.0; Hugging Face's under
--hf-python, a venv with transformers), in turn, --repeats times. All load the same checkpoint
(seeded random weights written once as an official {"model": ...} file, or --checkpoint), read
the same 960x540 JPEG frames (tests/data/videos/bedroom_frames; HF gets the official loader's
pixels), get one click per object on frame 0 and propagate through --frames frames, float32 on
the CPU, hole filling off on every side (the official code skips it on a CPU without its CUDA
extension). Timed: each frame of the propagation, from one yield to the next. Reported: the median
over the frames with a full memory bank (frame 7 on: one conditioning and six recent memories) and
the masks' agreement with the official's.
Writes benchmarks/results/propagation_<model>_<n>obj.json and .md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    FRAMES,
    NAMES,
    OFFICIAL_CONFIGS,
    add_common_arguments,
    agreement,
    machine,
    machine_line,
    model_stem,
    pythons,
    run_interleaved,
    save_worker_result,
    write_results,
    write_seeded_checkpoint,
)

FULL_BANK_FROM = 7  # 1 conditioning frame + 6 recent frames in memory (num_maskmem = 7)
CLICKS = ([400.0, 200.0], [700.0, 420.0], [200.0, 400.0], [820.0, 150.0],
          [560.0, 300.0], [120.0, 120.0], [880.0, 480.0], [300.0, 500.0])  # fmt: skip


def clicks(objects: int) -> list[list[float]]:
    """One click per object on frame 0 (video pixels of the 960x540 frames)."""
    if not 1 <= objects <= len(CLICKS):
        raise SystemExit(f"--objects must be 1 to {len(CLICKS)}")
    return [list(c) for c in CLICKS[:objects]]


def timed(frames) -> dict:
    """Seconds from one yielded (logits (N, H, W)) to the next, and the masks."""
    times, masks = [], []
    t = time.perf_counter()
    for logits in frames:
        masks.append((logits > 0).numpy())
        now = time.perf_counter()
        times.append(now - t)
        t = now
    return {"frame_s": times, "masks": np.stack(masks)}


# ------------------------------------------------------------------------------------- workers
def run_official(args: argparse.Namespace) -> dict:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.set_num_threads(args.threads)
    predictor = build_sam2_video_predictor(OFFICIAL_CONFIGS[args.model], args.checkpoint, device="cpu")
    predictor.fill_hole_area = 0

    def memory_to_float32(module, a, kw):  # the official CPU path fails on bf16 memory without pointers
        for key in ("memory", "memory_pos"):
            if kw.get(key) is not None:
                kw[key] = kw[key].float()
        return a, kw

    predictor.memory_attention.register_forward_pre_hook(memory_to_float32, with_kwargs=True)
    with torch.inference_mode():
        t = time.perf_counter()
        state = predictor.init_state(str(FRAMES))
        init_s = time.perf_counter() - t
        for i, xy in enumerate(clicks(args.objects)):
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=i + 1, points=np.array([xy], np.float32),
                                            labels=np.array([1], np.int32))  # fmt: skip
        frames = predictor.propagate_in_video(state, max_frame_num_to_track=args.frames - 1)
        return {"init_s": init_s, **timed(logits[:, 0] for _f, _ids, logits in frames)}


def run_hf(args: argparse.Namespace) -> dict:
    import torch
    from hf_side import build_hf, hf_click, hf_propagate, hf_session

    torch.set_num_threads(args.threads)
    net, processor = build_hf(args.model, Path(args.checkpoint))
    with torch.inference_mode():
        t = time.perf_counter()
        session = hf_session(net, sorted(FRAMES.glob("*.jpg")), 540, 960)
        init_s = time.perf_counter() - t
        for i, xy in enumerate(clicks(args.objects)):
            hf_click(net, processor, session, 0, i + 1, [xy], [1], True)
        frames = hf_propagate(net, processor, session, args.frames)
        return {"init_s": init_s, **timed(logits for _f, logits in frames)}


def run_masklet(args: argparse.Namespace) -> dict:
    import torch

    from masklet.build import build_sam2
    from masklet.predict.precision import FastMode
    from masklet.predict.video import VideoPredictor

    torch.set_num_threads(args.threads)
    model = build_sam2(args.model, checkpoint=args.checkpoint)
    fast: bool | FastMode = False
    if args.fast == "auto":
        fast = True
    elif args.fast == "bfloat16":
        fast = FastMode(dtype=torch.bfloat16)  # forced, also where the CPU only emulates it
    predictor = VideoPredictor(model, fill_hole_area=0, fast=fast)
    t = time.perf_counter()
    with torch.inference_mode(), predictor.start(str(FRAMES)) as session:
        init_s = time.perf_counter() - t
        for i, xy in enumerate(clicks(args.objects)):
            session.add_prompt(frame=0, obj_id=i + 1, points=[xy], labels=[1])
        frames = session.propagate(max_frames=args.frames)
        return {"init_s": init_s, **timed(logits for _f, _ids, logits in frames)}


WORKERS = {"official": run_official, "hf": run_hf, "masklet": run_masklet}


# ------------------------------------------------------------------------------------- driver
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--fast", choices=["off", "auto", "bfloat16"], default="off",
                        help="masklet's fast mode: off (exact), auto (fast=True: what this device resolves "
                        "it to), bfloat16 (forced, also where the CPU only emulates it)")  # fmt: skip
    args = parser.parse_args()
    if args.frames <= FULL_BANK_FROM:
        parser.error(f"--frames must be more than {FULL_BANK_FROM}: the median is over frames with a full bank")
    if args.worker:
        save_worker_result(args.out, args.worker, WORKERS[args.worker](args))
        return 0
    sides = pythons(parser, args)

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or str(write_seeded_checkpoint(args.model, Path(tmp) / "weights.pt"))
        forwarded = ["--model", args.model, "--objects", str(args.objects), "--frames", str(args.frames),
                     "--threads", str(args.threads), "--checkpoint", checkpoint, "--fast", args.fast]  # fmt: skip
        runs = run_interleaved(sides, __file__, Path(tmp), forwarded, args.repeats)

    def full_bank_median(run: dict) -> float:
        return float(np.median(run["frame_s"][FULL_BANK_FROM:]))

    ref_masks = runs["official"][0]["masks"]  # (frames, objects, H, W)
    official = float(np.median([full_bank_median(r) for r in runs["official"]]))
    result = {
        "machine": machine(args.threads, {k: str(v[0]["version"]) for k, v in runs.items()}),
        "model": f"{args.model} ({'seeded random weights' if not args.checkpoint else args.checkpoint})",
        "frames": f"{args.frames} of tests/data/videos/bedroom_frames (960x540)",
        "objects": args.objects,
        "masklet_fast": args.fast,
        "official_mask_cover": float(ref_masks.mean()),
        "sides": {},
    }
    for which, side in runs.items():
        per_run = [full_bank_median(r) for r in side]
        masks = side[0]["masks"]
        result["sides"][which] = {
            "s_per_frame": per_run,
            "s_per_frame_median": float(np.median(per_run)),
            "speedup": official / float(np.median(per_run)),
            # run r of each side ran next to run r of the official: the ratio pair by pair holds when
            # the machine's speed drifts between runs
            "speedup_pairs": [full_bank_median(o) / full_bank_median(r) for o, r in zip(runs["official"], side, strict=True)],
            "mask_agreement_min": agreement(masks.reshape(-1, *masks.shape[-2:]), ref_masks.reshape(-1, *masks.shape[-2:])),
            "mask_agreement_mean": float((masks == ref_masks).mean()),
            "init_s": [float(r["init_s"]) for r in side],
        }
    md = [
        f"# Propagation per frame: {result['model']}, {args.objects} object(s), 1024 input, "
        + ("float32" if args.fast == "off" else f"masklet in fast mode ({args.fast}), the others float32"),
        "",
        machine_line(result["machine"]),
        "",
        f"| | s/frame, median of frames {FULL_BANK_FROM}-{args.frames - 1} (full bank), per run | vs official "
        "| masks equal to the official's (worst frame and object / mean) | session start |",
        "| --- | --- | --- | --- | --- |",
    ]
    # vs official: the ratio of the medians; with --repeats > 1 the pair-by-pair ratios follow it
    for which, s in result["sides"].items():
        md.append(
            f"| {NAMES[which]} | {', '.join(f'{v:.2f}' for v in s['s_per_frame'])} | {s['speedup']:.2f}x"
            + (f" (pairs {', '.join(f'{v:.2f}' for v in s['speedup_pairs'])})" if len(s["speedup_pairs"]) > 1 else "")
            + " | "
            + ("-" if which == "official" else
               f"{100 * s['mask_agreement_min']:.3f} % / {100 * s['mask_agreement_mean']:.3f} %")
            + f" | {', '.join(f'{v:.2f} s' for v in s['init_s'])} |"
        )  # fmt: skip
    cover = result["official_mask_cover"]
    md += [
        "",
        f"The official masks cover {100 * cover:.1f} % of the pixels"
        + (" (random weights; the masks are neither empty nor full)." if 0.01 < cover < 0.99
           else ": too trivial for the agreement to mean much; pick other clicks."),  # fmt: skip
        "Session start: the official init_state loads every frame (and encodes frame 0); HF's session is given "
        "the frames preprocessed (its time is that preprocessing); masklet's start opens the folder.",
    ]
    fast = "" if args.fast == "off" else f"_fast_{args.fast}"
    write_results(f"propagation_{model_stem(args.model)}_{args.objects}obj{fast}", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
