"""Prompt simulation as in SAM 2's training: which frames are prompted, with what, and corrections.

A clip's first frame (and, at random, a second one) is a conditioning frame, prompted with
a mask, a box or a click drawn from the ground truth. On the first conditioning frame and
on a few random others, corrective clicks follow: each is drawn uniformly from the error
region of the current prediction (positive in a missed pixel, negative in a false one) or,
now and then, from the ground truth alone; the heads run again with the new click and the
previous logits. Coordinates are model-input pixels (x, y) of an S x S frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from masklet.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PromptSettings:
    """How prompts are drawn (defaults: the official fine-tuning recipe, with masks added)."""

    prob_mask: float = 0.1  # a conditioning frame prompted with its ground-truth mask
    prob_box: float = 0.5  # else: a box (noisy ground-truth box) rather than one click
    max_init_cond_frames: int = 2  # 1 or 2 conditioning frames per clip, at random
    max_frames_to_correct: int = 2  # frames that get corrective clicks: 1 or 2, at random
    corrections_per_frame: int = 7  # corrective clicks on each of them
    prob_click_from_gt: float = 0.1  # a corrective click drawn from the ground truth, not the error
    box_noise: float = 0.1  # std of the box corners' noise, in box sizes
    box_noise_bound: float = 20.0  # at most this many pixels

    def __post_init__(self) -> None:
        for name in ("prob_mask", "prob_box", "prob_click_from_gt"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"PromptSettings.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_init_cond_frames < 1 or self.max_frames_to_correct < 0 or self.corrections_per_frame < 0:
            raise ConfigError("PromptSettings: max_init_cond_frames >= 1, the correction counts >= 0")


@dataclass(frozen=True, slots=True)
class FramePrompt:
    """The first prompt of one conditioning frame, for all N objects of the clip."""

    kind: str  # "mask", "box" or "click"
    point_coords: Tensor | None  # (N, P, 2) float; a box is two corners labelled 2 and 3
    point_labels: Tensor | None  # (N, P) int32
    mask: Tensor | None  # (N, 1, S, S) float 0/1


@dataclass(frozen=True, slots=True)
class ClipPlan:
    """Where a clip is prompted and corrected (frame positions within the clip)."""

    init_cond_frames: tuple[int, ...]  # the first is 0
    prompts: dict[int, FramePrompt]
    frames_to_correct: tuple[int, ...]  # correction clicks there (a mask-prompted frame gets none)

    def processing_order(self, num_frames: int) -> list[int]:
        """Conditioning frames first (they read no memory), then the others in time order."""
        return list(self.init_cond_frames) + [f for f in range(num_frames) if f not in self.init_cond_frames]


def plan_clip(targets: Tensor, rng: np.random.Generator, settings: PromptSettings) -> ClipPlan:
    """targets: (N, T, S, S) bool ground truth of a clip at model-input size."""
    _, t_len = targets.shape[:2]
    n_cond = int(rng.integers(1, min(settings.max_init_cond_frames, t_len) + 1))
    others = rng.permutation(np.arange(1, t_len))[: n_cond - 1]
    init = (0, *sorted(int(f) for f in others))
    prompts = {}
    use_mask = rng.random() < settings.prob_mask  # one kind per clip, as the official sampler
    use_box = rng.random() < settings.prob_box
    for f in init:
        gt = targets[:, f]
        if use_mask:
            prompts[f] = FramePrompt("mask", None, None, gt[:, None].float())
        elif use_box and bool(gt.flatten(1).any(dim=1).all()):
            corners = torch.tensor([[2, 3]] * gt.shape[0], dtype=torch.int32)
            prompts[f] = FramePrompt("box", noisy_boxes(gt, rng, settings), corners, None)
        else:
            coords, labels = error_clicks(None, gt, rng)
            prompts[f] = FramePrompt("click", coords[:, None], labels[:, None], None)
    correct: tuple[int, ...] = ()
    if not use_mask and settings.corrections_per_frame > 0 and settings.max_frames_to_correct > 0:
        n_correct = int(rng.integers(1, min(settings.max_frames_to_correct, t_len) + 1))
        rest = [f for f in range(t_len) if f != 0]
        extra = rng.permutation(np.array(rest, dtype=np.int64))[: n_correct - 1] if rest else []
        correct = (0, *sorted(int(f) for f in extra))
    return ClipPlan(init, prompts, correct)


def noisy_boxes(gt: Tensor, rng: np.random.Generator, settings: PromptSettings) -> Tensor:
    """(N, S, S) bool -> (N, 2, 2) box corners (x0, y0), (x1, y1) with bounded Gaussian noise."""
    boxes = []
    size = gt.shape[-1]
    for mask in gt:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        x0, x1, y0, y1 = xs.min().item(), xs.max().item() + 1, ys.min().item(), ys.max().item() + 1
        w, h = x1 - x0, y1 - y0
        scale = np.array([w, h, w, h], dtype=np.float64) * settings.box_noise
        noise = np.clip(rng.normal(0.0, 1.0, 4) * scale, -settings.box_noise_bound, settings.box_noise_bound)
        box = np.clip(np.array([x0, y0, x1, y1], dtype=np.float64) + noise, 0, size)
        boxes.append([[min(box[0], box[2]), min(box[1], box[3])], [max(box[0], box[2]), max(box[1], box[3])]])
    return torch.tensor(boxes, dtype=torch.float32)


def error_clicks(pred: Tensor | None, gt: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """One click per object, uniform over its error region: (N, 2) xy pixels, (N,) labels.

    pred None (no prediction yet): uniform over the ground truth. A missed pixel gives a
    positive click (1), a false one a negative click (0); an object without errors (or an
    empty one with no prediction) gets a click at a uniform pixel, labelled by the truth.
    """
    gt = gt.bool()
    errors = gt if pred is None else (pred.bool() ^ gt)
    coords, labels = [], []
    for err, truth in zip(errors, gt, strict=True):
        where = torch.nonzero(err)
        if len(where) == 0:
            where = torch.nonzero(torch.ones_like(truth))
        y, x = where[int(rng.integers(len(where)))].tolist()
        coords.append([x, y])  # the prompt encoder shifts to the pixel centre
        labels.append(int(truth[y, x]))
    return torch.tensor(coords, dtype=torch.float32), torch.tensor(labels, dtype=torch.int32)
