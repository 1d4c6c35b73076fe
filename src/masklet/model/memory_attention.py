"""Memory attention: conditions the current frame's features on the memory bank.

Each layer runs RoPE self-attention over the frame's tokens, RoPE
cross-attention from those tokens to the memory (spatial memories of several
frames, then object-pointer tokens, which are not rotated), and an MLP.
Everything is batch-first: tokens are (B, L, C).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklet.configs import MemoryAttentionConfig
from masklet.model.rotary import apply_rope_qk, axial_rope_tables
from masklet.model.transformer import Attention


class RoPEAttention(Attention):
    """Attention with 2D rotary position encoding of queries and keys.

    Queries are the tokens of one (square or `feat_sizes`) grid. With
    `rope_k_repeat`, keys may be several copies of that grid (memory frames),
    each rotated like the queries.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        *,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: tuple[int, int] = (64, 64),  # (width, height) of the query grid
    ) -> None:
        super().__init__(
            embedding_dim, num_heads, downsample_rate=downsample_rate, dropout=dropout, kv_in_dim=kv_in_dim
        )
        self.head_dim = self.internal_dim // num_heads
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = feat_sizes
        cos, sin = axial_rope_tables(self.head_dim, feat_sizes[0], feat_sizes[1], theta=rope_theta)
        # not in the state dict: the official model keeps these tables outside it too
        self.register_buffer("rope_cos", cos, persistent=False)  # (L, head_dim / 2)
        self.register_buffer("rope_sin", sin, persistent=False)

    def _rope_tables(self, num_tokens: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Tables for `num_tokens` queries: the configured grid, else a square grid."""
        width, height = self.feat_sizes
        if num_tokens == width * height:
            if self.rope_cos.dtype == torch.float32:
                return self.rope_cos, self.rope_sin
        else:
            # parity: like the official model, any other size is taken as a square grid
            width = height = math.isqrt(num_tokens)
            if width * height != num_tokens:
                raise ValueError(
                    f"rotary attention got {num_tokens} query tokens, which is neither the configured "
                    f"{self.feat_sizes[0]}x{self.feat_sizes[1]} grid nor a square grid; "
                    "pass the tokens of a square feature map"
                )
        return axial_rope_tables(self.head_dim, width, height, theta=self.rope_theta, device=device)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, *, num_k_exclude_rope: int = 0) -> Tensor:
        """q (B, Lq, C), k and v (B, Lk, kv_in_dim) -> (B, Lq, C).

        The last `num_k_exclude_rope` keys are left unrotated (object pointers).
        """
        q, k, v = self.project_heads(q, k, v)  # (B, heads, L, head_dim)

        cos, sin = self._rope_tables(q.shape[-2], q.device)
        num_k_rope = k.shape[-2] - num_k_exclude_rope
        q, k_rope = apply_rope_qk(q, k[:, :, :num_k_rope], cos, sin, repeat_freqs_k=self.rope_k_repeat)
        if num_k_exclude_rope > 0:
            k = torch.cat([k_rope, k[:, :, num_k_rope:]], dim=-2)
        else:
            k = k_rope
        return self.attend_heads(q, k, v)


class MemoryAttentionLayer(nn.Module):
    """Self-attention, cross-attention to the memory, then an MLP; pre-norm residuals."""

    def __init__(self, cfg: MemoryAttentionConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.self_attn = RoPEAttention(
            d, cfg.num_heads, dropout=cfg.dropout, rope_theta=cfg.rope_theta, feat_sizes=cfg.feat_sizes
        )
        # the memory holds several frames of the same grid: repeat the key angles per frame
        self.cross_attn_image = RoPEAttention(
            d,
            cfg.num_heads,
            dropout=cfg.dropout,
            kv_in_dim=cfg.kv_in_dim,
            rope_theta=cfg.rope_theta,
            rope_k_repeat=True,
            feat_sizes=cfg.feat_sizes,
        )
        self.linear1 = nn.Linear(d, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.dropout1 = nn.Dropout(cfg.dropout)
        self.dropout2 = nn.Dropout(cfg.dropout)
        self.dropout3 = nn.Dropout(cfg.dropout)
        self.pos_enc_at_attn = cfg.pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = cfg.pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = cfg.pos_enc_at_cross_attn_keys

    def forward(
        self,
        x: Tensor,  # (B, L, C) current-frame tokens
        memory: Tensor,  # (B, Lm, Cm)
        *,
        curr_pos: Tensor,  # (B, L, C)
        memory_pos: Tensor,  # (B, Lm, Cm)
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:  # (B, L, C)
        h = self.norm1(x)
        qk = h + curr_pos if self.pos_enc_at_attn else h
        x = x + self.dropout1(self.self_attn(qk, qk, h))

        h = self.norm2(x)
        q = h + curr_pos if self.pos_enc_at_cross_attn_queries else h
        k = memory + memory_pos if self.pos_enc_at_cross_attn_keys else memory
        x = x + self.dropout2(self.cross_attn_image(q, k, memory, num_k_exclude_rope=num_obj_ptr_tokens))

        h = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(x)))))
        return x + self.dropout3(h)


class MemoryAttention(nn.Module):
    """`num_layers` memory-attention layers and a final LayerNorm."""

    def __init__(self, cfg: MemoryAttentionConfig) -> None:
        super().__init__()
        self.pos_enc_at_input = cfg.pos_enc_at_input
        self.layers = nn.ModuleList(MemoryAttentionLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(
        self,
        *,
        curr: Tensor,  # (B, L, C) current-frame features, L = H * W
        curr_pos: Tensor,  # (B, L, C)
        memory: Tensor,  # (B, Lm, Cm) spatial memories of T frames (T * L tokens), then pointer tokens
        memory_pos: Tensor,  # (B, Lm, Cm)
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:  # (B, L, C)
        """The current frame's tokens conditioned on the memory.

        The last `num_obj_ptr_tokens` memory tokens are object pointers and get
        no rotary encoding. Memory stored in a lower precision is promoted to
        `curr`'s dtype first.
        """
        # parity: the official bank stores bf16 memories; joining them with the
        # float32 pointers promotes them, so attention sees bf16-rounded float32
        memory = memory.to(curr.dtype)
        memory_pos = memory_pos.to(curr.dtype)
        x = curr + 0.1 * curr_pos if self.pos_enc_at_input else curr
        for layer in self.layers:
            x = layer(
                x, memory, curr_pos=curr_pos, memory_pos=memory_pos, num_obj_ptr_tokens=num_obj_ptr_tokens
            )
        return self.norm(x)
