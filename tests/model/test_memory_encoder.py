"""Memory encoder: parity with the official module, shapes, mask sigmoid switch, names, config checks."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.configs import MemoryEncoderConfig, get_config
from masklet.errors import ConfigError
from masklet.model.memory_encoder import CXBlock, MaskDownSampler, MemoryEncoder, MemoryEncoderOutput
from masklet.model.positional import PositionEmbeddingSine

DATA = Path(__file__).resolve().parents[1] / "data" / "parity"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "parity"))
import seeded_weights as sw  # noqa: E402

# the sizes tools/parity/memory_fixtures.py records the official module at
TINY = MemoryEncoderConfig(in_dim=32, out_dim=16)


@pytest.fixture(scope="module")
def encoder() -> MemoryEncoder:
    m = MemoryEncoder(TINY).eval()
    shapes = {"memory_encoder." + k: tuple(v.shape) for k, v in m.state_dict().items()}
    sd = sw.seeded_state_dict(shapes, sw.PARITY_SEED)
    with np.load(DATA / "memory_modules.npz") as f:
        recorded = str(f["enc.weights_digest"])
    if sw.state_dict_digest(sd) != recorded:
        pytest.fail(
            "the seeded weight rule changed since memory_modules.npz was recorded; "
            "regenerate it with /work/refenv/bin/python tools/parity/memory_fixtures.py"
        )
    m.load_state_dict({k.removeprefix("memory_encoder."): v for k, v in sd.items()}, strict=True)
    return m


@pytest.mark.parametrize("case", ["logits_b2", "binary", "wide"])
def test_matches_official(encoder: MemoryEncoder, case: str) -> None:
    with np.load(DATA / "memory_modules.npz") as f:
        a = {k.split(".")[-1]: torch.from_numpy(f[k]) for k in f.files if k.startswith(f"enc.{case}.")}
    with torch.no_grad():
        out = encoder(a["pix_feat"], a["masks"], skip_mask_sigmoid=bool(a["skip_mask_sigmoid"]))
    torch.testing.assert_close(out.vision_features, a["features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.vision_pos_enc, a["pos"], atol=1e-6, rtol=0)


def test_shapes_and_position_encoding(encoder: MemoryEncoder) -> None:
    g = torch.Generator().manual_seed(0)
    pix_feat, masks = torch.randn(2, 32, 4, 6, generator=g), torch.randn(2, 1, 64, 96, generator=g)
    with torch.no_grad():
        out = encoder(pix_feat, masks)
    assert isinstance(out, MemoryEncoderOutput)
    assert out.vision_features.shape == out.vision_pos_enc.shape == (2, 16, 4, 6)
    torch.testing.assert_close(out.vision_pos_enc[1], PositionEmbeddingSine(16).grid(4, 6))
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.vision_features = out.vision_pos_enc  # type: ignore[misc]


def test_skip_mask_sigmoid(encoder: MemoryEncoder) -> None:
    g = torch.Generator().manual_seed(1)
    pix_feat, logits = torch.randn(1, 32, 4, 4, generator=g), 4 * torch.randn(1, 1, 64, 64, generator=g)
    with torch.no_grad():
        from_logits = encoder(pix_feat, logits).vision_features
        from_prob = encoder(pix_feat, torch.sigmoid(logits), skip_mask_sigmoid=True).vision_features
        raw = encoder(pix_feat, logits, skip_mask_sigmoid=True).vision_features
    torch.testing.assert_close(from_logits, from_prob)
    assert (raw - from_logits).abs().max() > 1e-2


def test_mask_changes_memory(encoder: MemoryEncoder) -> None:
    pix_feat = torch.randn(1, 32, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        empty = encoder(pix_feat, torch.zeros(1, 1, 64, 64), skip_mask_sigmoid=True).vision_features
        full = encoder(pix_feat, torch.ones(1, 1, 64, 64), skip_mask_sigmoid=True).vision_features
    assert (full - empty).abs().mean() > 0.05


def test_downsampler_layout_and_stride_check() -> None:
    down = MaskDownSampler(32, kernel_size=3, stride=2, padding=1, total_stride=16)
    convs = [m for m in down.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 16, 64, 256, 32]
    assert down(torch.zeros(1, 1, 64, 32)).shape == (1, 32, 4, 2)
    with pytest.raises(ConfigError, match="power"):
        MaskDownSampler(32, kernel_size=3, stride=2, padding=1, total_stride=12)


def test_layer_scale_and_identity_out_proj() -> None:
    assert CXBlock(8, layer_scale_init_value=0.0).gamma is None
    same_width = MemoryEncoder(MemoryEncoderConfig(in_dim=32, out_dim=32))
    assert not any(k.startswith("out_proj.") for k in same_width.state_dict())


# excerpt of sam2.1_hiera_t's state dict (sam2 1.1.0), with the "memory_encoder." prefix removed
OFFICIAL_EXCERPT = {
    "mask_downsampler.encoder.0.weight": (4, 1, 3, 3),
    "mask_downsampler.encoder.1.bias": (4,),
    "mask_downsampler.encoder.9.weight": (256, 64, 3, 3),
    "mask_downsampler.encoder.12.weight": (256, 256, 1, 1),
    "pix_feat_proj.weight": (256, 256, 1, 1),
    "fuser.layers.0.gamma": (256,),
    "fuser.layers.1.dwconv.weight": (256, 1, 7, 7),
    "fuser.layers.1.norm.weight": (256,),
    "fuser.layers.1.pwconv1.weight": (1024, 256),
    "fuser.layers.1.pwconv2.bias": (256,),
    "out_proj.weight": (64, 256, 1, 1),
}


def test_parameter_names_equal_official() -> None:
    ours = {
        k: tuple(v.shape)
        for k, v in MemoryEncoder(get_config("sam2.1_hiera_t").memory_encoder).state_dict().items()
    }
    for key, shape in OFFICIAL_EXCERPT.items():
        assert ours[key] == shape
    official = json.loads((DATA / "key_shapes.json").read_text())
    for name in ("sam2_hiera_t", "sam2.1_hiera_l"):
        expected = {
            k.removeprefix("memory_encoder."): tuple(s)
            for k, s in official[name]
            if k.startswith("memory_encoder.")
        }
        assert ours == expected
