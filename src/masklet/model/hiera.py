"""Hiera: the hierarchical ViT trunk of the SAM 2 image encoder.

Blocks work on channels-last maps (B, H, W, C) so that LayerNorm and the
linear layers act on the last axis; the trunk returns each stage's output as
a (B, C, H, W) map, highest resolution first.

Attention is windowed (non-overlapping square windows, zero-padded at the
bottom/right edge) except in the configured global blocks. The first block of
each pooled stage max-pools its queries (and its shortcut) by `q_stride`, which
halves the resolution and, inside windows, the window size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklet.configs import HieraConfig
from masklet.errors import ConfigError
from masklet.model.common import MLP

_LN_EPS = 1e-6


def _max_pool(x: Tensor, stride: tuple[int, int] | None) -> Tensor:
    """Max-pool a channels-last map (B, H, W, C) by `stride` (no-op for None)."""
    if stride is None:
        return x
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)


def _to_windows(x: Tensor, size: int) -> tuple[Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nWin, size, size, C), zero-padding H and W up to multiples of `size`.

    Also returns the padded (Hp, Wp).
    """
    b, h, w, c = x.shape
    pad_h, pad_w = -h % size, -w % size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // size, size, wp // size, size, c).transpose(2, 3)
    return x.reshape(-1, size, size, c), (hp, wp)


def _from_windows(windows: Tensor, padded_hw: tuple[int, int], hw: tuple[int, int]) -> Tensor:
    """(B * nWin, s, s, C) windows tiling a (Hp, Wp) map -> (B, H, W, C), padding cropped off."""
    size = windows.shape[1]
    hp, wp = padded_hw
    rows, cols = hp // size, wp // size
    b = windows.shape[0] // (rows * cols)
    x = windows.reshape(b, rows, cols, size, size, -1).transpose(2, 3).reshape(b, hp, wp, -1)
    h, w = hw
    return x[:, :h, :w] if (hp, wp) != (h, w) else x


class PatchEmbed(nn.Module):
    """Strided convolution from pixels to channels-last patch tokens."""

    def __init__(self, cfg: HieraConfig, *, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_chans, cfg.embed_dim,
            kernel_size=cfg.patch_kernel_size, stride=cfg.patch_stride, padding=cfg.patch_padding,
        )

    def forward(self, pixels: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, H/4, W/4, C)
        return self.proj(pixels).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled (keys and values are not)."""

    def __init__(self, dim: int, dim_out: int, *, num_heads: int, q_stride: tuple[int, int] | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:  # (B, H, W, C) -> (B, H', W', C_out)
        b, h, w, _ = x.shape
        # the qkv features are laid out as (3, heads, head_dim)
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each (B, L, heads, head_dim)
        if self.q_stride is not None:
            q = _max_pool(q.reshape(b, h, w, -1), self.q_stride)  # (B, H', W', heads * head_dim)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).reshape(b, h, w, -1)  # (B, H', W', C_out)
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block: (windowed) attention with optional query pooling, then an MLP.

    `window_size` 0 means global attention. Where the width changes, the
    shortcut is a linear projection of the normalised input, pooled like the queries.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        *,
        num_heads: int,
        window_size: int,
        q_stride: tuple[int, int] | None = None,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_stride=q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=_LN_EPS)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: Tensor) -> Tensor:  # (B, H, W, C) -> (B, H', W', C_out)
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
        shortcut = _max_pool(shortcut, self.q_stride)  # (B, H', W', C_out)

        if self.window_size > 0:
            windows, padded_hw = _to_windows(x, self.window_size)
            windows = self.attn(windows)  # query pooling shrinks each window by q_stride
            if self.q_stride is not None:
                padded_hw = (padded_hw[0] // self.q_stride[0], padded_hw[1] // self.q_stride[1])
            x = _from_windows(windows, padded_hw, shortcut.shape[1:3])
        else:
            x = self.attn(x)

        x = shortcut + x
        return x + self.mlp(self.norm2(x))


def _stage_heads(cfg: HieraConfig) -> tuple[int, ...]:
    heads, out = cfg.num_heads, []
    for _ in cfg.stages:
        out.append(heads)
        heads = int(heads * cfg.head_mul)
    return tuple(out)


class Hiera(nn.Module):
    """Hierarchical multi-scale ViT (Hiera) with windowed absolute position embeddings."""

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stage_ends = cfg.stage_ends
        channels, heads = cfg.stage_channels, _stage_heads(cfg)
        for c, n in zip(channels, heads, strict=True):
            if c % n:
                raise ConfigError(f"HieraConfig: a stage of {c} channels cannot split into {n} heads")

        self.patch_embed = PatchEmbed(cfg)
        # position embedding = a coarse "background" grid resized to the feature map,
        # plus one window-sized embedding repeated over every window
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_spatial_size))
        first_window = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, cfg.embed_dim, first_window, first_window))

        # the first block of stage s > 0 changes width and, for s <= q_pool, pools;
        # it still attends within the previous stage's windows
        pooled_starts = {end + 1 for end in cfg.stage_ends[: cfg.q_pool]}
        stage_of = [s for s, n in enumerate(cfg.stages) for _ in range(n)]
        self.blocks = nn.ModuleList()
        dim = cfg.embed_dim
        for i, stage in enumerate(stage_of):
            starts_stage = stage > 0 and i - 1 == cfg.stage_ends[stage - 1]
            window = cfg.window_spec[stage - 1 if starts_stage else stage]
            self.blocks.append(
                MultiScaleBlock(
                    dim, channels[stage],
                    num_heads=heads[stage],
                    window_size=0 if i in cfg.global_att_blocks else window,
                    q_stride=cfg.q_stride if i in pooled_starts else None,
                    mlp_ratio=cfg.mlp_ratio,
                )
            )
            dim = channels[stage]

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each stage's output, highest resolution first (read from the built blocks)."""
        return tuple(self.blocks[end].dim_out for end in self.stage_ends)

    def _window_pos_embed(self, hw: tuple[int, int]) -> Tensor:
        """(1, H, W, C) position embedding for an H x W patch grid."""
        h, w = hw
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")  # (1, C, H, W)
        win = self.pos_embed_window
        # a grid that is not a whole number of windows gets a cropped last tile
        reps = (math.ceil(h / win.shape[-2]), math.ceil(w / win.shape[-1]))
        pos = pos + win.tile(1, 1, *reps)[..., :h, :w]
        return pos.permute(0, 2, 3, 1)

    def forward(self, pixels: Tensor) -> list[Tensor]:
        """(B, 3, H, W) normalised pixels -> one (B, C_i, H_i, W_i) map per stage, highest resolution first."""
        x = self.patch_embed(pixels)  # (B, H/4, W/4, C)
        x = x + self._window_pos_embed((x.shape[1], x.shape[2]))
        ends = set(self.stage_ends)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in ends:
                outputs.append(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C, H, W)
        return outputs
