"""`masklet track` (prompt objects in a video, track them, write their masks) and `masklet synth-video`.

    masklet track clip.mp4 --prompt 'frame=0,obj=1,point=320,240' \\
        --prompt 'frame=0,obj=2,box=10,20,200,220' --out masks/ --format png --overlay tracked.mp4

The handlers raise `MaskletError`s for the main loop to print (exit code 2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from masklet.cli.common import (
    EXIT_OK,
    FAST_HELP,
    add_model_args,
    build_model_from_args,
    echo,
    peak_memory_mib,
    positive_int,
)
from masklet.errors import MaskletError, PromptError

FORMATS = ("png", "davis")
OVERLAY_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
PROMPT_HELP = "frame=F,obj=ID then point=X,Y[,LABEL] (repeatable, LABEL 1 or 0) and/or box=X0,Y0,X1,Y1"


@dataclass(frozen=True, slots=True)
class TrackPrompt:
    """One object's clicks and/or box on one frame, in video pixels."""

    frame: int
    obj_id: int
    points: tuple[tuple[float, float, int], ...] = ()  # (x, y, label)
    box: tuple[float, float, float, float] | None = None


def _fields(text: str) -> list[tuple[str, list[str]]]:
    """'a=1,b=2,3' -> [('a', ['1']), ('b', ['2', '3'])]: numbers after a key belong to it."""
    fields: list[tuple[str, list[str]]] = []
    for token in (t.strip() for t in text.split(",")):
        if "=" in token:
            key, _, value = token.partition("=")
            fields.append((key.strip().lower(), [value.strip()]))
        elif not fields:
            raise ValueError(f"{token!r} comes before any key")
        else:
            fields[-1][1].append(token)
    return fields


def _numbers(key: str, values: list[str], counts: tuple[int, ...]) -> list[float]:
    if len(values) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise ValueError(f"{key}= needs {expected} numbers, got {len(values)} ({','.join(values)})")
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"{key}= needs numbers, got {','.join(values)!r}") from None


def _index(key: str, values: list[str]) -> int:
    if len(values) != 1 or not values[0].isdigit():
        raise ValueError(f"{key}= needs one non-negative integer, got {','.join(values)!r}")
    return int(values[0])


def prompt_arg(text: str) -> TrackPrompt:
    """Parse one --prompt value; argparse reports the ArgumentTypeError with the expected form."""
    try:
        found: dict[str, int] = {}
        points: list[tuple[float, float, int]] = []
        box = None
        for key, values in _fields(text):
            if key in ("frame", "obj"):
                if key in found:
                    raise ValueError(f"{key}= is given twice")
                found[key] = _index(key, values)
            elif key == "point":
                x, y, *label = _numbers(key, values, (2, 3))
                if label and label[0] not in (0, 1):
                    raise ValueError(f"a point label is 1 (foreground) or 0 (background), got {label[0]:g}")
                points.append((x, y, int(label[0]) if label else 1))
            elif key == "box":
                if box is not None:
                    raise ValueError("box= is given twice (one box per object and frame)")
                x0, y0, x1, y1 = _numbers(key, values, (4,))
                box = (x0, y0, x1, y1)
            else:
                raise ValueError(f"unknown key {key!r}")
        missing = [k for k in ("frame", "obj") if k not in found]
        if missing:
            raise ValueError(f"{' and '.join(k + '=' for k in missing)} missing")
        if not points and box is None:
            raise ValueError("no point= or box=")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: {exc}; expected {PROMPT_HELP}, e.g. 'frame=0,obj=1,point=320,240'"
        ) from None
    return TrackPrompt(found["frame"], found["obj"], tuple(points), box)


def merge_prompts(prompts: list[TrackPrompt]) -> list[TrackPrompt]:
    """One prompt per (frame, object), in order of first appearance: clicks joined, one box at most."""
    merged: dict[tuple[int, int], TrackPrompt] = {}
    for p in prompts:
        key = (p.frame, p.obj_id)
        old = merged.get(key)
        if old is None:
            merged[key] = p
            continue
        if old.box is not None and p.box is not None:
            raise PromptError(f"object {p.obj_id} has two boxes on frame {p.frame}; give one box per frame")
        merged[key] = TrackPrompt(p.frame, p.obj_id, old.points + p.points, old.box or p.box)
    return list(merged.values())


@dataclass(slots=True)
class Tracked:
    """Per-frame RLE masks of every object (small: a long video's masks stay in RAM as RLE)."""

    masks: dict[int, dict[int, Any]] = field(default_factory=dict)  # {obj_id: {frame: RleMask}}
    frames: list[int] = field(default_factory=list)  # in tracking order

    def add(self, frame: int, masks: dict[int, Any]) -> None:
        """One tracked frame's {obj_id: RleMask}."""
        for obj_id, rle in masks.items():
            self.masks.setdefault(obj_id, {})[frame] = rle
        self.frames.append(frame)


def _check_ids(prompts: list[TrackPrompt], fmt: str) -> None:
    top = 254 if fmt == "davis" else 999  # DAVIS: 0 background, 255 void; SA-V: 3-digit folders
    low = 1 if fmt == "davis" else 0
    for p in prompts:
        if not low <= p.obj_id <= top:
            raise PromptError(f"obj={p.obj_id}: --format {fmt} holds object ids {low}..{top}")


def _check_outputs(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise MaskletError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise MaskletError(f"--out {out} is not empty; pass --overwrite to replace it")
    if args.overlay and Path(args.overlay).suffix.lower() not in OVERLAY_SUFFIXES:
        raise MaskletError(f"--overlay {args.overlay}: expected a video file name ending in "
                           f"{', '.join(OVERLAY_SUFFIXES)}")  # fmt: skip


def _track(session: Any, prompts: list[TrackPrompt], args: argparse.Namespace) -> tuple[Tracked, float]:
    """Add every prompt, then propagate once; returns the masks and the seconds spent tracking."""
    from masklet.predict.track_runner import track_masks

    for p in prompts:
        points = [[x, y] for x, y, _ in p.points] or None
        labels = [label for _, _, label in p.points] or None
        session.add_prompt(frame=p.frame, obj_id=p.obj_id, points=points, labels=labels, box=p.box)
    frames = [p.frame for p in prompts]
    start = args.start if args.start is not None else (max(frames) if args.reverse else min(frames))
    if args.start is not None and not 0 <= start < session.num_frames:
        raise MaskletError(f"--start {start} is past the end; valid frames are 0..{session.num_frames - 1}")
    tracked = Tracked()
    began = time.perf_counter()
    for out in track_masks(session, start, reverse=args.reverse, max_frames=args.max_frames, progress=True):
        tracked.add(out.frame, out.rles())
    return tracked, time.perf_counter() - began


def _write_masks(tracked: Tracked, args: argparse.Namespace, size: tuple[int, int]) -> None:
    out = Path(args.out)
    if args.format == "davis":
        from masklet.io.formats.davis import write_davis_video

        write_davis_video(out, tracked.masks, size=size, frames=tuple(sorted(tracked.frames)), overwrite=True)
    else:
        from masklet.io.formats.sav_eval import write_sav_eval_video

        write_sav_eval_video(out.parent, out.name, tracked.masks, overwrite=True)


def _overlay_frames(source: Any, tracked: Tracked, prompts: list[TrackPrompt]) -> Iterator[np.ndarray]:
    """The tracked frames in time order, masks tinted and prompts drawn, each read when needed."""
    from masklet.io.images import draw_prompts, overlay_masks

    on_frame: dict[int, list[TrackPrompt]] = {}
    for p in prompts:
        on_frame.setdefault(p.frame, []).append(p)
    for frame in sorted(tracked.frames):
        masks = {obj: rles[frame].decode() for obj, rles in tracked.masks.items() if frame in rles}
        picture = overlay_masks(source.get(frame), masks)
        here = on_frame.get(frame, [])
        if here:
            picture = draw_prompts(picture, [pt for p in here for pt in p.points],
                                   [p.box for p in here if p.box is not None])  # fmt: skip
        height, width = picture.shape[:2]
        if height % 2 or width % 2:  # yuv420p needs even sides: repeat the last row / column
            picture = np.pad(picture, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        yield picture


def cmd_track(args: argparse.Namespace) -> int:
    from masklet.io.frames import open_frame_source
    from masklet.io.synthetic import write_mp4
    from masklet.predict.video import VideoPredictor

    prompts = merge_prompts(args.prompt)
    _check_ids(prompts, args.format)
    _check_outputs(args)
    source = open_frame_source(args.video)  # before the model: a bad video fails fast
    try:
        model = build_model_from_args(args)
        with VideoPredictor(model, fast=args.fast).start(source) as session:
            tracked, seconds = _track(session, prompts, args)
        _write_masks(tracked, args, (source.height, source.width))
        if args.overlay:
            Path(args.overlay).parent.mkdir(parents=True, exist_ok=True)
            write_mp4(_overlay_frames(source, tracked, prompts), args.overlay, fps=source.fps or 30.0)
    finally:
        source.close()
    count = len(tracked.frames)
    peak = peak_memory_mib()
    echo(
        f"tracked {len(tracked.masks)} object(s) over {count} frames in {seconds:.1f} s "
        f"({count / max(seconds, 1e-9):.1f} frames/s), peak memory "
        + (f"{peak:.0f} MiB" if peak is not None else "unknown")
    )
    echo(f"masks -> {args.out} ({args.format})")
    if args.overlay:
        echo(f"overlay -> {args.overlay}")
    return EXIT_OK


def object_range(text: str) -> tuple[int, int]:
    """--objects: N, or LOW-HIGH (a training set draws each video's count from the range)."""
    try:
        low, _, high = text.partition("-")
        bounds = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LOW-HIGH, got {text!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"object counts must be 1 <= LOW <= HIGH, got {text!r}")
    return bounds


def cmd_synth_video(args: argparse.Namespace) -> int:
    if args.height % 2 or args.width % 2 or args.frames < 1:
        raise MaskletError("--frames must be positive and --height/--width even (yuv420p video)")
    if args.videos is not None:
        from masklet.io.synthetic_dataset import write_training_set

        if args.gt is not None:
            raise MaskletError("--gt is for one video; with --videos the ground truth is written beside each video")
        paths = write_training_set(args.out, videos=args.videos, frames=args.frames, height=args.height,
                                   width=args.width, objects=args.objects, seed=args.seed, fps=args.fps)  # fmt: skip
        echo(
            f"{len(paths)} videos of {args.frames} frames {args.width}x{args.height}, {args.objects[0]}-"
            f"{args.objects[1]} objects each -> {args.out} (NAME.mp4 + NAME_manual.json, SA-V layout)"
        )
        return EXIT_OK

    from masklet.io.formats.sav_eval import write_sav_eval_video
    from masklet.io.synthetic import make_synthetic_video, write_mp4

    if args.gt is None:
        raise MaskletError("--gt FOLDER is required for one video (or give --videos N for a training set)")
    if args.objects[0] != args.objects[1]:
        raise MaskletError("a range of object counts is for --videos; give one number for one video")
    objects = args.objects[0]
    video = make_synthetic_video(args.frames, args.height, args.width, objects, args.seed)
    write_mp4(video.frames, args.out, fps=args.fps)
    gt = {obj_id: {t: video.mask(t, obj_id) for t in range(args.frames)} for obj_id in video.obj_ids}
    gt_dir = write_sav_eval_video(args.gt, Path(args.out).stem, gt, overwrite=True)
    echo(
        f"{args.frames} frames {args.width}x{args.height}, {objects} objects -> {args.out}; "
        f"ground truth -> {gt_dir}"
    )
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "track", help="track prompted objects through a video and write their masks",
        description="Prompt objects on any frames, track them forward (or backward with --reverse) "
        "and write one mask per object and frame.",
    )  # fmt: skip
    p.add_argument("video", help="video file (mp4, webm, mov, ...) or folder of frames")
    p.add_argument("--prompt", type=prompt_arg, action="append", required=True, metavar="SPEC",
                   help=f"{PROMPT_HELP}; repeat for more objects and frames")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png: DIR/{obj:03d}/{frame:05d}.png binary masks (SA-V evaluation layout); "
                   "davis: DIR/{frame:05d}.png palette label maps")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out folder (its contents are deleted)")  # fmt: skip
    p.add_argument("--overlay", default=None, help="also write this mp4 with the masks drawn on the frames")
    p.add_argument("--reverse", action="store_true",
                   help="track backwards from the latest prompted frame (or --start)")  # fmt: skip
    p.add_argument("--start", type=int, default=None,
                   help="first frame to track (default: the earliest prompted frame, "
                   "the latest with --reverse)")  # fmt: skip
    p.add_argument("--max-frames", type=positive_int, default=None, help="track at most this many frames")
    p.add_argument("--fast", action="store_true", help=FAST_HELP)
    add_model_args(p)
    p.set_defaults(func=cmd_track)

    p = subparsers.add_parser(
        "synth-video", help="write a synthetic video of moving shapes and its ground-truth masks, "
        "or (--videos N) a training set",
    )  # fmt: skip
    p.add_argument("out", help="video file to write (.mp4); with --videos, the training set's folder")
    p.add_argument("--gt", default=None, help="folder for the masks, SA-V evaluation layout (one video)")
    p.add_argument("--videos", type=positive_int, default=None,
                   help="write N videos of textured, deforming, occluding shapes, each with its "
                   "NAME_manual.json (SA-V layout, masks every 4th frame): what masklet train --data reads")  # fmt: skip
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--objects", type=object_range, default=(2, 2),
                   help="objects per video: N, or LOW-HIGH with --videos (default 2)")  # fmt: skip
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth_video)
