"""The options of a training run, shared by `masklet train` and `torchrun ... -m masklet.train`.

Importing this module imports no torch (the CLI starts fast); `settings_from_args` builds the
`TrainSettings`.
"""

from __future__ import annotations

import argparse
from typing import Any

FREEZE_CHOICES = ("none", "image_encoder", "all_but_heads")  # what --freeze keeps from training


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text}")
    return value


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="an SA-V folder (NAME_manual.json beside NAME.mp4), a DAVIS folder, "
                   "or a project (name or id; its accepted masklets) of the --db database")  # fmt: skip
    p.add_argument("--out", required=True, help="folder for checkpoint.pt, resume.pt, metrics.json, loss_curve.png")
    p.add_argument("--model", default="sam2.1_hiera_t", help="config name (see `masklet models`)")
    p.add_argument("--checkpoint", default=None,
                   help="official .pt file to fine-tune (or 'download'); without it the model trains from scratch")  # fmt: skip
    p.add_argument("--image-size", type=int, default=None, help="model input size (default: the model's, 1024)")
    p.add_argument("--steps", type=_positive, default=100)
    p.add_argument("--batch-size", type=_positive, default=1, help="clips per step, over all processes")
    p.add_argument("--clip-frames", type=_positive, default=8, help="annotated frames per clip")
    p.add_argument("--max-objects", type=_positive, default=3, help="objects per clip")
    p.add_argument("--image-fraction", type=_share, default=0.0,
                   help="share of the samples that are single frames, as SAM 2 trains on images and videos "
                   "together (0: clips only)")  # fmt: skip
    p.add_argument("--image-data", default=None,
                   help="where the single frames come from (a folder or project, as --data); default: --data")
    p.add_argument("--image-objects", type=_positive, default=8, help="objects per single-frame sample")
    p.add_argument("--lr", type=float, default=5e-6, help="learning rate outside the image encoder")
    p.add_argument("--encoder-lr", type=float, default=3e-6, help="image encoder learning rate (before layer decay)")
    p.add_argument("--layer-decay", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--grad-clip", type=float, default=0.1, help="max gradient norm (0: no clipping)")
    p.add_argument("--freeze", choices=FREEZE_CHOICES, default="none")
    p.add_argument("--corrections", type=int, default=7, help="corrective clicks per corrected frame")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="auto: bfloat16 autocast on CUDA or a CPU with bfloat16 instructions, else float32")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto: this process's GPU (under torchrun), else the CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=0, help="also write the files every N steps")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its resume.pt")
    p.add_argument("--db", default=None, help="database URL, when --data names a project (default: $MASKLET_DB)")


def settings_from_args(args: argparse.Namespace) -> Any:
    """The `TrainSettings` the options describe."""
    from masklet.train.loop import TrainSettings
    from masklet.train.optim import OptimSettings
    from masklet.train.prompts import PromptSettings

    return TrainSettings(
        model=args.model, checkpoint=args.checkpoint, image_size=args.image_size, steps=args.steps,
        batch_size=args.batch_size, clip_frames=args.clip_frames, max_objects=args.max_objects,
        image_fraction=args.image_fraction, image_max_objects=args.image_objects, seed=args.seed,
        precision=args.precision, device=args.device, checkpoint_every=args.checkpoint_every,
        prompts=PromptSettings(corrections_per_frame=args.corrections),
        optim=OptimSettings(lr=args.lr, encoder_lr=args.encoder_lr, layer_decay=args.layer_decay,
                            weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
                            grad_clip=args.grad_clip, freeze=args.freeze),
    )  # fmt: skip


def run_from_args(args: argparse.Namespace, *, progress: bool = True) -> Any:
    """Load the data, train, write the files: the one call behind both front ends (a `TrainResult`)."""
    import os

    from masklet.train.data import load_training_videos
    from masklet.train.loop import train

    database_url = args.db or os.environ.get("MASKLET_DB")
    videos = load_training_videos(args.data, database_url=database_url)
    images = None if args.image_data is None else load_training_videos(args.image_data, database_url=database_url)
    return train(settings_from_args(args), videos, args.out, images=images, resume=args.resume, progress=progress)


def summary(result: Any) -> str:
    """What a finished run prints."""
    curve = f"; loss curve -> {result.loss_curve}" if result.loss_curve else ""
    done = f"{result.steps} steps" if not result.started_at else (
        f"steps {result.started_at + 1}-{result.steps} (resumed)"
    )
    return (
        f"trained {done} on {result.world_size} process(es) in {result.seconds:.1f} s: "
        f"loss {result.first_loss:.4g} -> {result.last_loss:.4g} (means of the first and last {result.loss_window} steps); "
        f"checkpoint -> {result.checkpoint}; metrics -> {result.metrics}{curve}"
    )
