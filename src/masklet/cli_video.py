"""The `masklet track` subcommand: prompt objects in a video, track them, write their masks.

    masklet track clip.mp4 --prompt 'frame=0,obj=1,point=320,240' \\
        --prompt 'frame=0,obj=2,box=10,20,200,220' --out masks/ --format png --overlay tracked.mp4

`add_video_commands(subparsers)` adds it to the main parser; the handler raises `MaskletError`s
for the main loop to print (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from masklet.errors import MaskletError, PromptError

FORMATS = ("png", "davis")
OVERLAY_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
PROMPT_HELP = "frame=F,obj=ID then point=X,Y[,LABEL] (repeatable, LABEL 1 or 0) and/or box=X0,Y0,X1,Y1"


def _echo(text: str = "") -> None:
    print(text)  # noqa: T201 - a front end: printing is its job


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


@dataclass(slots=True)
class Tracked:
    """Per-frame RLE masks of every object (small: a long video's masks stay in RAM as RLE)."""

    masks: dict[int, dict[int, Any]] = field(default_factory=dict)  # {obj_id: {frame: RleMask}}
    frames: list[int] = field(default_factory=list)  # in tracking order

    def add(self, frame: int, obj_ids: list[int], masks: np.ndarray) -> None:
        from masklet.io.masks import RleMask

        for obj_id, mask in zip(obj_ids, masks, strict=True):
            self.masks.setdefault(obj_id, {})[frame] = RleMask.from_mask(mask)
        self.frames.append(frame)


def peak_memory_mib() -> float | None:
    """This process's peak resident memory (ru_maxrss) in MiB; None where unavailable."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


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
    from tqdm import tqdm

    for p in prompts:
        points = [[x, y] for x, y, _ in p.points] or None
        labels = [label for _, _, label in p.points] or None
        session.add_prompt(frame=p.frame, obj_id=p.obj_id, points=points, labels=labels, box=p.box)
    frames = [p.frame for p in prompts]
    start = args.start if args.start is not None else (max(frames) if args.reverse else min(frames))
    if args.start is not None and not 0 <= start < session.num_frames:
        raise MaskletError(f"--start {start} is past the end; valid frames are 0..{session.num_frames - 1}")
    total = start + 1 if args.reverse else session.num_frames - start
    if args.max_frames is not None:
        total = min(total, args.max_frames)
    tracked = Tracked()
    began = time.perf_counter()
    with tqdm(total=total, desc="tracking", unit="frame") as bar:
        for frame, obj_ids, logits in session.propagate(start, args.max_frames, args.reverse):
            tracked.add(frame, obj_ids, (logits > 0).cpu().numpy())
            bar.update(1)
    return tracked, time.perf_counter() - began


def _write_masks(tracked: Tracked, args: argparse.Namespace, size: tuple[int, int]) -> None:
    out = Path(args.out)
    if args.format == "davis":
        from masklet.io.formats.davis import write_davis_video

        write_davis_video(out, tracked.masks, size=size, frames=tuple(sorted(tracked.frames)), overwrite=True)
    else:
        from masklet.io.formats.sav_eval import write_sav_eval_video

        write_sav_eval_video(out.parent, out.name, tracked.masks, overwrite=True)


def _overlay_frames(
    source: Any, tracked: Tracked, prompts: list[TrackPrompt]
) -> Iterator[np.ndarray]:
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
    from masklet.cli import build_model_from_args
    from masklet.io.frames import open_frame_source
    from masklet.io.synthetic import write_mp4
    from masklet.predict.video import VideoPredictor

    prompts = merge_prompts(args.prompt)
    _check_ids(prompts, args.format)
    _check_outputs(args)
    source = open_frame_source(args.video)  # before the model: a bad video fails fast
    try:
        model = build_model_from_args(args)
        with VideoPredictor(model).start(source) as session:
            tracked, seconds = _track(session, prompts, args)
        _write_masks(tracked, args, (source.height, source.width))
        if args.overlay:
            Path(args.overlay).parent.mkdir(parents=True, exist_ok=True)
            write_mp4(_overlay_frames(source, tracked, prompts), args.overlay, fps=source.fps or 30.0)
    finally:
        source.close()
    count = len(tracked.frames)
    peak = peak_memory_mib()
    _echo(
        f"tracked {len(tracked.masks)} object(s) over {count} frames in {seconds:.1f} s "
        f"({count / max(seconds, 1e-9):.1f} frames/s), peak memory "
        + (f"{peak:.0f} MiB" if peak is not None else "unknown")
    )
    _echo(f"masks -> {args.out} ({args.format})")
    if args.overlay:
        _echo(f"overlay -> {args.overlay}")
    return 0


def add_video_commands(subparsers: Any) -> None:
    """Add `track` to the `masklet` subparsers."""
    from masklet.cli import add_model_args

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
    p.add_argument("--max-frames", type=_positive_int, default=None, help="track at most this many frames")
    add_model_args(p)
    p.set_defaults(func=cmd_track)
