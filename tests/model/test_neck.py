"""FPN neck and image encoder: top-down fusion, scalp, shapes, configuration checks, names."""

from __future__ import annotations

import pytest
import torch

from masklet.configs import HieraConfig, NeckConfig, get_config
from masklet.errors import ConfigError
from masklet.model.hiera import Hiera
from masklet.model.neck import EncoderOutput, FpnNeck, ImageEncoder
from masklet.model.positional import PositionEmbeddingSine


@pytest.fixture
def tiny_hiera() -> HieraConfig:
    return HieraConfig(
        embed_dim=8, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
        window_spec=(4, 2, 4, 2), window_pos_embed_bkg_spatial_size=(4, 4),
    )


@pytest.fixture
def tiny_neck() -> NeckConfig:
    return NeckConfig(d_model=16)


def _features(channels: tuple[int, ...], side: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, c, side >> i, side >> i, generator=g) for i, c in enumerate(channels)]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@pytest.mark.parametrize("fuse_type", ["sum", "avg"])
def test_top_down_fusion_only_on_chosen_levels(fuse_type: str) -> None:
    channels = (4, 8, 12, 16)  # highest resolution first
    neck = FpnNeck(NeckConfig(d_model=8, fuse_type=fuse_type), backbone_channels=channels).eval()
    assert [tuple(c.conv.weight.shape) for c in neck.convs] == [(8, 16, 1, 1), (8, 12, 1, 1), (8, 8, 1, 1),
                                                                 (8, 4, 1, 1)]
    feats = _features(channels)
    with torch.no_grad():
        fused, pos = neck(feats)
        lateral = [neck.convs[3 - i](f) for i, f in enumerate(feats)]
    combine = (lambda a, b: (a + b) / 2) if fuse_type == "avg" else (lambda a, b: a + b)
    expected3 = lateral[3]
    expected2 = combine(lateral[2], _up2(expected3))
    torch.testing.assert_close(fused[3], expected3)
    torch.testing.assert_close(fused[2], expected2)
    torch.testing.assert_close(fused[1], lateral[1])  # levels 0 and 1: no top-down path by default
    torch.testing.assert_close(fused[0], lateral[0])
    sine = PositionEmbeddingSine(8)
    for f, p in zip(fused, pos, strict=True):
        assert p.shape == f.shape
        torch.testing.assert_close(p[1], sine.grid(f.shape[-2], f.shape[-1]))


def test_top_down_on_all_levels() -> None:
    channels = (4, 8, 12)
    neck = FpnNeck(NeckConfig(d_model=8, fpn_top_down_levels=(0, 1, 2)), backbone_channels=channels).eval()
    feats = _features(channels)
    with torch.no_grad():
        fused, _ = neck(feats)
        lateral0 = neck.convs[2](feats[0])
    torch.testing.assert_close(fused[0], lateral0 + _up2(fused[1]))


def test_neck_rejects_levels_the_trunk_lacks() -> None:
    with pytest.raises(ConfigError, match="fpn_top_down_levels"):
        FpnNeck(NeckConfig(d_model=8), backbone_channels=(4, 8, 16))  # default levels (2, 3)


def test_image_encoder_shapes(tiny_hiera: HieraConfig, tiny_neck: NeckConfig) -> None:
    enc = ImageEncoder(tiny_hiera, tiny_neck).eval()
    with torch.no_grad():
        out = enc(torch.randn(2, 3, 128, 128))
    assert isinstance(out, EncoderOutput)
    assert [tuple(f.shape) for f in out.backbone_fpn] == [(2, 16, 32, 32), (2, 16, 16, 16), (2, 16, 8, 8)]
    assert [tuple(p.shape) for p in out.vision_pos_enc] == [(2, 16, 32, 32), (2, 16, 16, 16), (2, 16, 8, 8)]
    assert out.vision_features is out.backbone_fpn[-1]
    with pytest.raises(AttributeError):
        out.backbone_fpn = ()  # frozen


def test_scalp_drops_coarsest_levels_but_they_still_feed_top_down(tiny_hiera: HieraConfig) -> None:
    full = ImageEncoder(tiny_hiera, NeckConfig(d_model=16, scalp=0)).eval()
    scalped = ImageEncoder(tiny_hiera, NeckConfig(d_model=16, scalp=1)).eval()
    scalped.load_state_dict(full.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = full(x), scalped(x)
    assert len(a.backbone_fpn) == 4 and len(b.backbone_fpn) == 3
    for fa, fb in zip(a.backbone_fpn, b.backbone_fpn, strict=False):
        torch.testing.assert_close(fa, fb)


def test_image_encoder_config_checks(tiny_hiera: HieraConfig, tiny_neck: NeckConfig,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="scalp"):
        ImageEncoder(tiny_hiera, NeckConfig(d_model=16, scalp=4))
    three_stages = HieraConfig(embed_dim=8, stages=(1, 1, 1), window_spec=(4, 2, 2), q_pool=2,
                               global_att_blocks=(), window_pos_embed_bkg_spatial_size=(4, 4))
    with pytest.raises(ConfigError, match="fpn_top_down_levels"):
        ImageEncoder(three_stages, tiny_neck)
    monkeypatch.setattr(Hiera, "channels", property(lambda self: (8, 16, 32, 32)))
    with pytest.raises(ConfigError, match=r"\(8, 16, 32, 32\).*\(8, 16, 32, 64\)"):
        ImageEncoder(tiny_hiera, tiny_neck)


def test_state_dict_names_match_official_tiny() -> None:
    cfg = get_config("sam2.1_hiera_t")
    enc = ImageEncoder(cfg.hiera, cfg.neck)
    shapes = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    # official `image_encoder.*` names of sam2.1_hiera_t (sam2 1.1.0); convs.0 is the coarsest level
    excerpt = {
        "trunk.pos_embed": (1, 96, 7, 7),
        "trunk.blocks.1.proj.weight": (192, 96),
        "neck.convs.0.conv.weight": (256, 768, 1, 1),
        "neck.convs.0.conv.bias": (256,),
        "neck.convs.1.conv.weight": (256, 384, 1, 1),
        "neck.convs.2.conv.weight": (256, 192, 1, 1),
        "neck.convs.3.conv.weight": (256, 96, 1, 1),
        "neck.convs.3.conv.bias": (256,),
    }
    assert {k: shapes.get(k) for k in excerpt} == excerpt
    assert len(shapes) == 162
    assert sum(k.startswith("neck.") for k in shapes) == 8
