"""The data-engine subcommands of `masklet`: project, review, import, export, eval, effort, annotate, auto-masklets.

`add_engine_commands(subparsers)` adds them to the main parser; each handler takes the parsed
arguments and returns an exit code, and raises `MaskletError`s for the main loop to print.
The database is `--db URL`, else $MASKLET_DB, else `sqlite:///masklet.db` in the working folder.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from masklet.errors import MaskletError, NotFoundError

DEFAULT_DB = "sqlite:///masklet.db"
IMPORT_FORMATS = ("sav", "davis", "coco", "ytvis")
EXPORT_FORMATS = ("sav", "sav-eval", "davis", "coco", "ytvis")


def _echo(text: str = "") -> None:
    print(text)  # noqa: T201 - a front end: printing is its job


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _store(args: argparse.Namespace) -> Any:
    from masklet.engine.store import Store

    return Store(args.db or os.environ.get("MASKLET_DB") or DEFAULT_DB)


def _by(args: argparse.Namespace) -> str:
    if args.by:
        return args.by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "cli"


def _project(store: Any, text: str) -> Any:
    """A project by name, or by id when no project has that name."""
    try:
        return store.get_project_by_name(text)
    except NotFoundError:
        if text.isdigit():
            return store.get_project(int(text))
        raise


# ------------------------------------------------------------------------------------------- project
def cmd_project_create(args: argparse.Namespace) -> int:
    with _store(args) as store:
        project = store.create_project(args.name, by=_by(args))
        _echo(f"project {project.id} {project.name}")
    return 0


def cmd_project_add_video(args: argparse.Namespace) -> int:
    from masklet.engine.projects import add_video

    with _store(args) as store:
        project = _project(store, args.project)
        v = add_video(store, project.id, args.video, by=_by(args), fps=args.fps)
        _echo(
            f"video {v.id} in {project.name}: {v.width}x{v.height}, {v.frame_count} frames at {v.fps:g} fps"
        )
    return 0


def cmd_project_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = [["id", "name", "videos", "masklets", "draft", "in_review", "accepted", "rejected"]]
        for p in store.list_projects():
            masklets = store.list_masklets(project_id=p.id)
            counts = [sum(1 for m in masklets if m.status == s) for s in rows[0][4:]]
            rows.append(
                [str(p.id), p.name, str(len(store.list_videos(p.id))), str(len(masklets)), *map(str, counts)]
            )
        _echo(_table(rows) if len(rows) > 1 else "no projects")
    return 0


# -------------------------------------------------------------------------------------------- review
def _masklet_in(store: Any, project: Any, masklet_id: int) -> Any:
    masklet = store.get_masklet(masklet_id)
    if store.get_video(masklet.video_id).project_id != project.id:
        raise NotFoundError(f"masklet {masklet_id} is not in project {project.name!r}")
    return masklet


def cmd_review(args: argparse.Namespace) -> int:
    from masklet.engine import review

    with _store(args) as store:
        project = _project(store, args.project)
        target = next((i for i in (args.submit, args.accept, args.reject) if i is not None), None)
        if target is not None:
            masklet = _masklet_in(store, project, target)
            version = masklet.version if args.version is None else args.version
            if args.submit is not None:
                done = review.submit(store, masklet.id, expected_version=version, by=_by(args))
            elif args.accept is not None:
                done = review.accept(
                    store, masklet.id, expected_version=version, by=_by(args), reason=args.reason
                )
            else:
                if not args.reason:
                    raise MaskletError("--reject needs --reason TEXT (what the annotator should fix)")
                done = review.reject(
                    store, masklet.id, expected_version=version, by=_by(args), reason=args.reason
                )
            _echo(f"masklet {done.id} {done.status} (version {done.version})")
            return 0
        queue = review.review_queue(store, project_id=project.id)
        rows = [["masklet", "video", "object", "waiting since", "rejections", "last reason"]]
        for item in queue:
            m = item.masklet
            rows.append([str(m.id), str(m.video_id), str(m.obj_id), item.since.strftime("%Y-%m-%d %H:%M:%S"),
                         str(item.rejections), item.last_reason or ""])  # fmt: skip
        _echo(_table(rows) if queue else f"nothing to review in {project.name}")
    return 0


# ------------------------------------------------------------------------------------ import, export
def cmd_import(args: argparse.Namespace) -> int:
    from masklet.engine.projects import DEFAULT_FPS, import_annotations

    with _store(args) as store:
        project = _project(store, args.project)
        results = import_annotations(
            store, project.id, args.path, format=args.format, by=_by(args), video_id=args.video,
            fps=args.fps or DEFAULT_FPS,
        )  # fmt: skip
        for r in results:
            _echo(f"video {r.video.id} ({r.video.path}): {len(r.masklets)} masklets, {r.masks} masks")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from masklet.engine.exports import export_project

    with _store(args) as store:
        project = _project(store, args.project)
        for path in export_project(store, project.id, args.format, args.out, status=args.status,
                                   overwrite=args.overwrite):  # fmt: skip
            _echo(str(path))
    return 0


# ---------------------------------------------------------------------------------------- eval, effort
def _read_layout(video_dir: Path) -> dict[int, dict[int, Any]]:
    """{obj_id: {frame: RLE}} from an SA-V evaluation folder (one sub-folder per object) or a DAVIS one."""
    from masklet.io.formats import read_davis_video, read_sav_eval_video

    if any(p.is_dir() for p in video_dir.iterdir()):
        return read_sav_eval_video(video_dir)
    seq = read_davis_video(video_dir)
    return {o: dict(frames) for o, frames in seq.masks.items()}


def _is_sav_layout(root: Path) -> bool:
    return any(sub.is_dir() for v in root.iterdir() if v.is_dir() for sub in v.iterdir())


def cmd_eval(args: argparse.Namespace) -> int:
    from masklet.eval.metrics import evaluate_video, summarize
    from masklet.io.formats import list_sav_eval_videos

    gt_root, pred_root = Path(args.gt), Path(args.pred)
    for root in (gt_root, pred_root):
        if not root.is_dir():
            raise MaskletError(f"{root}: not a folder; expected one sub-folder per video")
    protocol = args.protocol or ("sav" if _is_sav_layout(gt_root) else "davis")
    videos = []
    for name in list_sav_eval_videos(gt_root):
        pred = _read_layout(pred_root / name) if (pred_root / name).is_dir() else {}
        videos.append(evaluate_video(pred, _read_layout(gt_root / name), video_id=name, protocol=protocol,
                                     skip_first_and_last=not args.all_frames))  # fmt: skip
    total = summarize(videos)

    def num(x: float) -> float | None:
        return None if math.isnan(x) else x

    if args.json:
        data = {
            "protocol": protocol,
            "j": num(total.j), "f": num(total.f), "jf": num(total.jf),
            "videos": [{"video": v.video_id, "j": num(v.j), "f": num(v.f), "jf": num(v.jf),
                        "objects": [{"obj_id": o.obj_id, "j": num(o.j_mean), "f": num(o.f_mean), "jf": num(o.jf)}
                                    for o in v.objects]} for v in videos],
        }  # fmt: skip
        _echo(json.dumps(data, indent=2))
        return 0
    rows = [["video", "object", "J", "F", "J&F"]]
    for v in videos:
        rows += [
            [v.video_id, str(o.obj_id), *(f"{100 * x:.1f}" for x in (o.j_mean, o.f_mean, o.jf))]
            for o in v.objects
        ]
        rows.append([v.video_id, "all", *(f"{100 * x:.1f}" for x in (v.j, v.f, v.jf))])
    rows.append(
        ["all", f"{total.num_objects} objects", *(f"{100 * x:.1f}" for x in (total.j, total.f, total.jf))]
    )
    _echo(f"protocol {protocol}, {total.num_videos} videos")
    _echo(_table(rows))
    return 0


def cmd_effort(args: argparse.Namespace) -> int:
    from masklet.engine.effort import effort_table

    with _store(args) as store:
        project = _project(store, args.project)
        table = effort_table(store, project_id=project.id)
        if args.json:
            _echo(json.dumps(table.to_json(), indent=2))
        else:
            _echo(table.render() if table.phases else f"no annotation events with a phase in {project.name}")
    return 0


# ---------------------------------------------------------------------------------- annotate, auto
def _read_gt(path: Path, video: Any) -> dict[int, dict[int, Any]]:
    """{obj_id: {frame: RLE}} from an SA-V JSON file, an SA-V evaluation video folder or a DAVIS folder."""
    from masklet.io.formats import read_sav_json

    if path.is_file():
        gt = read_sav_json(path).to_eval_masks()
    elif path.is_dir():
        gt = _read_layout(path)
    else:
        raise MaskletError(f"{path}: no such file or folder; --gt takes an SA-V JSON file or a mask folder")
    for obj_id, frames in gt.items():
        for frame, rle in frames.items():
            if not 0 <= frame < video.frame_count or tuple(rle.size) != (video.height, video.width):
                raise MaskletError(
                    f"{path}: object {obj_id}, frame {frame}: a {rle.size[0]}x{rle.size[1]} (h x w) mask does not "
                    f"fit video {video.id} ({video.frame_count} frames of {video.height}x{video.width})"
                )
    return gt


def cmd_annotate(args: argparse.Namespace) -> int:
    from masklet.cli import build_model_from_args
    from masklet.engine.simulate import AnnotatorModel, annotate_video

    with _store(args) as store:
        project = _project(store, args.project)
        video = store.get_video(args.video_id)
        if video.project_id != project.id:
            raise NotFoundError(f"video {video.id} is not in project {project.name!r}")
        gt = _read_gt(Path(args.gt), video)
        if args.objects:
            missing = sorted(set(args.objects) - set(gt))
            if missing:
                raise MaskletError(f"--objects {missing} are not in {args.gt} (it has {sorted(gt)})")
            gt = {o: gt[o] for o in args.objects}
        annotator = AnnotatorModel(max_clicks=args.max_clicks, min_error_px=args.min_error_px)
        done = annotate_video(
            store, video.id, gt, build_model_from_args(args), phase=args.phase, by=_by(args), annotator=annotator,
            stride=args.stride, realign=args.realign, submit=args.submit,
        )  # fmt: skip
        report = [
            {"masklet": w.masklet_id, "obj_id": store.get_masklet(w.masklet_id).obj_id, "phase": w.phase,
             "frames": len(w.frames), "clicks": w.clicks, "strokes": w.strokes, "seconds": w.seconds}
            for w in done
        ]  # fmt: skip
        if args.json:
            _echo(json.dumps(report))
        else:
            rows = [["masklet", "object", "phase", "frames worked", "clicks", "strokes", "seconds"]]
            rows += [[*(str(r[k]) for k in list(r)[:-1]), f"{r['seconds']:.1f}"] for r in report]
            _echo(_table(rows))
    return 0


def cmd_auto_masklets(args: argparse.Namespace) -> int:
    from masklet.cli import build_model_from_args
    from masklet.engine.auto import AutoMaskletConfig, generate_auto_masklets

    config = AutoMaskletConfig(
        grid_sizes=tuple(args.grids), points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
        box_nms_thresh=args.box_nms_thresh, crop_nms_thresh=args.crop_nms_thresh,
        min_region_area=args.min_region_area, min_stability=args.min_stability,
        min_presence=args.min_presence, min_size_px=args.min_size, dedup_iou=args.dedup_iou,
        stride=args.stride, track_all_frames=args.track_all_frames,
    )  # fmt: skip
    with _store(args) as store:
        project = _project(store, args.project)
        video = store.get_video(args.video_id)
        if video.project_id != project.id:
            raise NotFoundError(f"video {video.id} is not in project {project.name!r}")
        result = generate_auto_masklets(store, video.id, build_model_from_args(args), config=config, frame=args.frame,
                                        by=_by(args))  # fmt: skip
        dropped = ", ".join(f"{n} {why}" for why, n in result.dropped.items() if n) or "none"
        _echo(f"video {video.id}: {result.candidates} candidates, {len(result.masklets)} auto masklets "
              f"sent to review (dropped: {dropped})")  # fmt: skip
        for m in result.masklets:
            _echo(f"masklet {m.id} object {m.obj_id}: stability {m.meta['stability_score']:.3f}, "
                  f"{m.meta['size_px']:.0f} px")  # fmt: skip
    return 0


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _add_annotate_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    from masklet.cli import add_model_args

    p = subparsers.add_parser(
        "annotate", parents=[common],
        help="scripted annotation: the simulated annotator works a video against ground truth in phase 1, 2 or 3",
    )  # fmt: skip
    p.add_argument("project")
    p.add_argument("video_id", type=int)
    p.add_argument("--phase", type=int, required=True, choices=(1, 2, 3))
    p.add_argument(
        "--gt", required=True, help="SA-V JSON file, or an SA-V evaluation / DAVIS folder of the video"
    )
    p.add_argument("--objects", type=_ints, default=None, help="only these ground-truth object ids (1,2,...)")
    p.add_argument("--stride", type=int, default=None, help="annotate every n-th frame (default: fps / 6)")
    p.add_argument("--max-clicks", type=int, default=5, help="clicks on a frame before the pixel tools")
    p.add_argument("--min-error-px", type=int, default=16, help="smaller error regions are left alone")
    p.add_argument("--realign", action="store_true", help="also re-annotate each masklet in Phase 1")
    p.add_argument("--submit", action="store_true", help="send each masklet to review")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    add_model_args(p)
    p.set_defaults(func=cmd_annotate)

    p = subparsers.add_parser(
        "auto-masklets", parents=[common],
        help="SA-V auto masklets for a project video: segment everything on one frame, track, filter, review",
    )  # fmt: skip
    p.add_argument("project")
    p.add_argument("video_id", type=int)
    p.add_argument("--frame", type=int, default=0, help="the (annotated) frame to segment")
    p.add_argument("--grids", type=_ints, default=[32, 16, 4],
                   help="points per side: the frame, then each crop layer (default 32,16,4)")  # fmt: skip
    p.add_argument("--points-per-batch", type=int, default=64)
    p.add_argument("--pred-iou-thresh", type=float, default=0.8)
    p.add_argument("--stability-score-thresh", type=float, default=0.95)
    p.add_argument("--box-nms-thresh", type=float, default=0.7)
    p.add_argument("--crop-nms-thresh", type=float, default=0.7)
    p.add_argument("--min-region-area", type=int, default=200, help="holes and specks under this are removed")
    p.add_argument("--min-stability", type=float, default=0.9, help="mean stability over annotated frames")
    p.add_argument("--min-presence", type=float, default=0.0, help="share of annotated frames visible")
    p.add_argument("--min-size", type=float, default=200.0, help="mean visible area in pixels")
    p.add_argument("--dedup-iou", type=float, default=0.5, help="IoU above which a masklet is a duplicate")
    p.add_argument("--stride", type=int, default=None, help="annotated frames (default: fps / 6)")
    p.add_argument(
        "--track-all-frames", action="store_true", help="track every frame, not only annotated ones"
    )
    add_model_args(p)
    p.set_defaults(func=cmd_auto_masklets)


# ------------------------------------------------------------------------------------------- parsers
def add_engine_commands(subparsers: Any) -> None:
    """Add project, review, import, export, eval, effort, annotate and auto-masklets to the `masklet` subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help=f"database URL (default: $MASKLET_DB or {DEFAULT_DB})")
    common.add_argument("--by", default=None, help="who is acting (default: the login name)")

    p = subparsers.add_parser("project", help="create projects, add videos, list projects")
    sub = p.add_subparsers(dest="project_command", required=True)
    q = sub.add_parser("create", parents=[common], help="create a project")
    q.add_argument("name")
    q.set_defaults(func=cmd_project_create)
    q = sub.add_parser("add-video", parents=[common], help="add a video file or frame folder to a project")
    q.add_argument("project", help="project name (or id)")
    q.add_argument("video")
    q.add_argument("--fps", type=float, default=None, help="frame rate (needed for frame folders)")
    q.set_defaults(func=cmd_project_add_video)
    q = sub.add_parser("list", parents=[common], help="projects with their video and masklet counts")
    q.set_defaults(func=cmd_project_list)

    p = subparsers.add_parser("review", parents=[common], help="the review queue; accept or reject masklets")
    p.add_argument("project")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--submit", type=int, metavar="ID", help="send a draft or reworked masklet to review")
    what.add_argument("--accept", type=int, metavar="ID")
    what.add_argument("--reject", type=int, metavar="ID")
    what.add_argument("--queue", action="store_true", help="list masklets in review, oldest first (default)")
    p.add_argument("--reason", default=None, help="why (required with --reject)")
    p.add_argument(
        "--version", type=int, default=None, help="the masklet version reviewed (default: current)"
    )
    p.set_defaults(func=cmd_review)

    p = subparsers.add_parser(
        "import", parents=[common], help="import SA-V, DAVIS, COCO or YouTube-VIS annotations"
    )
    p.add_argument("project")
    p.add_argument("path", help="annotation file, or DAVIS sequence folder")
    p.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    p.add_argument("--video", type=int, default=None, help="video id to attach the masks to")
    p.add_argument(
        "--fps", type=float, default=None, help="frame rate of a video created for the annotations"
    )
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("export", parents=[common], help="export a project's masklets")
    p.add_argument("project")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("--out", required=True, help="file (.json) or folder")
    p.add_argument("--status", default=None, choices=("draft", "in_review", "accepted", "rejected"))
    p.add_argument("--overwrite", action="store_true", help="replace existing export folders")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("eval", help="J, F and J&F of predicted masks against ground truth")
    p.add_argument("--pred", required=True, help="folder of video folders (SA-V evaluation or DAVIS layout)")
    p.add_argument("--gt", required=True, help="folder of video folders, same layout")
    p.add_argument("--protocol", choices=("sav", "davis"), default=None,
                   help="default: sav for the SA-V layout, davis for DAVIS folders")  # fmt: skip
    p.add_argument("--all-frames", action="store_true", help="also score the first and last frames")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("effort", parents=[common], help="the per-phase annotation effort table")
    p.add_argument("project")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=cmd_effort)

    _add_annotate_commands(subparsers, common)
