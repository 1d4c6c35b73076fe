"""FPN neck and the image encoder (Hiera trunk + neck) of SAM 2."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklet.configs import HieraConfig, NeckConfig
from masklet.errors import ConfigError
from masklet.model.hiera import Hiera
from masklet.model.positional import PositionEmbeddingSine


class FpnNeck(nn.Module):
    """Projects every trunk stage to `d_model` channels and adds top-down features on chosen levels.

    `backbone_channels` lists the trunk's stage channels highest resolution
    first. Level i is the i-th stage in that order; `convs` is stored lowest
    resolution first (convs.0 projects the last stage), as in the official
    state dict.
    """

    def __init__(self, cfg: NeckConfig, *, backbone_channels: tuple[int, ...]) -> None:
        super().__init__()
        num_levels = len(backbone_channels)
        bad = [lvl for lvl in cfg.fpn_top_down_levels if not 0 <= lvl < num_levels]
        if bad:
            raise ConfigError(
                f"NeckConfig: fpn_top_down_levels {cfg.fpn_top_down_levels} name levels {bad}, but the "
                f"trunk has {num_levels} stages (levels 0..{num_levels - 1}); drop those levels"
            )
        self.cfg = cfg
        self.backbone_channels = tuple(backbone_channels)
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(c, cfg.d_model, kernel_size=1)))
            for c in reversed(self.backbone_channels)
        )
        self.position_encoding = PositionEmbeddingSine(cfg.d_model)
        self._top_down = frozenset(cfg.fpn_top_down_levels)

    def forward(self, features: Sequence[Tensor]) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Stage maps (B, C_i, H_i, W_i), highest resolution first -> (fused maps, position encodings).

        Both results are highest resolution first, each map (B, d_model, H_i, W_i).
        """
        last = len(features) - 1
        fused: list[Tensor] = [features[0]] * len(features)  # placeholders, all overwritten
        above: Tensor | None = None  # fused map of the next coarser level
        for level in range(last, -1, -1):  # coarse to fine
            lateral = self.convs[last - level](features[level])  # (B, d_model, H, W)
            if level in self._top_down and above is not None:
                # parity: the coarser map is upsampled in float32
                top_down = F.interpolate(
                    above.to(torch.float32),
                    size=lateral.shape[-2:],
                    mode=self.cfg.fpn_interp_mode,
                    align_corners=None if self.cfg.fpn_interp_mode == "nearest" else False,
                    antialias=False,
                )
                lateral = lateral + top_down
                if self.cfg.fuse_type == "avg":
                    lateral = lateral / 2
            fused[level] = above = lateral
        pos = tuple(self.position_encoding(x).to(x.dtype) for x in fused)
        return tuple(fused), pos


@dataclass(frozen=True, slots=True)
class EncoderOutput:
    """Multiscale image features after the neck, with the coarsest `scalp` levels dropped."""

    backbone_fpn: tuple[Tensor, ...]  # (B, d_model, H_i, W_i), highest resolution first
    vision_pos_enc: tuple[Tensor, ...]  # (B, d_model, H_i, W_i), sine encoding of each level

    @property
    def vision_features(self) -> Tensor:
        """(B, d_model, H, W): the lowest-resolution kept level (64 x 64 at 1024 input)."""
        return self.backbone_fpn[-1]


class ImageEncoder(nn.Module):
    """Hiera trunk + FPN neck: normalised pixels -> multiscale features for the SAM heads and memory."""

    def __init__(self, hiera: HieraConfig, neck: NeckConfig) -> None:
        super().__init__()
        num_levels = len(hiera.stages)
        if not 0 <= neck.scalp < num_levels:
            raise ConfigError(
                f"NeckConfig: scalp={neck.scalp} must leave at least one of the trunk's "
                f"{num_levels} levels; choose 0..{num_levels - 1}"
            )
        self.trunk = Hiera(hiera)
        self.neck = FpnNeck(neck, backbone_channels=hiera.stage_channels)
        if self.trunk.channels != self.neck.backbone_channels:
            raise ConfigError(
                f"the trunk's stages output {self.trunk.channels} channels but the neck expects "
                f"{self.neck.backbone_channels}; derive both from one HieraConfig"
            )
        self.scalp = neck.scalp

    def forward(self, pixels: Tensor) -> EncoderOutput:
        """(B, 3, H, W) normalised pixels -> features at strides 4, 8, 16 (and 32 if scalp is 0)."""
        fused, pos = self.neck(self.trunk(pixels))
        keep = len(fused) - self.scalp
        return EncoderOutput(backbone_fpn=fused[:keep], vision_pos_enc=pos[:keep])
