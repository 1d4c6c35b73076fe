"""Two-way transformer of the SAM mask decoder: prompt tokens and image tokens attend to each other."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from masklet.model.common import MLP


class Attention(nn.Module):
    """Multi-head attention whose projections may shrink the width by `downsample_rate`.

    Batch-first: q (B, Lq, C), k and v (B, Lk, kv_in_dim) -> (B, Lq, C). Subclasses
    (rotary attention) reuse `project_heads` and `attend_heads` around their own
    treatment of the per-head queries and keys.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        *,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(
                f"Attention: {num_heads} heads do not divide the internal width {self.internal_dim} "
                f"(= {embedding_dim} // downsample_rate {downsample_rate}); choose a divisor"
            )
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q (B, Lq, C), k and v (B, Lk, kv_in_dim) -> (B, Lq, C)."""
        return self.attend_heads(*self.project_heads(q, k, v))

    def project_heads(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Project and split into heads: each (B, heads, L, internal_dim // heads)."""
        return self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))

    def attend_projected(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """`forward` for inputs already through q_proj, k_proj and v_proj: (B, L, internal_dim) each."""
        return self.attend_heads(self._split(q), self._split(k), self._split(v))

    def attend_heads(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Scaled dot-product attention over per-head tensors, merged and projected: (B, Lq, C)."""
        dropout_p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)  # (B, heads, Lq, D)
        b, heads, length, head_dim = out.shape
        out = out.transpose(1, 2).reshape(b, length, heads * head_dim)
        return self.out_proj(out)

    def _split(self, x: Tensor) -> Tensor:
        b, length, width = x.shape
        return x.reshape(b, length, self.num_heads, width // self.num_heads).transpose(1, 2)


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, tokens -> image, token MLP, image -> tokens; post-norm residuals."""

    def __init__(
        self,
        embedding_dim: int,
        *,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        # registration order follows the official state dict
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, 2, activation=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        # the first block sees the raw prompt tokens, which already carry their position
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, *, query_pe: Tensor, key_pe: Tensor,
        image_projections: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """queries (B, T, C), keys (B, L, C); pe of the same shapes (key_pe may have batch 1).

        image_projections: `image_projections(keys, key_pe)` when the caller has them already.
        """
        if self.skip_first_layer_pe:
            # no residual here: the self-attention output replaces the tokens
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        if image_projections is None:
            image_projections = self.image_projections(keys, key_pe)
        image_keys, image_values, image_queries = image_projections
        to_image, to_tokens = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        attn = to_image.attend_projected(to_image.q_proj(queries + query_pe), image_keys, image_values)
        queries = self.norm2(queries + attn)
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        keys = self.norm4(keys + to_tokens.attend_projected(image_queries, to_tokens.k_proj(q), to_tokens.v_proj(queries)))
        return queries, keys

    def image_projections(self, keys: Tensor, key_pe: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The block's projections of the image tokens as they enter it: token -> image keys
        (with position) and values, image -> token queries (with position); (B, L, C') each."""
        keys_pe = keys + key_pe
        return (
            self.cross_attn_token_to_image.k_proj(keys_pe),
            self.cross_attn_token_to_image.v_proj(keys),
            self.cross_attn_image_to_token.q_proj(keys_pe),
        )

    def image_projection_layers(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        """The three layers of `image_projections`, in its order."""
        return (
            self.cross_attn_token_to_image.k_proj,
            self.cross_attn_token_to_image.v_proj,
            self.cross_attn_image_to_token.q_proj,
        )


class TwoWayTransformer(nn.Module):
    """`depth` two-way blocks, then a last token -> image attention."""

    def __init__(
        self,
        embedding_dim: int,
        *,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=i == 0,
                activation=activation,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: Tensor, *, image_pe: Tensor, point_embedding: Tensor) -> tuple[Tensor, Tensor]:
        """Updated tokens (B, T, C) and image tokens (B, L, C), L = h * w.

        image_embedding: (B, C, h, w); image_pe: (B or 1, C, h, w);
        point_embedding: (B, T, C), the output tokens followed by the prompt tokens.
        """
        # layout boundary: maps (B, C, h, w) -> tokens (B, L, C)
        keys = image_embedding.flatten(2).transpose(1, 2)  # (B, L, C)
        key_pe = image_pe.flatten(2).transpose(1, 2)  # (B or 1, L, C)
        return self.forward_tokens(keys, key_pe=key_pe, point_embedding=point_embedding)

    def forward_tokens(
        self, keys: Tensor, *, key_pe: Tensor, point_embedding: Tensor,
        first_projections: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """`forward` on image tokens (B, L, C) and their encoding (B or 1, L, C).

        first_projections: the first block's `image_projections` of `keys`, when known.
        """
        queries = point_embedding
        for i, layer in enumerate(self.layers):
            queries, keys = layer(
                queries, keys, query_pe=point_embedding, key_pe=key_pe,
                image_projections=first_projections if i == 0 else None,
            )  # fmt: skip

        attn = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        queries = self.norm_final_attn(queries + attn)
        return queries, keys
