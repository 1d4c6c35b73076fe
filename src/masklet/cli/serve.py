"""`masklet serve` (the web annotation tool) and `masklet user` (its users)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from masklet.cli.common import (
    EXIT_OK,
    FAST_HELP,
    acting_user,
    database_url,
    echo,
    note,
    open_store,
    store_options,
    table,
)
from masklet.engine.vocabulary import Role
from masklet.errors import MaskletError


def _password_from_stdin() -> str:
    text = sys.stdin.readline().rstrip("\n")
    if not text:
        raise MaskletError("--password-stdin: nothing was read from standard input")
    return text


def cmd_user_add(args: argparse.Namespace) -> int:
    from masklet.engine.users import add_user

    password = _password_from_stdin() if args.password_stdin else None
    with open_store(args) as store:
        new = add_user(store, args.name, args.role, password=password, by=acting_user(args))
    echo(f"user {new.user.name} ({new.user.role}) added")
    if new.generated_password is not None:
        echo(f"password: {new.generated_password}  (shown once; give it to {new.user.name})")
    return EXIT_OK


def cmd_user_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        users = store.list_users()
    rows = [["id", "name", "role", "added"]]
    rows += [[str(u.id), u.name, u.role, u.created_at.strftime("%Y-%m-%d %H:%M")] for u in users]
    echo(table(rows) if users else "no users; `masklet serve` adds the first admin")
    return EXIT_OK


def settings_from_args(args: argparse.Namespace) -> Any:
    from masklet.server.settings import ServerSettings

    roots = []
    for root in args.media_root or []:
        if not Path(root).is_dir():
            raise MaskletError(f"--media-root {root}: not a folder")
        roots.append(Path(root))
    return ServerSettings(
        database_url=database_url(args), data_dir=Path(args.data_dir), media_roots=tuple(roots),
        secure_cookies=args.secure_cookies, model=args.model, checkpoint=args.checkpoint,
        random_weights=args.random_weights, image_size=args.image_size, device=args.device, fast=args.fast,
        job_stale_after_s=args.job_stale_after, max_upload_mib=args.max_upload_mib,
    )  # fmt: skip


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from masklet.engine.users import ADMIN_PASSWORD_ENV, ensure_first_admin
    from masklet.server import create_app
    from masklet.server.model import ASSISTANCE_OFF

    settings = settings_from_args(args)
    with open_store(args) as store:
        first = ensure_first_admin(store, os.environ.get(ADMIN_PASSWORD_ENV) or None)
        if first is not None:
            if first.generated_password is None:
                note(f"first run: added user admin with the password from ${ADMIN_PASSWORD_ENV}")
            else:
                note(f"first run: added user admin, password {first.generated_password} (shown once; "
                     f"set ${ADMIN_PASSWORD_ENV} to choose it)")  # fmt: skip
        if first is not None and not args.no_sample:
            from masklet.engine.sample import add_sample_project

            sample = add_sample_project(store, settings.data_dir)
            note(f"first run: added the project {sample.project.name!r} with a {sample.video.frame_count}-frame "
                 f"clip ({sample.video.path}); --no-sample skips it")  # fmt: skip
    roots = ", ".join(str(r) for r in settings.media_roots) or "none (videos cannot be registered by path)"
    if not settings.model_assistance:
        note(f"masklet serve: {ASSISTANCE_OFF}")
    elif settings.checkpoint is None:
        note(
            f"masklet serve: {settings.model} with RANDOM weights (--random-weights): the masks mean nothing"
        )
    note(
        f"masklet serve: database {settings.database_url}, data in {settings.data_dir}, served folders: {roots}"
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return EXIT_OK


def register(subparsers: Any) -> None:
    common = store_options()
    p = subparsers.add_parser(
        "serve", parents=[common], help="the web annotation tool (API on http://HOST:PORT/api)"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", default="masklet-data", help="the server's own files (frame cache)")
    p.add_argument("--media-root", action="append", metavar="DIR",
                   help="a folder whose videos may be registered by path (repeatable); nothing outside is read")  # fmt: skip
    p.add_argument(
        "--secure-cookies", action="store_true", help="mark the session cookie Secure (behind HTTPS)"
    )
    p.add_argument("--model", default="sam2.1_hiera_t", help="config name (see `masklet models`)")
    p.add_argument("--checkpoint", default=None,
                   help="official .pt file, or 'download'; without it model assistance is off")  # fmt: skip
    p.add_argument("--random-weights", action="store_true",
                   help="no checkpoint: the real architecture with random weights (demos, tests)")  # fmt: skip
    p.add_argument("--image-size", type=int, default=None, help="model input size (default 1024)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--fast", action="store_true", help="tracking (propagation, Phase-3 clicks): " + FAST_HELP)
    p.add_argument("--max-upload-mib", type=int, default=2048, metavar="MIB",
                   help="largest video upload accepted (default 2048); larger ones get 413")  # fmt: skip
    p.add_argument("--no-sample", action="store_true",
                   help="on first run, do not add the sample project (a short synthetic clip)")  # fmt: skip
    p.add_argument("--job-stale-after", type=float, default=30.0, metavar="SECONDS",
                   help="a propagation job without a heartbeat this long is marked interrupted (its server died)")  # fmt: skip
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("user", help="the web tool's users: add, list")
    sub = p.add_subparsers(dest="user_command", required=True)
    q = sub.add_parser("add", parents=[common], help="add a user (prints a generated password once)")
    q.add_argument("name")
    q.add_argument("--role", required=True, choices=[r.value for r in Role])
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    q.set_defaults(func=cmd_user_add)
    q = sub.add_parser("list", parents=[common], help="list users and their roles")
    q.set_defaults(func=cmd_user_list)
