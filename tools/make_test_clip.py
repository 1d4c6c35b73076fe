"""Cut the first second of a video into a small H.264 test clip (half size, high CRF).

Usage: python tools/make_test_clip.py /work/shared/data/videos/bedroom.mp4 tests/data/videos/bedroom_1s.mp4
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av


def cut(src: Path, dst: Path, *, seconds: float, scale: float, crf: int, keyframe_interval: int) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as source, av.open(str(dst), mode="w") as target:
        video = source.streams.video[0]
        rate = video.average_rate or Fraction(30)
        width = round(video.codec_context.width * scale / 2) * 2  # yuv420p needs even sizes
        height = round(video.codec_context.height * scale / 2) * 2
        stream = target.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = keyframe_interval
        stream.options = {
            "crf": str(crf),
            "preset": "slow",
            "x264-params": f"keyint={keyframe_interval}:scenecut=0",
        }
        count = 0
        for frame in source.decode(video):
            if count >= round(seconds * rate):
                break
            small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
            small.pts, small.time_base = count, 1 / rate  # renumber: the clip starts at 0
            target.mux(stream.encode(small))
            count += 1
        target.mux(stream.encode(None))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--keyframe-interval", type=int, default=10)
    args = parser.parse_args()
    count = cut(
        args.src,
        args.dst,
        seconds=args.seconds,
        scale=args.scale,
        crf=args.crf,
        keyframe_interval=args.keyframe_interval,
    )
    print(f"{args.dst}: {count} frames, {args.dst.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
