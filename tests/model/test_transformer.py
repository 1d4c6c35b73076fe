"""Two-way transformer: attention against a hand-written reference, layout, broadcasting, names."""

from __future__ import annotations

import math

import pytest
import torch

from masklet.model.transformer import Attention, TwoWayTransformer


def _naive_attention(attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    heads = attn.num_heads
    qp, kp, vp = attn.q_proj(q), attn.k_proj(k), attn.v_proj(v)
    d = qp.shape[-1] // heads
    outs = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        weights = torch.softmax(qp[..., sl] @ kp[..., sl].transpose(1, 2) / math.sqrt(d), dim=-1)
        outs.append(weights @ vp[..., sl])
    return attn.out_proj(torch.cat(outs, dim=-1))


@pytest.mark.parametrize("downsample_rate, kv_in_dim", [(1, None), (2, None), (2, 12)])
def test_attention_equals_naive_multihead(downsample_rate: int, kv_in_dim: int | None) -> None:
    torch.manual_seed(0)
    attn = Attention(32, 4, downsample_rate=downsample_rate, kv_in_dim=kv_in_dim).eval()
    assert attn.q_proj.out_features == 32 // downsample_rate
    q = torch.randn(2, 5, 32)
    kv = torch.randn(2, 7, kv_in_dim or 32)
    v = torch.randn(2, 7, kv_in_dim or 32)
    out = attn(q, kv, v)
    assert out.shape == (2, 5, 32)
    torch.testing.assert_close(out, _naive_attention(attn, q, kv, v), atol=1e-5, rtol=1e-5)


def test_attention_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    attn = Attention(16, 2, dropout=0.5)
    q = torch.randn(1, 4, 16)
    k = torch.randn(1, 9, 16)
    attn.eval()
    torch.testing.assert_close(attn(q, k, k), attn(q, k, k), rtol=0, atol=0)
    attn.train()
    assert not torch.allclose(attn(q, k, k), attn(q, k, k))


def test_attention_rejects_heads_that_do_not_divide() -> None:
    with pytest.raises(ValueError, match="heads"):
        Attention(32, 3)


@pytest.fixture
def transformer() -> TwoWayTransformer:
    torch.manual_seed(0)
    return TwoWayTransformer(32, depth=2, num_heads=2, mlp_dim=64).eval()


def test_shapes_and_pe_broadcast(transformer: TwoWayTransformer) -> None:
    torch.manual_seed(1)
    image = torch.randn(3, 32, 4, 6)
    pe = torch.randn(1, 32, 4, 6)
    tokens = torch.randn(3, 5, 32)
    queries, keys = transformer(image, image_pe=pe, point_embedding=tokens)
    assert queries.shape == (3, 5, 32)
    assert keys.shape == (3, 24, 32)
    # a batch-1 encoding is the same as one repeated per prompt
    q2, k2 = transformer(image, image_pe=pe.expand(3, -1, -1, -1), point_embedding=tokens)
    torch.testing.assert_close(queries, q2, rtol=0, atol=0)
    torch.testing.assert_close(keys, k2, rtol=0, atol=0)


def test_image_tokens_are_row_major_and_order_free(transformer: TwoWayTransformer) -> None:
    # transposing the map (and its encoding) permutes the image tokens only:
    # the queries are unchanged and keys come back in the transposed order
    torch.manual_seed(2)
    image = torch.randn(2, 32, 3, 5)
    pe = torch.randn(1, 32, 3, 5)
    tokens = torch.randn(2, 4, 32)
    queries, keys = transformer(image, image_pe=pe, point_embedding=tokens)
    q_t, k_t = transformer(image.transpose(2, 3), image_pe=pe.transpose(2, 3), point_embedding=tokens)
    torch.testing.assert_close(queries, q_t, atol=1e-5, rtol=1e-5)
    keys_map = keys.transpose(1, 2).reshape(2, 32, 3, 5)
    torch.testing.assert_close(keys_map.transpose(2, 3).flatten(2).transpose(1, 2), k_t, atol=1e-5, rtol=1e-5)


def test_tokens_are_a_set_and_steer_the_image(transformer: TwoWayTransformer) -> None:
    torch.manual_seed(3)
    image, pe, tokens = torch.randn(1, 32, 4, 4), torch.randn(1, 32, 4, 4), torch.randn(1, 3, 32)
    queries, keys = transformer(image, image_pe=pe, point_embedding=tokens)
    # reordering the tokens (which carry their own encoding) reorders the outputs only
    q_flip, k_flip = transformer(image, image_pe=pe, point_embedding=tokens.flip(1))
    torch.testing.assert_close(q_flip, queries.flip(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_flip, keys, atol=1e-5, rtol=1e-5)
    # other tokens change the image tokens; another image changes the tokens
    _, k_other = transformer(image, image_pe=pe, point_embedding=torch.randn(1, 3, 32))
    assert (keys - k_other).abs().max() > 1e-3
    q_other, _ = transformer(image + 1.0, image_pe=pe, point_embedding=tokens)
    assert (queries - q_other).abs().max() > 1e-3


# An excerpt of the official `sam_mask_decoder.transformer.*` names and shapes (width 256).
OFFICIAL_EXCERPT = {
    "layers.0.self_attn.q_proj.weight": (256, 256),
    "layers.0.self_attn.out_proj.bias": (256,),
    "layers.0.norm1.weight": (256,),
    "layers.0.cross_attn_token_to_image.q_proj.weight": (128, 256),
    "layers.0.cross_attn_token_to_image.out_proj.weight": (256, 128),
    "layers.0.mlp.layers.0.weight": (2048, 256),
    "layers.0.mlp.layers.1.weight": (256, 2048),
    "layers.0.norm3.bias": (256,),
    "layers.1.norm4.weight": (256,),
    "layers.1.cross_attn_image_to_token.v_proj.bias": (128,),
    "final_attn_token_to_image.k_proj.weight": (128, 256),
    "final_attn_token_to_image.out_proj.bias": (256,),
    "norm_final_attn.weight": (256,),
    "norm_final_attn.bias": (256,),
}


def test_state_dict_names_equal_official() -> None:
    model = TwoWayTransformer(256, depth=2, num_heads=8, mlp_dim=2048)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in OFFICIAL_EXCERPT.items():
        assert got.get(key) == shape, key
    # per block: 3 attentions x 8 + 4 norms x 2 + mlp 4 = 36; final attention 8 + norm 2
    assert len(got) == 2 * 36 + 10
