"""2D axial rotary position encoding (RoPE) in real arithmetic.

Channels are taken in consecutive pairs (x[2i], x[2i+1]); the first half of the
pairs turns with the token's column, the second half with its row. The tables
hold cos and sin of the angles, so no complex tensors are needed (the model
stays exportable).
"""

from __future__ import annotations

import torch
from torch import Tensor


def axial_rope_tables(
    dim: int, end_x: int, end_y: int, *, theta: float = 10000.0, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """cos and sin tables, each (L, dim/2), for an end_x (wide) by end_y (high) grid.

    Tokens are numbered row by row (column fastest), as `flatten(2)` of a
    (B, C, H, W) map numbers them. `dim` is the per-head channel count.
    """
    if dim % 4:
        raise ValueError(f"rotary encoding needs a per-head dim divisible by 4, got {dim}")
    quarter = dim // 4
    # parity: the official exponents step by 4 over [0, dim), i.e. 4k/dim
    exponents = torch.arange(0, dim, 4, dtype=torch.float32, device=device)[:quarter] / dim
    freqs = 1.0 / (theta**exponents)  # (dim/4,)
    t = torch.arange(end_x * end_y, dtype=torch.float32, device=device)
    t_x = t % end_x  # column of each token
    t_y = torch.div(t, end_x, rounding_mode="floor")  # row of each token
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)  # (L, dim/2)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each channel pair of x (..., L, D) by the angles of tables (L, D/2).

    Computed in float32 and returned in x's dtype.
    """
    pairs = x.float().unflatten(-1, (-1, 2))  # (..., L, D/2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    cos, sin = cos.float(), sin.float()
    rotated = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def apply_rope_qk(
    q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, *, repeat_freqs_k: bool = False
) -> tuple[Tensor, Tensor]:
    """Rotate queries q (..., Lq, D) and keys k (..., Lk, D) with tables for the Lq query positions.

    With `repeat_freqs_k`, keys are r = Lk / Lq stacked copies of the query grid
    (several memory frames) and key j gets the angles of query position j mod Lq.
    Keys of length zero are returned unchanged.
    """
    q_out = apply_rope(q, cos, sin)
    lq, lk = q.shape[-2], k.shape[-2]
    if lk == 0:
        return q_out, k
    if repeat_freqs_k:
        if lk % lq:
            raise ValueError(f"rotary keys must be a whole number of query grids: {lk} keys for {lq} queries")
        cos, sin = cos.repeat(lk // lq, 1), sin.repeat(lk // lq, 1)
    elif lk != lq:
        raise ValueError(
            f"rotary keys and queries must have equal length without repeat_freqs_k, got {lk} and {lq}"
        )
    return q_out, apply_rope(k, cos, sin)
