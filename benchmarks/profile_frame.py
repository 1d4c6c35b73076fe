"""Where a propagated frame's time goes in masklet (a script, not a test).

    python benchmarks/profile_frame.py [--model sam2.1_hiera_t] [--objects 1] [--frames 9] [--threads 2]

One click per object on frame 0 of tests/data/videos/bedroom_frames (960x540, seeded weights as
the other benchmarks), then propagation through --frames frames. Forward hooks time the model's
parts on every frame (wall clock, torch's own CPU threads); reported for the frames with a full
memory bank (median): image encoder, memory attention (self- and cross-attention of its layers
apart), mask decoder with prompt encoder, memory encoder, and what is left (the session: memory
selection, upsampling, results). Writes benchmarks/results/profile_<model>_<n>obj.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import numpy as np
from common import FRAMES, machine, machine_line, model_stem, worker_versions, write_results
from seeded import load_seeded

FULL_BANK_FROM = 7
CLICKS = ([400.0, 200.0], [700.0, 420.0], [200.0, 400.0], [820.0, 150.0],
          [560.0, 300.0], [120.0, 120.0], [880.0, 480.0], [300.0, 500.0])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.frames <= FULL_BANK_FROM:
        parser.error(f"--frames must be more than {FULL_BANK_FROM}")

    import torch

    from masklet.build import build_sam2
    from masklet.predict.video import VideoPredictor

    torch.set_num_threads(args.threads)
    model = build_sam2(args.model)
    load_seeded(model)
    parts = {"image encoder": model.image_encoder, "memory attention": model.memory_attention,
             "prompt encoder + mask decoder": model.sam_mask_decoder, "memory encoder": model.memory_encoder}  # fmt: skip
    attention = {"memory attention: self-attention": [layer.self_attn for layer in model.memory_attention.layers],
                 "memory attention: cross-attention": [layer.cross_attn_image for layer in model.memory_attention.layers]}  # fmt: skip
    spent: dict[str, float] = defaultdict(float)
    starts: dict[int, float] = {}

    def timed(name: str, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(lambda m, a: starts.__setitem__(id(m), time.perf_counter()))
        module.register_forward_hook(
            lambda m, a, o: spent.__setitem__(name, spent[name] + time.perf_counter() - starts[id(m)])
        )

    for name, module in parts.items():
        timed(name, module)
    timed("prompt encoder + mask decoder", model.sam_prompt_encoder)
    for name, modules in attention.items():
        for module in modules:
            timed(name, module)

    per_frame: list[dict[str, float]] = []
    with torch.inference_mode(), VideoPredictor(model, fill_hole_area=0).start(str(FRAMES)) as session:
        for i, xy in enumerate(CLICKS[: args.objects]):
            session.add_prompt(frame=0, obj_id=i + 1, points=[list(xy)], labels=[1])
        spent.clear()
        t = time.perf_counter()
        for frame, _ids, _logits in session.propagate(max_frames=args.frames):
            now = time.perf_counter()
            row = dict(spent)
            row["whole frame"] = now - t
            per_frame.append(row)
            print(f"frame {frame}: {row['whole frame']:.2f} s", flush=True)
            spent.clear()
            t = time.perf_counter()

    full = per_frame[FULL_BANK_FROM:]
    names = [*parts, *attention]
    median = {n: float(np.median([r.get(n, 0.0) for r in full])) for n in [*names, "whole frame"]}
    median["the session (the rest)"] = median["whole frame"] - sum(median[n] for n in parts)
    result = {"machine": machine(args.threads, {"masklet": worker_versions("masklet")}), "model": f"{args.model} (seeded random weights)",
              "objects": args.objects, "median_s": median, "per_frame_s": per_frame}  # fmt: skip
    whole = median["whole frame"]
    md = [f"# Where a frame's time goes: masklet, {args.model}, {args.objects} object(s), 1024 input, float32", "",
          machine_line(result["machine"]), "",
          f"Median over frames {FULL_BANK_FROM}-{args.frames - 1} (full memory bank).", "",
          "| part | seconds | share |", "| --- | --- | --- |"]  # fmt: skip
    for name in [*parts, "the session (the rest)", *attention, "whole frame"]:
        md.append(f"| {name} | {median[name]:.2f} | {100 * median[name] / whole:.0f} % |")
    write_results(f"profile_{model_stem(args.model)}_{args.objects}obj", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
