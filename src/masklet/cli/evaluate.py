"""`masklet eval`: J, F and J&F of predicted mask folders against ground-truth folders."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from masklet.cli.common import EXIT_OK, echo, table


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def cmd_eval(args: argparse.Namespace) -> int:
    from masklet.eval.folders import evaluate_folders

    result = evaluate_folders(
        args.gt, args.pred, protocol=args.protocol, skip_first_and_last=not args.all_frames
    )
    videos, total = result.videos, result.total
    if args.json:
        data = {
            "protocol": result.protocol,
            "j": _num(total.j), "f": _num(total.f), "jf": _num(total.jf),
            "videos": [{"video": v.video_id, "j": _num(v.j), "f": _num(v.f), "jf": _num(v.jf),
                        "objects": [{"obj_id": o.obj_id, "j": _num(o.j_mean), "f": _num(o.f_mean),
                                     "jf": _num(o.jf)} for o in v.objects]} for v in videos],
        }  # fmt: skip
        echo(json.dumps(data, indent=2))
        return EXIT_OK
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
    echo(f"protocol {result.protocol}, {total.num_videos} videos")
    echo(table(rows))
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="J, F and J&F of predicted masks against ground truth")
    p.add_argument("--pred", required=True, help="folder of video folders (SA-V evaluation or DAVIS layout)")
    p.add_argument("--gt", required=True, help="folder of video folders, same layout")
    p.add_argument("--protocol", choices=("sav", "davis"), default=None,
                   help="default: sav for the SA-V layout, davis for DAVIS folders")  # fmt: skip
    p.add_argument("--all-frames", action="store_true", help="also score the first and last frames")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=cmd_eval)
