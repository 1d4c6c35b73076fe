"""Image-encoder time and click latency on an encoded frame, against the official code and HF's.

    python benchmarks/encoder_clicks.py --reference-python ../refenv/bin/python \\
        [--hf-python ../refenv/bin/python] [--model sam2.1_hiera_t] [--repeats 5] [--rounds 6] [--threads 2]

Every side loads the same checkpoint (seeded random weights written once as an official
{"model": ...} file) in a process of its own, in turn, --passes times:
1. the image encoder: one forward pass (trunk, neck and the decoder's high-res projections:
   official `forward_image`, HF `get_image_features`, masklet `encode_image`) over the same
   normalised 1024x1024 pixels of tests/data/images/truck.jpg; --repeats timed calls after one
   warm-up;
2. clicks in a video session on frame 0 of tests/data/videos/bedroom_frames (960x540): the
   first click (it also encodes the frame) apart, then --rounds rounds of 5 clicks on the encoded
   frame, each round starting afresh (clear) and adding 4 clicks to the same object; timed from
   the call to the logits at video size. The masks of every click are compared with the official's.
Writes benchmarks/results/encoder_clicks_<model>.json and .md.
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
    IMAGE,
    NAMES,
    OFFICIAL_CONFIGS,
    add_common_arguments,
    agreement,
    machine,
    machine_line,
    model_stem,
    official_pixels,
    pythons,
    run_interleaved,
    save_worker_result,
    time_calls,
    write_results,
    write_seeded_checkpoint,
)

ROUND = ([400.0, 200.0, 1], [440.0, 230.0, 1], [360.0, 170.0, 0], [470.0, 190.0, 1], [390.0, 260.0, 0])


def click_plan(rounds: int) -> list[tuple[list[float], int, bool]]:
    """(point, label, clear) of every click after the first: rounds of 5, each shifted a little."""
    plan = []
    for r in range(rounds):
        for i, (x, y, label) in enumerate(ROUND):
            plan.append(([x + 7.0 * r, y + 3.0 * r], label, i == 0))
    return plan


def run_protocol(encode, click, args: argparse.Namespace) -> dict:
    """The same measurements on every side: encode(), then click(point, label, clear) -> logits (H, W)."""
    encoder_s = time_calls(encode, args.repeats)
    t = time.perf_counter()
    first = click([400.0, 200.0], 1, True)
    first_s = time.perf_counter() - t
    times, masks = [], [(first > 0).numpy()]
    for point, label, clear in click_plan(args.rounds):
        t = time.perf_counter()
        logits = click(point, label, clear)
        times.append(time.perf_counter() - t)
        masks.append((logits > 0).numpy())
    return {"encoder_s": encoder_s, "first_click_s": first_s, "click_s": times, "masks": np.stack(masks)}


# ------------------------------------------------------------------------------------- workers
def run_official(args: argparse.Namespace) -> dict:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.set_num_threads(args.threads)
    predictor = build_sam2_video_predictor(OFFICIAL_CONFIGS[args.model], args.checkpoint, device="cpu")
    predictor.fill_hole_area = 0
    pixels = torch.from_numpy(official_pixels(IMAGE, predictor.image_size))[None]
    with torch.inference_mode():
        state = predictor.init_state(str(FRAMES))

        def click(point, label, clear):
            _, _, logits = predictor.add_new_points_or_box(
                state, frame_idx=0, obj_id=1, points=np.array([point], np.float32),
                labels=np.array([label], np.int32), clear_old_points=clear,
            )  # fmt: skip
            return logits[0, 0]

        return run_protocol(lambda: predictor.forward_image(pixels), click, args)


def run_hf(args: argparse.Namespace) -> dict:
    import torch
    from hf_side import build_hf, hf_click, hf_session

    torch.set_num_threads(args.threads)
    net, processor = build_hf(args.model, Path(args.checkpoint))
    pixels = torch.from_numpy(official_pixels(IMAGE, int(net.config.image_size)))[None]
    with torch.inference_mode():
        session = hf_session(net, sorted(FRAMES.glob("*.jpg")), 540, 960)

        def click(point, label, clear):
            return hf_click(net, processor, session, 0, 1, [point], [label], clear)

        return run_protocol(lambda: net.get_image_features(pixels), click, args)


def run_masklet(args: argparse.Namespace) -> dict:
    import torch

    from masklet.build import build_sam2
    from masklet.predict.video import VideoPredictor

    torch.set_num_threads(args.threads)
    model = build_sam2(args.model, checkpoint=args.checkpoint)
    pixels = torch.from_numpy(official_pixels(IMAGE, model.config.image_size))[None]
    with torch.inference_mode(), VideoPredictor(model, fill_hole_area=0).start(str(FRAMES)) as session:

        def click(point, label, clear):
            return session.add_prompt(frame=0, obj_id=1, points=[point], labels=[label], clear=clear)[1][0]

        return run_protocol(lambda: model.encode_image(pixels), click, args)


WORKERS = {"official": run_official, "hf": run_hf, "masklet": run_masklet}


# ------------------------------------------------------------------------------------- driver
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timed encoder calls per pass")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of 5 clicks on the encoded frame")
    parser.add_argument("--passes", type=int, default=2, help="times each side runs, interleaved")
    args = parser.parse_args()
    if args.worker:
        save_worker_result(args.out, args.worker, WORKERS[args.worker](args))
        return 0
    sides = pythons(parser, args)

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or str(write_seeded_checkpoint(args.model, Path(tmp) / "weights.pt"))
        forwarded = ["--model", args.model, "--threads", str(args.threads), "--repeats", str(args.repeats),
                     "--rounds", str(args.rounds), "--checkpoint", checkpoint]  # fmt: skip
        runs = run_interleaved(sides, __file__, Path(tmp), forwarded, args.passes)

    ref_masks = runs["official"][0]["masks"]
    result = {
        "machine": machine(args.threads, {k: str(v[0]["version"]) for k, v in runs.items()}),
        "model": f"{args.model} ({'seeded random weights' if not args.checkpoint else args.checkpoint})",
        "sides": {},
    }
    for which, side in runs.items():
        encoder = [t for r in side for t in r["encoder_s"].tolist()]
        clicks = [t for r in side for t in r["click_s"].tolist()]
        result["sides"][which] = {
            "encoder_s_median": float(np.median(encoder)),
            "encoder_s": encoder,
            "click_ms_p50": 1000 * float(np.percentile(clicks, 50)),
            "click_ms_p95": 1000 * float(np.percentile(clicks, 95)),
            "first_click_s": [float(r["first_click_s"]) for r in side],
            "clicks_n": len(clicks),
            "encoder_speedup_pairs": [float(np.median(o["encoder_s"]) / np.median(r["encoder_s"]))
                                      for o, r in zip(runs["official"], side, strict=True)],
            "click_speedup_pairs": [float(np.median(o["click_s"]) / np.median(r["click_s"]))
                                    for o, r in zip(runs["official"], side, strict=True)],
            "first_click_agreement": agreement(side[0]["masks"][0], ref_masks[0]),
            "mask_agreement_min": agreement(side[0]["masks"], ref_masks),
        }
    result["official_mask_cover"] = float(ref_masks.mean())
    official = result["sides"]["official"]
    md = [
        f"# Image encoder and clicks on an encoded frame: {result['model']}, 1024 input, float32",
        "",
        machine_line(result["machine"]),
        "",
        "| | encoder (median) | vs official | click p50 | click p95 | vs official (p50) | first click | masks equal to the official's: first click / worst click |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for which, s in result["sides"].items():
        md.append(
            f"| {NAMES[which]} | {s['encoder_s_median']:.2f} s | {official['encoder_s_median'] / s['encoder_s_median']:.2f}x "
            f"| {s['click_ms_p50']:.0f} ms | {s['click_ms_p95']:.0f} ms | {official['click_ms_p50'] / s['click_ms_p50']:.2f}x "
            f"| {', '.join(f'{v:.2f} s' for v in s['first_click_s'])} | "
            + ("-" if which == "official"
               else f"{100 * s['first_click_agreement']:.3f} % / {100 * s['mask_agreement_min']:.3f} %") + " |"
        )
    md += [
        "",
        f"{result['sides']['official']['clicks_n']} clicks per side on the encoded frame ({args.passes} passes of "
        f"{args.rounds} rounds of 5); encoder: {args.repeats} calls per pass after a warm-up. The official masks "
        f"cover {100 * result['official_mask_cover']:.1f} % of the frame on average. The official's first click "
        "finds frame 0 encoded already (its init_state encodes it); the others encode it on that click.",
    ]
    if "hf" in result["sides"]:
        md.append(
            "transformers 5.x does not feed a frame's earlier mask logits back into the decoder with a new click "
            "(Sam2VideoModel.forward never passes prev_sam_mask_logits; the official and masklet do), so its "
            "refinement clicks give other masks, and it runs the memory encoder on every click."
        )
    write_results(f"encoder_clicks_{model_stem(args.model)}", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
