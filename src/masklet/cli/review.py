"""`masklet review` (the queue; submit, accept, reject) and `masklet effort` (the per-phase effort table)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from masklet.cli.common import EXIT_OK, acting_user, echo, open_store, store_options, table
from masklet.engine.vocabulary import ReviewAction


def cmd_review(args: argparse.Namespace) -> int:
    from masklet.engine import service

    actions = {
        ReviewAction.SUBMIT: args.submit,
        ReviewAction.ACCEPT: args.accept,
        ReviewAction.REJECT: args.reject,
    }
    chosen = [(action, masklet_id) for action, masklet_id in actions.items() if masklet_id is not None]
    with open_store(args) as store:
        if chosen:
            action, masklet_id = chosen[0]
            done = service.decide_review(
                store, args.project, masklet_id, action, by=acting_user(args), version=args.version,
                reason=args.reason,
            )  # fmt: skip
            echo(f"masklet {done.id} {done.status} (version {done.version})")
            return EXIT_OK
        project, queue = service.project_review_queue(store, args.project)
    rows = [["masklet", "video", "object", "waiting since", "rejections", "last reason"]]
    for item in queue:
        m = item.masklet
        rows.append([str(m.id), str(m.video_id), str(m.obj_id), item.since.strftime("%Y-%m-%d %H:%M:%S"),
                     str(item.rejections), item.last_reason or ""])  # fmt: skip
    echo(table(rows) if queue else f"nothing to review in {project.name}")
    return EXIT_OK


def cmd_effort(args: argparse.Namespace) -> int:
    from masklet.engine import service

    with open_store(args) as store:
        project, effort = service.project_effort(store, args.project)
    if args.json:
        echo(json.dumps(effort.to_json(), indent=2))
    else:
        echo(effort.render() if effort.phases else f"no annotation events with a phase in {project.name}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    common = store_options()
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

    p = subparsers.add_parser("effort", parents=[common], help="the per-phase annotation effort table")
    p.add_argument("project")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=cmd_effort)
