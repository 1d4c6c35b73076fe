"""Memory encoder: turns a frame's features and its predicted mask into a memory.

The mask is downsampled to the feature grid by strided convolutions, added to
the projected frame features, mixed by ConvNeXt blocks and projected to the
(narrower) memory width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from masklet.configs import MemoryEncoderConfig
from masklet.errors import ConfigError
from masklet.model.common import LayerNorm2d
from masklet.model.positional import PositionEmbeddingSine


@dataclass(frozen=True, slots=True)
class MemoryEncoderOutput:
    vision_features: Tensor  # (B, out_dim, h, w) memory features
    vision_pos_enc: Tensor  # (B, out_dim, h, w) sine position encoding of the grid


class MaskDownSampler(nn.Module):
    """Downsamples a (B, 1, H, W) mask by `total_stride` into (B, embed_dim, H/s, W/s).

    Each strided conv divides the side by `stride` and multiplies the channels by
    stride**2; LayerNorm and GELU follow each; a 1x1 conv ends at `embed_dim`.
    """

    def __init__(
        self, embed_dim: int, *, kernel_size: int, stride: int, padding: int, total_stride: int
    ) -> None:
        super().__init__()
        num_layers, reach = 0, 1
        while reach < total_stride:
            reach *= stride
            num_layers += 1
        if stride < 2 or reach != total_stride:
            raise ConfigError(
                f"mask downsampler: total stride {total_stride} is not a power of the stride {stride}; "
                "choose a stride whose power gives the total stride"
            )
        # one nn.Sequential, so that the parameter names match the official encoder.N.*
        self.encoder = nn.Sequential()
        chans = 1
        for _ in range(num_layers):
            out_chans = chans * stride**2
            self.encoder.append(
                nn.Conv2d(chans, out_chans, kernel_size=kernel_size, stride=stride, padding=padding)
            )
            self.encoder.append(LayerNorm2d(out_chans))
            self.encoder.append(nn.GELU())
            chans = out_chans
        self.encoder.append(nn.Conv2d(chans, embed_dim, kernel_size=1))

    def forward(self, mask: Tensor) -> Tensor:  # (B, 1, H, W) -> (B, embed_dim, H/s, W/s)
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, LayerNorm, pointwise MLP, layer scale, residual."""

    def __init__(
        self, dim: int, *, kernel_size: int = 7, padding: int = 3, layer_scale_init_value: float = 1e-6
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        # pointwise convs as linear layers over channels-last maps
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (
            nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        h = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, H, W, C)
        h = self.pwconv2(self.act(self.pwconv1(h)))
        if self.gamma is not None:
            h = self.gamma * h
        return x + h.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of ConvNeXt blocks mixing frame features with the mask embedding."""

    def __init__(
        self, dim: int, num_layers: int, *, kernel_size: int, padding: int, layer_scale_init_value: float
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            CXBlock(
                dim, kernel_size=kernel_size, padding=padding, layer_scale_init_value=layer_scale_init_value
            )
            for _ in range(num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Frame features + mask -> memory features and their position encoding."""

    def __init__(self, cfg: MemoryEncoderConfig) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(
            cfg.in_dim,
            kernel_size=cfg.downsampler_kernel_size,
            stride=cfg.downsampler_stride,
            padding=cfg.downsampler_padding,
            total_stride=cfg.downsampler_total_stride,
        )
        self.pix_feat_proj = nn.Conv2d(cfg.in_dim, cfg.in_dim, kernel_size=1)
        self.fuser = Fuser(
            cfg.in_dim,
            cfg.fuser_num_layers,
            kernel_size=cfg.fuser_kernel_size,
            padding=cfg.fuser_padding,
            layer_scale_init_value=cfg.fuser_layer_scale_init_value,
        )
        self.out_proj: nn.Module = (
            nn.Identity() if cfg.out_dim == cfg.in_dim else nn.Conv2d(cfg.in_dim, cfg.out_dim, kernel_size=1)
        )
        self.position_encoding = PositionEmbeddingSine(cfg.out_dim)

    def forward(
        self,
        pix_feat: Tensor,  # (B, in_dim, h, w) frame features
        masks: Tensor,  # (B, 1, s*h, s*w) mask logits (or probabilities), s = total stride
        *,
        skip_mask_sigmoid: bool = False,
    ) -> MemoryEncoderOutput:
        """Encode a frame and its mask; `skip_mask_sigmoid` when `masks` is already in [0, 1]."""
        mask_prob = masks if skip_mask_sigmoid else torch.sigmoid(masks)
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask_prob)  # (B, in_dim, h, w)
        x = self.out_proj(self.fuser(x))  # (B, out_dim, h, w)
        pos = self.position_encoding(x).to(x.dtype)
        return MemoryEncoderOutput(vision_features=x, vision_pos_enc=pos)
