"""The training loop: one process, or many under `torchrun` (DistributedDataParallel).

Each step draws a global batch of clips from generators seeded by (seed, step) and
(seed, step, clip), so which clips and prompts a step sees does not depend on the number
of processes: process r of W takes clips r, r + W, ... of the batch. Under torchrun
(`WORLD_SIZE` > 1) the process group is NCCL on GPUs and gloo on CPUs; gradients are
averaged by DistributedDataParallel, and with the loss normalisation of
`masklet.train.losses` the update equals the one-process update on the same global batch.
Only rank 0 writes files and shows progress.

SAM 2 trains on images and videos together; `image_fraction` of a step's samples are single
frames (from `images`, a set of its own, or else from the videos themselves) with up to
`image_max_objects` objects each. Without them, training on clips of one to three objects
from random weights drifts back to one mask for every object (benchmarks/prompt_use.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from masklet.build import build_sam2
from masklet.errors import CheckpointError, ConfigError
from masklet.model.sam2 import SAM2Model
from masklet.predict.precision import cpu_computes_bfloat16
from masklet.predict.transforms import preprocess_video_frame
from masklet.train.checkpoint import (
    CHECKPOINT_NAME,
    ResumeState,
    load_resume,
    rng_state,
    save_resume,
    set_rng_state,
)
from masklet.train.data import AnnotatedVideo, Clip, sample_clip
from masklet.train.forward import clip_losses, training_tracking_config
from masklet.train.losses import LossWeights, StepLosses
from masklet.train.optim import (
    OptimSettings,
    apply_freeze,
    build_optimizer,
    cosine_factor,
    set_learning_rates,
)
from masklet.train.prompts import ClipPlan, PromptSettings, plan_clip

PRECISIONS = ("auto", "float32", "bfloat16")
METRICS_NAME = "metrics.json"
LOSS_CURVE_NAME = "loss_curve.png"


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """One training run. Defaults: the official fine-tuning recipe where it has one."""

    model: str = "sam2.1_hiera_t"
    checkpoint: str | None = None  # official .pt to start from; None trains from a random init
    image_size: int | None = None  # None: the model's own (1024)
    steps: int = 100
    batch_size: int = 1  # clips per step over all processes
    clip_frames: int = 8
    max_objects: int = 3
    image_fraction: float = 0.0  # share of the samples that are single frames (0: clips only)
    image_max_objects: int = 8  # objects per single-frame sample
    seed: int = 0
    precision: str = "auto"  # bfloat16 autocast on CUDA or a CPU with bfloat16 instructions
    device: str = "auto"  # "auto": the process's GPU under torchrun, else cuda:0, else the CPU
    checkpoint_every: int = 0  # also write the files every N steps (0: at the end only)
    prompts: PromptSettings = field(default_factory=PromptSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    losses: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.steps < 1 or self.batch_size < 1 or self.clip_frames < 1 or self.max_objects < 1:
            raise ConfigError("steps, batch_size, clip_frames and max_objects must be at least 1")
        if not 0.0 <= self.image_fraction <= 1.0:
            raise ConfigError(f"image_fraction is a share of the samples, from 0 to 1; got {self.image_fraction}")
        if self.image_max_objects < 1:
            raise ConfigError("image_max_objects must be at least 1")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class TrainResult:
    out: Path
    checkpoint: Path
    metrics: Path
    loss_curve: Path | None
    steps: int  # the run's total
    started_at: int  # steps done before this call (0, or where a resumed run was)
    first_loss: float  # mean total loss of the run's first steps (see `window_loss`)
    last_loss: float  # ... and of its last steps
    loss_window: int  # how many steps each of the two averages
    seconds: float
    world_size: int


@dataclass(frozen=True, slots=True)
class _Process:
    rank: int
    world: int
    device: torch.device
    distributed: bool


@contextlib.contextmanager
def _process_group(device_setting: str) -> Iterator[_Process]:
    """This process's place in the run; starts (and ends) the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_setting == "auto":
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(device_setting)
    if world <= 1:
        yield _Process(0, 1, device, False)
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield _Process(rank, world, device, True)
    finally:
        if started:
            dist.destroy_process_group()


def _compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda" or (device.type == "cpu" and cpu_computes_bfloat16()):
        return torch.bfloat16
    return None


def clip_tensors(clip: Clip, size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(T, 3, S, S) normalised frames (the video loader's resize) and (N, T, S, S) bool targets."""
    pixels = torch.stack([preprocess_video_frame(im, size) for im in clip.images]).to(device)
    masks = torch.from_numpy(clip.masks).float()  # (N, T, H, W)
    n, t, h, w = masks.shape
    resized = F.interpolate(masks.reshape(n * t, 1, h, w), size=(size, size), mode="bilinear", align_corners=False)
    return pixels, (resized.reshape(n, t, size, size) > 0.5).to(device)


class ClipLoss(nn.Module):
    """The model with `clip_losses` as its forward, the module DistributedDataParallel wraps."""

    def __init__(self, model: SAM2Model, settings: TrainSettings) -> None:
        super().__init__()
        self.model = model
        self.settings = settings
        self.tracking = training_tracking_config(model.config.tracking)

    def forward(
        self, pixels: Tensor, targets: Tensor, plan: ClipPlan, rng: np.random.Generator, num_objects: float
    ) -> tuple[Tensor, ...]:
        losses = clip_losses(
            self.model, self.tracking, pixels, targets, plan, rng,
            settings=self.settings.prompts, weights=self.settings.losses, num_objects=num_objects,
            freeze_image_encoder=self.settings.optim.freeze in ("image_encoder", "all_but_heads"),
        )  # fmt: skip
        return losses.as_tuple()  # tensors, so that DDP finds them


@dataclass(frozen=True, slots=True)
class _StepClip:
    pixels: Tensor
    targets: Tensor
    plan: ClipPlan
    rng: np.random.Generator  # the corrective clicks' draws
    torch_seed: int  # the dropout masks' draws


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What a run samples from: clips of `videos`, and single frames of `images`."""

    videos: Sequence[AnnotatedVideo]
    images: Sequence[AnnotatedVideo]


def is_image_sample(settings: TrainSettings, step: int, b: int) -> bool:
    """Whether sample b of a step is a single frame (drawn from (seed, step, b) alone)."""
    if settings.image_fraction <= 0.0:
        return False
    return bool(np.random.default_rng([settings.seed, step, b, 2]).random() < settings.image_fraction)


def _step_clips(data: TrainingData, settings: TrainSettings, step: int, proc: _Process, size: int) -> list[_StepClip]:
    """This process's share of the step's clips. Every random draw of clip b (image or clip,
    which one, which prompts, which dropout masks) comes from (seed, step, b), whichever
    process takes it."""
    picks = np.random.default_rng([settings.seed, step]).integers(len(data.videos), size=settings.batch_size)
    image_picks = np.random.default_rng([settings.seed, step, 2]).integers(len(data.images), size=settings.batch_size)
    clips = []
    for b in range(proc.rank, settings.batch_size, proc.world):
        rng = np.random.default_rng([settings.seed, step, b])
        if is_image_sample(settings, step, b):
            clip = sample_clip(data.images[int(image_picks[b])], rng, num_frames=1,
                               max_objects=settings.image_max_objects)  # fmt: skip
        else:
            clip = sample_clip(data.videos[int(picks[b])], rng, num_frames=settings.clip_frames,
                               max_objects=settings.max_objects)  # fmt: skip
        pixels, targets = clip_tensors(clip, size, proc.device)
        plan = plan_clip(targets.cpu(), rng, settings.prompts)
        torch_seed = int(np.random.default_rng([settings.seed, step, b, 1]).integers(2**62))
        clips.append(_StepClip(pixels, targets, plan, rng, torch_seed))
    return clips


def _sum_over_processes(values: Tensor, proc: _Process) -> Tensor:
    if proc.distributed:
        dist.all_reduce(values)
    return values


def _resumable_settings(settings: TrainSettings) -> dict[str, Any]:
    """What must match to resume a run (the step count may grow)."""
    d = settings.as_dict()
    d.pop("steps")
    d.pop("checkpoint_every")
    return d


def steps_with_loss(history: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    """The history's steps that had a loss to learn from: a step whose every frame took a mask
    prompt as its output has none (total 0)."""
    return [h for h in history if h["total"] > 0]


def loss_window(history: Sequence[dict[str, float]], steps: int = 10) -> int:
    """How many steps `window_loss` averages: `steps`, or half the steps with a loss if fewer."""
    return max(1, min(steps, len(steps_with_loss(history)) // 2))


def window_loss(history: Sequence[dict[str, float]], *, last: bool, steps: int = 10) -> float:
    """Mean total loss of the first (or last) `loss_window` steps that had a loss to learn from.

    One step's loss swings with its clip, and a step whose every frame took a mask prompt as
    its output has none (0): the last step alone can report a run as "loss 9.1 -> 0"."""
    losses = [h["total"] for h in steps_with_loss(history)]
    k = loss_window(history, steps)
    window = losses[-k:] if last else losses[:k]
    return float(sum(window) / len(window)) if window else float("nan")


def write_loss_curve(history: Sequence[dict[str, float]], path: Path) -> Path:
    """A PNG of the total loss and its parts against the step (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = steps_with_loss(history)  # a zero has no place on the log axis
    steps = [h["step"] for h in kept]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, style in (("total", "-"), ("mask", "--"), ("dice", "--"), ("iou", ":"), ("object_score", ":")):
        ax.plot(steps, [h[key] for h in kept], style, label=key if key != "mask" else "mask (focal)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("masklet train: loss per step")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def train(
    settings: TrainSettings,
    videos: Sequence[AnnotatedVideo],
    out: str | os.PathLike[str],
    *,
    images: Sequence[AnnotatedVideo] | None = None,
    resume: bool = False,
    progress: bool = True,
    plot: bool = True,
) -> TrainResult:
    """Train per `settings` on clips of `videos` (and, per `settings.image_fraction`, single
    frames of `images`, or of `videos` when None); files go to `out` (see `masklet.train.checkpoint`)."""
    if not videos:
        raise ConfigError("train: no videos to train on")
    if images is not None and settings.image_fraction == 0.0:
        raise ConfigError("train: image data given, but image_fraction is 0, so no sample would come from it")
    if images is not None and not images:
        raise ConfigError("train: the image data holds no videos")
    data = TrainingData(videos, images if images is not None else videos)
    out = Path(out)
    with _process_group(settings.device) as proc:
        if settings.batch_size % proc.world:
            raise ConfigError(f"batch size {settings.batch_size} does not split over {proc.world} processes")
        torch.manual_seed(settings.seed)
        model = build_sam2(settings.model, checkpoint=settings.checkpoint, device=proc.device,
                           **({"image_size": settings.image_size} if settings.image_size else {}))  # fmt: skip
        model.train()
        apply_freeze(model, settings.optim.freeze)
        optimizer = build_optimizer(model, settings.optim)
        start, history = 0, []
        if resume:
            state = load_resume(out)
            if state.settings != _resumable_settings(settings):
                raise CheckpointError(f"{out}: the run there was started with other settings; "
                                      "resume with the same ones (only --steps may change)")  # fmt: skip
            model.load_state_dict(torch.load(out / CHECKPOINT_NAME, map_location=proc.device,
                                             weights_only=True)["model"])  # fmt: skip
            optimizer.load_state_dict(state.optimizer)
            set_rng_state(state.rng)
            start, history = state.step, list(state.history)
        if proc.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
        wrapped: nn.Module = ClipLoss(model, settings)
        if proc.distributed:
            wrapped = nn.parallel.DistributedDataParallel(
                wrapped, device_ids=[proc.device.index] if proc.device.type == "cuda" else None,
                find_unused_parameters=True,
            )  # fmt: skip
        dtype = _compute_dtype(settings.precision, proc.device)
        size = model.config.image_size
        trainable = [p for p in model.parameters() if p.requires_grad]

        def save_state(done: int) -> None:
            state = ResumeState(done, optimizer.state_dict(), rng_state(), history, _resumable_settings(settings))
            save_resume(out, model, state)

        began = time.perf_counter()
        bar = tqdm(range(start, settings.steps), desc="train", unit="step", disable=not progress or proc.rank != 0,
                   initial=start, total=settings.steps)  # fmt: skip
        for step in bar:
            t0 = time.perf_counter()
            clips = _step_clips(data, settings, step, proc, size)
            local_objects = torch.tensor(float(sum(c.targets.shape[0] for c in clips)), device=proc.device)
            num_objects = max(float(_sum_over_processes(local_objects, proc)) / proc.world, 1.0)
            set_learning_rates(optimizer, cosine_factor(step, settings.steps, settings.optim.warmup_steps))
            optimizer.zero_grad(set_to_none=True)
            summed = StepLosses.zero(proc.device)
            for i, clip in enumerate(clips):
                last = i == len(clips) - 1
                torch.manual_seed(clip.torch_seed)
                sync = contextlib.nullcontext() if last or not proc.distributed else wrapped.no_sync()  # type: ignore[operator]
                autocast = (torch.autocast(proc.device.type, dtype=dtype) if dtype is not None
                            else contextlib.nullcontext())  # fmt: skip
                with sync:
                    with autocast:
                        losses = StepLosses(*wrapped(clip.pixels, clip.targets, clip.plan, clip.rng, num_objects))
                    total = losses.total
                    if not total.requires_grad:
                        # a clip whose every frame took a mask as its output has no loss; the
                        # backward still runs (zero gradients) so that every process syncs
                        total = total + sum(p.sum() for p in trainable) * 0.0
                    total.backward()
                summed = summed + StepLosses(*(v.detach() for v in losses.as_tuple()))
            if settings.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, settings.optim.grad_clip)
            optimizer.step()
            reported = _sum_over_processes(torch.stack(summed.as_tuple()), proc) / proc.world
            entry = dict(zip(("mask", "dice", "iou", "object_score", "total"), reported.tolist(), strict=True))
            entry.update(step=step + 1, seconds=time.perf_counter() - t0, lr=max(g["lr"] for g in optimizer.param_groups))
            history.append(entry)
            bar.set_postfix(loss=f"{entry['total']:.4f}")
            done = step + 1
            if proc.rank == 0 and settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < settings.steps:
                save_state(done)
        seconds = time.perf_counter() - began
        metrics_path, curve = out / METRICS_NAME, None
        if proc.rank == 0:
            save_state(settings.steps)
            metrics = {"settings": settings.as_dict(), "world_size": proc.world, "device": str(proc.device),
                       "compute_dtype": str(dtype or torch.float32), "seconds": seconds, "history": history}  # fmt: skip
            metrics_path.write_text(json.dumps(metrics, indent=1, default=str))
            if plot and history:
                curve = write_loss_curve(history, out / LOSS_CURVE_NAME)
        if proc.distributed:
            dist.barrier()
        return TrainResult(
            out=out, checkpoint=out / CHECKPOINT_NAME, metrics=metrics_path, loss_curve=curve,
            steps=settings.steps, started_at=start, first_loss=window_loss(history, last=False),
            last_loss=window_loss(history, last=True), loss_window=loss_window(history), seconds=seconds,
            world_size=proc.world,
        )  # fmt: skip


__all__ = [
    "TrainResult",
    "TrainSettings",
    "TrainingData",
    "is_image_sample",
    "loss_window",
    "steps_with_loss",
    "train",
    "window_loss",
    "write_loss_curve",
]
