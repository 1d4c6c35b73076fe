"""`masklet project`, `masklet import`, `masklet export`: projects, their videos and annotation files."""

from __future__ import annotations

import argparse
from typing import Any

from masklet.cli.common import EXIT_OK, acting_user, echo, open_store, store_options, table
from masklet.engine.vocabulary import MaskletStatus

STATUSES = tuple(s.value for s in MaskletStatus)

IMPORT_FORMATS = ("sav", "davis", "coco", "ytvis")
EXPORT_FORMATS = ("sav", "sav-eval", "davis", "coco", "ytvis")


def cmd_project_create(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        project = store.create_project(args.name, by=acting_user(args))
        echo(f"project {project.id} {project.name}")
    return EXIT_OK


def cmd_project_add_video(args: argparse.Namespace) -> int:
    from masklet.engine import service

    with open_store(args) as store:
        project, v = service.add_project_video(
            store, args.project, args.video, by=acting_user(args), fps=args.fps
        )
        echo(f"video {v.id} in {project.name}: {v.width}x{v.height}, {v.frame_count} frames at {v.fps:g} fps")
    return EXIT_OK


def cmd_project_list(args: argparse.Namespace) -> int:
    from masklet.engine import service

    with open_store(args) as store:
        summaries = service.project_summaries(store)
    rows = [["id", "name", "videos", "masklets", *STATUSES]]
    for s in summaries:
        counts = [str(s.by_status[k]) for k in STATUSES]
        rows.append([str(s.project.id), s.project.name, str(s.videos), str(s.masklets), *counts])
    echo(table(rows) if summaries else "no projects")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from masklet.engine import service

    with open_store(args) as store:
        results = service.import_into_project(
            store, args.project, args.path, format=args.format, by=acting_user(args), video_id=args.video,
            fps=args.fps,
        )  # fmt: skip
        for r in results:
            echo(f"video {r.video.id} ({r.video.path}): {len(r.masklets)} masklets, {r.masks} masks")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from masklet.engine import service

    with open_store(args) as store:
        written = service.export_project_files(
            store, args.project, args.format, args.out, status=args.status, overwrite=args.overwrite
        )
    for path in written:
        echo(str(path))
    return EXIT_OK


def register(subparsers: Any) -> None:
    common = store_options()
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
    p.add_argument("--status", default=None, choices=STATUSES)
    p.add_argument("--overwrite", action="store_true", help="replace existing export folders")
    p.set_defaults(func=cmd_export)
