"""`masklet annotate` (the simulated annotator) and `masklet auto-masklets` (SA-V's auto masklets)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from masklet.cli.common import (
    EXIT_OK,
    acting_user,
    add_model_args,
    build_model_from_args,
    echo,
    int_list,
    open_store,
    store_options,
    table,
)


def cmd_annotate(args: argparse.Namespace) -> int:
    from masklet.engine import service

    with open_store(args) as store:
        done = service.simulate_annotation(
            store, args.project, args.video_id, args.gt, lambda: build_model_from_args(args), phase=args.phase,
            by=acting_user(args), objects=args.objects, max_clicks=args.max_clicks,
            min_error_px=args.min_error_px, stride=args.stride, realign=args.realign, submit=args.submit,
        )  # fmt: skip
        report = [
            {"masklet": w.masklet_id, "obj_id": store.get_masklet(w.masklet_id).obj_id, "phase": w.phase,
             "frames": len(w.frames), "clicks": w.clicks, "strokes": w.strokes, "seconds": w.seconds}
            for w in done
        ]  # fmt: skip
    if args.json:
        echo(json.dumps(report))
    else:
        rows = [["masklet", "object", "phase", "frames worked", "clicks", "strokes", "seconds"]]
        rows += [[*(str(r[k]) for k in list(r)[:-1]), f"{r['seconds']:.1f}"] for r in report]
        echo(table(rows))
    return EXIT_OK


def cmd_auto_masklets(args: argparse.Namespace) -> int:
    from masklet.engine import service
    from masklet.engine.auto import AutoMaskletConfig

    config = AutoMaskletConfig(
        grid_sizes=tuple(args.grids), points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
        box_nms_thresh=args.box_nms_thresh, crop_nms_thresh=args.crop_nms_thresh,
        min_region_area=args.min_region_area, min_stability=args.min_stability,
        min_presence=args.min_presence, min_size_px=args.min_size, dedup_iou=args.dedup_iou,
        stride=args.stride, track_all_frames=args.track_all_frames,
    )  # fmt: skip
    with open_store(args) as store:
        result = service.auto_masklets_for_video(
            store, args.project, args.video_id, lambda: build_model_from_args(args), config=config,
            frame=args.frame, by=acting_user(args),
        )  # fmt: skip
    dropped = ", ".join(f"{n} {why}" for why, n in result.dropped.items() if n) or "none"
    echo(f"video {args.video_id}: {result.candidates} candidates, {len(result.masklets)} auto masklets "
         f"sent to review (dropped: {dropped})")  # fmt: skip
    for m in result.masklets:
        echo(f"masklet {m.id} object {m.obj_id}: stability {m.meta['stability_score']:.3f}, "
             f"{m.meta['size_px']:.0f} px")  # fmt: skip
    return EXIT_OK


def register(subparsers: Any) -> None:
    common = store_options()
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
    p.add_argument(
        "--objects", type=int_list, default=None, help="only these ground-truth object ids (1,2,...)"
    )
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
    p.add_argument("--grids", type=int_list, default=[32, 16, 4],
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
