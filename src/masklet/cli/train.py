"""`masklet train`: fine-tune (or train from scratch) on SA-V or DAVIS folders or a project's masklets."""

from __future__ import annotations

import argparse
from typing import Any

from masklet.cli.common import EXIT_OK, echo


def cmd_train(args: argparse.Namespace) -> int:
    from masklet.train.options import run_from_args, summary

    echo(summary(run_from_args(args)))
    return EXIT_OK


def register(subparsers: Any) -> None:
    from masklet.train.options import add_train_arguments

    p = subparsers.add_parser(
        "train", help="fine-tune SAM 2 on annotated videos (SA-V/DAVIS folders or a project)",
        description="Train on clips of annotated videos with SAM 2's prompt simulation and losses; writes "
        "OUT/checkpoint.pt (the official layout: Meta's sam2 and masklet load it), OUT/resume.pt, "
        "OUT/metrics.json and OUT/loss_curve.png. Several processes: torchrun ... -m masklet.train "
        "with the same options.",
    )  # fmt: skip
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)
