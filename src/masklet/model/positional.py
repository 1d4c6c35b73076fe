"""Position encodings: sine grids, random-Fourier features, 2D rotary (RoPE).

The rotary encoding is written in real arithmetic (cos/sin pairs, no complex
tensors) so that the model can later be exported.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """Fixed sine/cosine encoding of a (H, W) grid, normalised to [0, 2*pi]."""

    def __init__(
        self, num_pos_feats: int, *, temperature: float = 10000.0, normalize: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("a scale needs normalize=True")
        self.num_pos_feats = num_pos_feats // 2  # per axis
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def _dim_t(self, device: torch.device) -> Tensor:
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=device)
        return self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)

    def _interleave(self, pos: Tensor) -> Tensor:
        """(..., F) angles -> (..., F) with sin on even and cos on odd slots."""
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)

    @torch.no_grad()
    def grid(self, height: int, width: int, device: torch.device | None = None) -> Tensor:
        """(C, H, W) encoding of an H x W grid, C = num_pos_feats."""
        y = torch.arange(1, height + 1, dtype=torch.float32, device=device)[:, None].expand(height, width)
        x = torch.arange(1, width + 1, dtype=torch.float32, device=device)[None, :].expand(height, width)
        if self.normalize:
            eps = 1e-6
            y = y / (height + eps) * self.scale
            x = x / (width + eps) * self.scale
        dim_t = self._dim_t(device)
        pos_x = self._interleave(x[..., None] / dim_t)
        pos_y = self._interleave(y[..., None] / dim_t)
        return torch.cat((pos_y, pos_x), dim=-1).permute(2, 0, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) encoding matching the spatial size of `x` (B, *, H, W)."""
        pos = self.grid(x.shape[-2], x.shape[-1], x.device)
        return pos[None].expand(x.shape[0], -1, -1, -1).to(x.dtype)


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier-feature encoding of normalised (x, y) coordinates."""

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        # the official checkpoints store this matrix; its values come from there
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _encode(self, coords: Tensor) -> Tensor:
        """(..., 2) coordinates in [0, 1] -> (..., 2F) features."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> Tensor:
        """(2F, H, W) encoding of the centres of an H x W grid."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords_xy: Tensor, image_size: tuple[int, int]) -> Tensor:
        """(B, P, 2) pixel coordinates in an image of (H, W) -> (B, P, 2F)."""
        h, w = image_size
        size_wh = torch.tensor([w, h], device=coords_xy.device, dtype=torch.float32)
        return self._encode(coords_xy.to(torch.float32) / size_wh)
