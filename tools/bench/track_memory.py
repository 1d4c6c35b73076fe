"""Peak memory of tracking one object through a long synthetic video.

Writes a synthetic mp4 (one moving shape, `masklet.io.synthetic`), clicks the object on frame 0
and propagates to the end with a `TrackingSession` over the mp4 (decoded lazily), then prints
one JSON line: frames tracked, peak RSS (MiB, this process, counted from after the model is
loaded where Linux allows restarting the count), the session's `memory_usage()` and frames/s.
Run it for two lengths to see that RAM does not grow with the video:

    python tools/bench/track_memory.py --frames 200
    python tools/bench/track_memory.py --frames 2000

`--unbounded` raises the in-RAM limits so nothing is spilled or evicted (the official
predictor's behaviour: per-frame state kept for the whole video), for comparison.
`--image-size 1024` measures at the official model input (about 6 s a frame on two cores);
`--objects N` tracks N objects. Random seeded weights: the measurement is about memory,
not mask quality. The test suite holds the same promise to exact numbers instead
(tests/predict/test_video_memory.py: the bytes of every tensor the session holds).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parity"))
from seeded_weights import seeded_state_dict, shapes_of  # noqa: E402

from masklet.build import build_sam2  # noqa: E402
from masklet.io.synthetic import iter_synthetic_video, write_mp4  # noqa: E402
from masklet.predict.video import VideoPredictor  # noqa: E402

UNBOUNDED = 10**9


def release_free_memory() -> None:
    """Hand freed heap pages back to the system, so later allocations show up in RSS."""
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: freed pages may stay resident and hide some growth


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count from the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _vm_hwm_mib() is not None


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (since `reset_peak_rss` where that worked)."""
    hwm = _vm_hwm_mib()
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vm_hwm_mib() -> float | None:
    """VmHWM from /proc/self/status (the peak that clear_refs restarts), None without /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--video-size", type=int, default=96, help="height and width of the synthetic video")
    parser.add_argument("--objects", type=int, default=1, help="objects clicked on frame 0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--unbounded", action="store_true", help="keep every frame's state in RAM")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the mp4 and spilled state go")
    parser.add_argument("--write-video", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write_video is not None:
        _write_video(args.write_video, args.frames, args.video_size, args.objects)
        return {}
    torch.set_num_threads(args.threads)

    model = build_sam2(args.model, image_size=args.image_size)
    model.load_state_dict(seeded_state_dict(shapes_of(model.state_dict()), seed=4))
    model.eval()
    release_free_memory()
    # building the seeded weights holds a second copy for a moment; that peak is not tracking's
    peak_reset = reset_peak_rss()
    limits = {"max_memory_frames": UNBOUNDED, "max_results_in_memory": UNBOUNDED} if args.unbounded else {}

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        # encoded in another process: the encoder's buffers must not count in this one's peak
        video = Path(work) / "long.mp4"
        subprocess.run(
            [sys.executable, __file__, "--write-video", str(video), "--frames", str(args.frames),
             "--video-size", str(args.video_size), "--objects", str(args.objects)],
            check=True,
        )  # fmt: skip
        first = next(_frames(1, args.video_size, args.objects))
        predictor = VideoPredictor(model, spill_dir=work, **limits)
        start = time.perf_counter()
        tracked = 0
        with predictor.start(str(video)) as session:
            for k in range(args.objects):
                session.add_prompt(0, k + 1, points=[first.centers[k].tolist()], labels=[1])
            for _ in session.propagate(progress=True):
                tracked += 1
            usage = session.memory_usage()
        seconds = time.perf_counter() - start
    report = {
        "frames": tracked,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "frames_per_s": round(tracked / seconds, 1),
        "memories_in_ram": usage.memories_in_ram,
        "results_in_ram": usage.results_in_ram,
        "features_cached": usage.features_cached,
        "spilled": usage.spilled,
        "session_tensor_mib": round(usage.ram_bytes / 2**20, 2),
        "objects": args.objects,
        "image_size": args.image_size,
        "unbounded": args.unbounded,
        "peak_counts_from": "after model load" if peak_reset else "process start",
    }
    print(json.dumps(report))
    return report


def _frames(count: int, size: int, objects: int = 1):
    return iter_synthetic_video(count, size, size, num_objects=objects, seed=3)


def _write_video(path: Path, count: int, size: int, objects: int) -> None:
    write_mp4((f.image for f in _frames(count, size, objects)), path, fps=30)


if __name__ == "__main__":
    main()
