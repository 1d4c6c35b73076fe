"""Per-frame propagation time against Meta's sam2: same run, same weights, same frames (a script, not a test).

    python benchmarks/propagation.py --reference-python ../refenv/bin/python \\
        [--model sam2.1_hiera_t] [--objects 1] [--frames 10] [--repeats 1] [--threads 2]

Each implementation runs in a process of its own (this script with --worker masklet|official; the
official one under --reference-python, a venv with sam2==1.1.0), in turn: official, masklet, and
again --repeats times. Both load the same seeded weights (tools/parity/seeded_weights.py), read the
same 960x540 JPEG frames (tests/data/videos/bedroom_frames), get one click per object on frame 0
and propagate through --frames frames, float32 on the CPU, hole filling off on both sides (the
official code skips it on a CPU without its CUDA extension). Timed: each frame of the propagation,
from one yield to the next. Reported: the median over the frames with a full memory bank (frame 7
on: one conditioning and six recent memories) and the masks' agreement with the official's.
Writes benchmarks/results/propagation.json and .md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from seeded import load_seeded

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO / "tests" / "data" / "videos" / "bedroom_frames"
OUT = REPO / "benchmarks" / "results"
FULL_BANK_FROM = 7  # 1 conditioning frame + 6 recent frames in memory (num_maskmem = 7)
OFFICIAL_CONFIGS = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


CLICKS = ([400.0, 200.0], [700.0, 420.0], [200.0, 400.0], [820.0, 150.0],
          [560.0, 300.0], [120.0, 120.0], [880.0, 480.0], [300.0, 500.0])  # fmt: skip


def clicks(objects: int) -> list[list[float]]:
    """One click per object on frame 0 (video pixels of the 960x540 frames)."""
    if not 1 <= objects <= len(CLICKS):
        raise SystemExit(f"--objects must be 1 to {len(CLICKS)}")
    return [list(c) for c in CLICKS[:objects]]


# ------------------------------------------------------------------------------------- workers
def run_official(args: argparse.Namespace) -> dict:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.set_num_threads(args.threads)
    predictor = build_sam2_video_predictor(OFFICIAL_CONFIGS[args.model], None, device="cpu")
    load_seeded(predictor)
    predictor.eval()
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
        times, masks = [], []
        t = time.perf_counter()
        for _frame, _ids, logits in predictor.propagate_in_video(
            state, max_frame_num_to_track=args.frames - 1
        ):
            masks.append((logits[:, 0] > 0).numpy())
            now = time.perf_counter()
            times.append(now - t)
            t = now
    return {"init_s": init_s, "frame_s": times, "masks": np.stack(masks)}


def run_masklet(args: argparse.Namespace) -> dict:
    import torch

    from masklet.build import build_sam2
    from masklet.predict.video import VideoPredictor

    torch.set_num_threads(args.threads)
    model = build_sam2(args.model)
    load_seeded(model)
    predictor = VideoPredictor(model, fill_hole_area=0)
    t = time.perf_counter()
    with predictor.start(str(FRAMES)) as session:
        init_s = time.perf_counter() - t
        for i, xy in enumerate(clicks(args.objects)):
            session.add_prompt(frame=0, obj_id=i + 1, points=[xy], labels=[1])
        times, masks = [], []
        t = time.perf_counter()
        for _frame, _ids, logits in session.propagate(max_frames=args.frames):
            masks.append((logits > 0).numpy())
            now = time.perf_counter()
            times.append(now - t)
            t = now
    return {"init_s": init_s, "frame_s": times, "masks": np.stack(masks)}


# ------------------------------------------------------------------------------------- driver
def _run_worker(python: str, which: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = [python, __file__, "--worker", which, "--out", str(out), "--model", args.model,
           "--objects", str(args.objects), "--frames", str(args.frames), "--threads", str(args.threads)]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO)
    with np.load(out) as z:
        return {"init_s": float(z["init_s"]), "frame_s": z["frame_s"].tolist(), "masks": z["masks"]}


def _machine(threads: int) -> dict:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "capability": torch.backends.cpu.get_cpu_capability(), "threads": threads,
            "python": platform.python_version(), "torch (masklet)": torch.__version__}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reference-python", help="python of a venv with sam2==1.1.0 (for the official side)"
    )
    parser.add_argument("--model", default="sam2.1_hiera_t", choices=sorted(OFFICIAL_CONFIGS))
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=["masklet", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames <= FULL_BANK_FROM:
        parser.error(
            f"--frames must be more than {FULL_BANK_FROM}: the median is over frames with a full bank"
        )

    if args.worker:
        result = (run_official if args.worker == "official" else run_masklet)(args)
        np.savez(
            args.out, init_s=result["init_s"], frame_s=np.array(result["frame_s"]), masks=result["masks"]
        )
        return 0
    if not args.reference_python:
        parser.error("--reference-python is needed: every figure is a ratio against the official code")

    runs: dict[str, list[dict]] = {"official": [], "masklet": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for which, python in (("official", args.reference_python), ("masklet", sys.executable)):
                print(f"repeat {r + 1}/{args.repeats}: {which} ...", flush=True)
                runs[which].append(_run_worker(python, which, args, Path(tmp) / f"{which}{r}.npz"))

    def full_bank_median(run: dict) -> float:
        return float(np.median(run["frame_s"][FULL_BANK_FROM:]))

    official = [full_bank_median(r) for r in runs["official"]]
    ours = [full_bank_median(r) for r in runs["masklet"]]
    ref_masks, our_masks = runs["official"][0]["masks"], runs["masklet"][0]["masks"]
    agreement = (ref_masks == our_masks).mean(axis=(-2, -1))  # (frames, objects)
    cover = float(ref_masks.mean())
    result = {
        "machine": _machine(args.threads),
        "model": f"{args.model} (seeded random weights)",
        "frames": f"{args.frames} of tests/data/videos/bedroom_frames (960x540)",
        "objects": args.objects,
        "official_s_per_frame": official,
        "masklet_s_per_frame": ours,
        "speedup": float(np.median(official) / np.median(ours)),
        "mask_agreement_min": float(agreement.min()),
        "mask_agreement_mean": float(agreement.mean()),
        "official_mask_cover": cover,
        "init_s": {k: [r["init_s"] for r in v] for k, v in runs.items()},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"propagation_{args.model.replace('.', '_').replace('+', 'p')}_{args.objects}obj"
    (OUT / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# Propagation per frame: {result['model']}, {args.objects} object(s), 1024 input, float32",
        "",
        f"Machine: {result['machine']}",
        "",
        "| | official sam2 1.1.0 | masklet |",
        "| --- | --- | --- |",
        f"| s/frame, median of frames {FULL_BANK_FROM}-{args.frames - 1} (full bank), per run | "
        f"{', '.join(f'{v:.2f}' for v in official)} | {', '.join(f'{v:.2f}' for v in ours)} |",
        f"| speed vs official | 1.00x | {result['speedup']:.2f}x |",
        f"| masks equal to the official's (worst frame and object / mean) | - | "
        f"{100 * result['mask_agreement_min']:.3f} % / {100 * result['mask_agreement_mean']:.3f} % |",
        f"| start of the session (official: init_state; masklet: start) | "
        f"{', '.join(f'{v:.2f} s' for v in result['init_s']['official'])} | "
        f"{', '.join(f'{v:.2f} s' for v in result['init_s']['masklet'])} |",
        "",
        f"The official masks cover {100 * cover:.1f} % of the pixels"
        + (
            " (random weights; the masks are neither empty nor full)."
            if 0.01 < cover < 0.99
            else ": too trivial for the agreement to mean much; pick other clicks."
        ),  # fmt: skip
    ]
    (OUT / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
