"""What training updates and how: freezing, AdamW with layer-wise learning-rate decay, schedule.

Parameter groups follow SAM 2's recipe: the image encoder's trunk gets a lower learning
rate, decayed block by block towards the input (block i of B is scaled by
decay ** (B - i); the patch and position embeddings by decay ** (B + 1)); biases, norms and
learned embeddings get no weight decay.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn

from masklet.errors import ConfigError
from masklet.train.options import FREEZE_CHOICES

HEADS = ("sam_prompt_encoder.", "sam_mask_decoder.", "obj_ptr_proj.", "no_obj_ptr")


@dataclass(frozen=True, slots=True)
class OptimSettings:
    lr: float = 5e-6  # everything outside the image encoder
    encoder_lr: float = 3e-6  # the image encoder (neck and trunk, before the layer decay)
    layer_decay: float = 0.9
    weight_decay: float = 0.1
    warmup_steps: int = 0
    grad_clip: float = 0.1  # max global gradient norm; 0 turns clipping off
    freeze: str = "none"  # one of FREEZE_CHOICES

    def __post_init__(self) -> None:
        if self.freeze not in FREEZE_CHOICES:
            raise ConfigError(f"freeze must be one of {', '.join(FREEZE_CHOICES)}, got {self.freeze!r}")
        if self.lr <= 0 or self.encoder_lr < 0 or not 0 < self.layer_decay <= 1:
            raise ConfigError("lr > 0, encoder_lr >= 0 and 0 < layer_decay <= 1 are required")


def apply_freeze(model: nn.Module, freeze: str) -> int:
    """Turn off gradients per `freeze`; returns how many parameters stay trainable."""
    for name, p in model.named_parameters():
        if freeze == "image_encoder":
            p.requires_grad_(not name.startswith("image_encoder."))
        elif freeze == "all_but_heads":
            p.requires_grad_(name.startswith(HEADS))
        else:
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


NO_DECAY_NAMES = ("pos_embed", "tpos_enc", "token", "no_mem", "no_obj")  # learned embeddings


def _no_weight_decay(name: str, p: nn.Parameter) -> bool:
    """Biases, norms and learned embeddings are not decayed."""
    return p.ndim <= 1 or any(key in name for key in NO_DECAY_NAMES)


def lr_scale(name: str, num_blocks: int, decay: float) -> float:
    """The layer-decay factor of a trunk parameter (1 outside the trunk)."""
    if not name.startswith("image_encoder.trunk."):
        return 1.0
    match = re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", name)
    layer = int(match.group(1)) + 1 if match else 0  # patch / position embeddings come first
    return decay ** (num_blocks + 1 - layer)


def parameter_groups(model: nn.Module, settings: OptimSettings) -> list[dict]:
    """AdamW groups: one per (learning rate, weight decay) pair; frozen parameters left out."""
    trunk = getattr(getattr(model, "image_encoder", None), "trunk", None)
    num_blocks = len(trunk.blocks) if trunk is not None else 0
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        base = settings.encoder_lr if name.startswith("image_encoder.") else settings.lr
        lr = base * lr_scale(name, num_blocks, settings.layer_decay)
        wd = 0.0 if _no_weight_decay(name, p) else settings.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    return [{"params": ps, "lr": lr, "initial_lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def build_optimizer(model: nn.Module, settings: OptimSettings) -> torch.optim.AdamW:
    groups = parameter_groups(model, settings)
    if not groups:
        raise ConfigError(f"freeze={settings.freeze!r} leaves no parameter to train")
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at `step` (0-based): linear warm-up, then cosine down to 0 at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))


def set_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
