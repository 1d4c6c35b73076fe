"""SAM 2's training losses on one step's output: focal + dice on masks (20:1), L1 on the
predicted IoU, BCE on the object score; with several candidates, the mask losses of the
candidate that fits best.

Every loss is a sum over objects divided by `num_objects`, the clip batch's object count
over all processes divided by the number of processes: with DistributedDataParallel's
gradient mean, the sum over all objects of the global batch divided by their number,
as in a single process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.model.types import StepOutput


@dataclass(frozen=True, slots=True)
class LossWeights:
    mask: float = 20.0  # sigmoid focal loss
    dice: float = 1.0
    iou: float = 1.0  # L1 between predicted and actual IoU
    object_score: float = 1.0  # BCE on "the object is present"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass(frozen=True, slots=True)
class StepLosses:
    """The four losses of one or more steps (0-d tensors) and their weighted total."""

    mask: Tensor
    dice: Tensor
    iou: Tensor
    object_score: Tensor
    total: Tensor

    def __add__(self, other: StepLosses) -> StepLosses:
        return StepLosses(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.mask, self.dice, self.iou, self.object_score, self.total

    @staticmethod
    def zero(device: torch.device | str = "cpu") -> StepLosses:
        z = torch.zeros((), device=device)
        return StepLosses(z, z, z, z, z)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, *, alpha: float, gamma: float) -> Tensor:
    """Per-pixel focal loss (RetinaNet's), mean over the last two axes: (N, M, H, W) -> (N, M)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(2).mean(-1)


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """1 - soft Dice (smoothed by 1): (N, M, H, W) -> (N, M)."""
    prob = logits.sigmoid().flatten(2)
    targets = targets.flatten(2)
    return 1 - (2 * (prob * targets).sum(-1) + 1) / (prob.sum(-1) + targets.sum(-1) + 1)


def actual_iou(logits: Tensor, targets: Tensor) -> Tensor:
    """IoU of the masks `logits > 0` with the targets: (N, M, H, W) -> (N, M); 0 when both are empty
    (such objects carry no IoU loss: see `step_losses`)."""
    pred = (logits > 0).flatten(2)
    truth = targets.flatten(2) > 0.5
    inter = (pred & truth).sum(-1).float()
    return inter / (pred | truth).sum(-1).float().clamp(min=1.0)


def step_losses(out: StepOutput, targets: Tensor, *, num_objects: float, weights: LossWeights) -> StepLosses:
    """The losses of one step. targets: (N, S, S) ground truth at the model-input size."""
    logits = out.candidate_high_res_logits.float()  # (N, M, S, S)
    target = targets.float()[:, None].expand_as(logits)
    focal = sigmoid_focal_loss(logits, target, alpha=weights.focal_alpha, gamma=weights.focal_gamma)
    dice = dice_loss(logits, target)
    iou_error = (out.iou.float() - actual_iou(logits.detach(), target)).abs()  # (N, M)
    present = target[:, 0].flatten(1).any(dim=1).float()  # (N,)
    object_score = F.binary_cross_entropy_with_logits(
        out.obj_score_logits.float()[:, 0], present, reduction="none"
    )  # (N,)
    if logits.shape[1] > 1:
        # the candidate that fits best carries the mask losses; the IoU head learns all of them
        best = torch.argmin(focal * weights.mask + dice * weights.dice, dim=1)
        rows = torch.arange(logits.shape[0], device=logits.device)
        focal, dice = focal[rows, best], dice[rows, best]
    else:
        focal, dice = focal[:, 0], dice[:, 0]
    iou_error = iou_error.mean(dim=1)
    # an absent object teaches only the object score
    mask_l = (focal * present).sum() / num_objects
    dice_l = (dice * present).sum() / num_objects
    iou_l = (iou_error * present).sum() / num_objects
    obj_l = object_score.sum() / num_objects
    total = weights.mask * mask_l + weights.dice * dice_l + weights.iou * iou_l + weights.object_score * obj_l
    return StepLosses(mask_l, dice_l, iou_l, obj_l, total)
