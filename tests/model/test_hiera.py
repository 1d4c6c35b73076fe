"""Hiera trunk: stage shapes, windowed vs global attention, query pooling, position embedding, names."""

from __future__ import annotations

import pytest
import torch

from masklet.configs import HieraConfig, get_config
from masklet.errors import ConfigError
from masklet.model.hiera import Hiera, MultiScaleBlock, _from_windows, _to_windows


@pytest.fixture
def tiny_hiera() -> HieraConfig:
    # 5 blocks: 0 | 1 (pooled) | 2 (pooled), 3 (global) | 4 (pooled)
    return HieraConfig(
        embed_dim=8, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
        window_spec=(4, 2, 4, 2), window_pos_embed_bkg_spatial_size=(4, 4),
    )


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-zero values everywhere (the position embeddings start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_stage_shapes_and_channels(tiny_hiera: HieraConfig) -> None:
    trunk = Hiera(tiny_hiera).eval()
    assert trunk.channels == tiny_hiera.stage_channels == (8, 16, 32, 64)
    with torch.no_grad():
        outs = trunk(torch.randn(2, 3, 128, 128))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 32, 32), (2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_block_layout_follows_config(tiny_hiera: HieraConfig) -> None:
    trunk = Hiera(tiny_hiera)
    blocks = list(trunk.blocks)
    # the first block of a new stage keeps the previous stage's window and pools its queries
    assert [b.window_size for b in blocks] == [4, 4, 2, 0, 4]
    assert [b.q_stride for b in blocks] == [None, (2, 2), (2, 2), None, (2, 2)]
    assert [b.attn.num_heads for b in blocks] == [1, 2, 4, 4, 8]
    assert [hasattr(b, "proj") for b in blocks] == [False, True, True, False, True]
    no_pool = Hiera(HieraConfig(**{**_fields(tiny_hiera), "q_pool": 1}))
    assert [b.q_stride for b in no_pool.blocks] == [None, (2, 2), None, None, None]


def _fields(cfg: HieraConfig) -> dict:
    return {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}


def test_heads_must_divide_channels() -> None:
    with pytest.raises(ConfigError, match="heads"):
        Hiera(HieraConfig(embed_dim=6, num_heads=4, stages=(1, 1), window_spec=(4, 2), q_pool=1,
                          global_att_blocks=()))


def test_windowed_block_does_not_mix_windows_but_global_block_does() -> None:
    torch.manual_seed(0)
    windowed = MultiScaleBlock(8, 8, num_heads=2, window_size=4).eval()
    global_ = MultiScaleBlock(8, 8, num_heads=2, window_size=0).eval()
    global_.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 8, 8, 8)  # (B, H, W, C): four 4x4 windows
    y = x.clone()
    y[0, 1, 1] += torch.randn(8)  # one token of the top-left window (not a constant: LayerNorm removes it)
    with torch.no_grad():
        dw = (windowed(y) - windowed(x)).abs().amax(-1)[0]  # (H, W)
        dg = (global_(y) - global_(x)).abs().amax(-1)[0]
    assert dw[:4, :4].min() > 0  # the whole window sees the change
    assert dw[4:].max() == 0 and dw[:, 4:].max() == 0  # no other window does
    assert dg.min() > 0  # with global attention every token does


def test_windowed_block_equals_block_on_each_window() -> None:
    torch.manual_seed(1)
    block = MultiScaleBlock(8, 8, num_heads=1, window_size=4).eval()
    full = MultiScaleBlock(8, 8, num_heads=1, window_size=0).eval()
    full.load_state_dict(block.state_dict())
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        out = block(x)
        for r in (0, 4):
            for c in (0, 4):
                torch.testing.assert_close(out[:, r:r + 4, c:c + 4], full(x[:, r:r + 4, c:c + 4]))


def test_pooled_block_halves_resolution_within_windows() -> None:
    torch.manual_seed(2)
    block = MultiScaleBlock(8, 16, num_heads=2, window_size=4, q_stride=(2, 2)).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 5, 6] += torch.randn(8)  # bottom-right window
    with torch.no_grad():
        out_x, out_y = block(x), block(y)
    assert out_x.shape == (1, 4, 4, 16)
    diff = (out_y - out_x).abs().amax(-1)[0]  # (4, 4)
    assert diff[2:, 2:].min() > 0
    assert diff[:2].max() == 0 and diff[:, :2].max() == 0


def test_window_partition_round_trip_with_padding() -> None:
    x = torch.randn(2, 7, 10, 3)
    windows, padded = _to_windows(x, 4)
    assert padded == (8, 12) and windows.shape == (2 * 2 * 3, 4, 4, 3)
    torch.testing.assert_close(windows[1], x[0, 0:4, 4:8])  # row-major window order
    assert windows[-1, 3].abs().max() == 0  # zero padding at the bottom
    torch.testing.assert_close(_from_windows(windows, padded, (7, 10)), x)


def test_window_position_embedding_is_background_plus_tiled_window(tiny_hiera: HieraConfig) -> None:
    trunk = Hiera(tiny_hiera)
    with torch.no_grad():
        trunk.pos_embed.fill_(0.25)  # bicubic resizing keeps a constant
        trunk.pos_embed_window.copy_(torch.randn(1, 8, 4, 4))
    pos = trunk._window_pos_embed((16, 12))  # (1, H, W, C)
    assert pos.shape == (1, 16, 12, 8)
    window = trunk.pos_embed_window[0].permute(1, 2, 0) + 0.25  # (4, 4, C)
    torch.testing.assert_close(pos[0, 4:8, 8:12], window)
    torch.testing.assert_close(pos[0, 12:16, 0:4], window)


def test_output_depends_on_position_embedding(tiny_hiera: HieraConfig) -> None:
    trunk = Hiera(tiny_hiera).eval()
    _randomise(trunk)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = trunk(x)[-1]
        trunk.pos_embed_window.zero_()
        after = trunk(x)[-1]
    assert (before - after).abs().max() > 1e-3


# official `image_encoder.trunk.*` names and shapes of sam2.1_hiera_t (from sam2 1.1.0)
_OFFICIAL_TINY_EXCERPT = {
    "pos_embed": (1, 96, 7, 7),
    "pos_embed_window": (1, 96, 8, 8),
    "patch_embed.proj.weight": (96, 3, 7, 7),
    "patch_embed.proj.bias": (96,),
    "blocks.0.norm1.weight": (96,),
    "blocks.0.attn.qkv.weight": (288, 96),
    "blocks.0.attn.proj.weight": (96, 96),
    "blocks.0.norm2.bias": (96,),
    "blocks.0.mlp.layers.0.weight": (384, 96),
    "blocks.0.mlp.layers.1.weight": (96, 384),
    "blocks.1.attn.qkv.weight": (576, 96),
    "blocks.1.attn.proj.weight": (192, 192),
    "blocks.1.norm2.weight": (192,),
    "blocks.1.proj.weight": (192, 96),
    "blocks.1.proj.bias": (192,),
    "blocks.10.proj.weight": (768, 384),
    "blocks.11.attn.qkv.weight": (2304, 768),
    "blocks.11.mlp.layers.0.weight": (3072, 768),
    "blocks.11.mlp.layers.1.bias": (768,),
}


def test_state_dict_names_match_official_tiny() -> None:
    trunk = Hiera(get_config("sam2.1_hiera_t").hiera)
    shapes = {k: tuple(v.shape) for k, v in trunk.state_dict().items()}
    assert {k: shapes.get(k) for k in _OFFICIAL_TINY_EXCERPT} == _OFFICIAL_TINY_EXCERPT
    assert len(shapes) == 154  # 162 image-encoder keys minus the neck's 8
    assert sorted(k.split(".")[1] for k in shapes if k.endswith(".proj.weight") and "attn" not in k
                  and k.startswith("blocks.")) == ["1", "10", "3"]
