"""Memory attention: parity with the official module, pointer tokens, grid sizes, bf16 memory, names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.configs import MemoryAttentionConfig, get_config
from masklet.model.memory_attention import MemoryAttention

DATA = Path(__file__).resolve().parents[1] / "data" / "parity"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "parity"))
import seeded_weights as sw  # noqa: E402

# the sizes tools/parity/memory_fixtures.py records the official module at
TINY = MemoryAttentionConfig(
    d_model=32, num_layers=2, num_heads=2, dim_feedforward=64, kv_in_dim=16, feat_sizes=(8, 8)
)
ATTN_CASES = ("frames3_ptr8_b2", "frames2_noptr", "grid4_frames2_ptr4", "bf16_frames1_ptr4", "ptr_only")


@pytest.fixture(scope="module")
def model() -> MemoryAttention:
    m = MemoryAttention(TINY).eval()
    shapes = {"memory_attention." + k: tuple(v.shape) for k, v in m.state_dict().items()}
    sd = sw.seeded_state_dict(shapes, sw.PARITY_SEED)
    with np.load(DATA / "memory_modules.npz") as f:
        recorded = str(f["attn.weights_digest"])
    if sw.state_dict_digest(sd) != recorded:
        pytest.fail(
            "the seeded weight rule changed since memory_modules.npz was recorded; "
            "regenerate it with /work/refenv/bin/python tools/parity/memory_fixtures.py"
        )
    m.load_state_dict({k.removeprefix("memory_attention."): v for k, v in sd.items()}, strict=True)
    return m


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(DATA / "memory_modules.npz") as f:
        return dict(f)


def _inputs(
    b: int = 1, side: int = 8, frames: int = 2, ptrs: int = 4, seed: int = 0
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    length, mem_len = side * side, frames * side * side + ptrs
    return {
        "curr": torch.randn(b, length, 32, generator=g),
        "curr_pos": torch.randn(b, length, 32, generator=g),
        "memory": torch.randn(b, mem_len, 16, generator=g),
        "memory_pos": torch.randn(b, mem_len, 16, generator=g),
    }


@pytest.mark.parametrize("case", ATTN_CASES)
def test_matches_official(model: MemoryAttention, fixture: dict[str, np.ndarray], case: str) -> None:
    t = {
        k: torch.from_numpy(fixture[f"attn.{case}.{k}"]) for k in ("curr", "curr_pos", "memory", "memory_pos")
    }
    ptrs = int(fixture[f"attn.{case}.num_obj_ptr_tokens"])
    with torch.no_grad():
        out = model(**t, num_obj_ptr_tokens=ptrs)
    torch.testing.assert_close(out, torch.from_numpy(fixture[f"attn.{case}.out"]), atol=1e-5, rtol=0)


def test_bf16_memory_is_promoted(model: MemoryAttention, fixture: dict[str, np.ndarray]) -> None:
    case = "bf16_frames1_ptr4"
    t = {
        k: torch.from_numpy(fixture[f"attn.{case}.{k}"]) for k in ("curr", "curr_pos", "memory", "memory_pos")
    }
    t["memory"], t["memory_pos"] = (
        t["memory"].bfloat16(),
        t["memory_pos"].bfloat16(),
    )  # exact: already rounded
    with torch.no_grad():
        out = model(**t, num_obj_ptr_tokens=4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.from_numpy(fixture[f"attn.{case}.out"]), atol=1e-5, rtol=0)


def test_output_shape_and_dependence_on_memory(model: MemoryAttention) -> None:
    x = _inputs(b=2)
    with torch.no_grad():
        out = model(**x, num_obj_ptr_tokens=4)
        again = model(**x, num_obj_ptr_tokens=4)
        other = model(**{**x, "memory": torch.randn_like(x["memory"])}, num_obj_ptr_tokens=4)
    assert out.shape == (2, 64, 32)
    torch.testing.assert_close(out, again, rtol=0, atol=0)  # eval: dropout off
    assert (out - other).abs().mean() > 0.05
    # final LayerNorm (seeded affine weights ~1, biases ~0): about zero mean, unit spread per token
    assert out.mean(-1).abs().max() < 0.1


def test_batch_items_are_independent(model: MemoryAttention) -> None:
    x = _inputs(b=2, seed=1)
    with torch.no_grad():
        both = model(**x, num_obj_ptr_tokens=4)
        second = model(**{k: v[1:] for k, v in x.items()}, num_obj_ptr_tokens=4)
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=0)


def test_object_pointer_tokens_are_not_rotated(model: MemoryAttention) -> None:
    x = _inputs(frames=2, ptrs=4, seed=2)
    spatial = 2 * 64
    pointer_perm = torch.cat([torch.arange(spatial), spatial + torch.tensor([2, 0, 3, 1])])
    spatial_perm = torch.cat(
        [
            torch.randperm(spatial, generator=torch.Generator().manual_seed(0)),
            torch.arange(spatial, spatial + 4),
        ]
    )

    def permuted(perm: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**x, "memory": x["memory"][:, perm], "memory_pos": x["memory_pos"][:, perm]}

    with torch.no_grad():
        out = model(**x, num_obj_ptr_tokens=4)
        moved_pointers = model(**permuted(pointer_perm), num_obj_ptr_tokens=4)
        moved_spatial = model(**permuted(spatial_perm), num_obj_ptr_tokens=4)
    torch.testing.assert_close(moved_pointers, out, atol=1e-5, rtol=0)  # position among keys is irrelevant
    assert (moved_spatial - out).abs().max() > 1e-2  # spatial keys carry their grid position


def test_other_square_grid_recomputes_tables(model: MemoryAttention) -> None:
    small = MemoryAttention(MemoryAttentionConfig(**{**_fields(TINY), "feat_sizes": (4, 4)})).eval()
    small.load_state_dict(model.state_dict(), strict=True)
    x = _inputs(side=4, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(model(**x, num_obj_ptr_tokens=4), small(**x, num_obj_ptr_tokens=4))
    bad = _inputs(side=4, seed=3)
    bad["curr"], bad["curr_pos"] = bad["curr"][:, :12], bad["curr_pos"][:, :12]  # 12 tokens: no square grid
    with pytest.raises(ValueError, match="square grid"), torch.no_grad():
        model(**bad, num_obj_ptr_tokens=4)


def test_non_square_configured_grid() -> None:
    m = MemoryAttention(MemoryAttentionConfig(**{**_fields(TINY), "feat_sizes": (8, 4)})).eval()
    x = _inputs(side=4, seed=4)
    x["curr"], x["curr_pos"] = torch.randn(1, 32, 32), torch.randn(1, 32, 32)
    x["memory"], x["memory_pos"] = torch.randn(1, 2 * 32 + 4, 16), torch.randn(1, 2 * 32 + 4, 16)
    with torch.no_grad():
        assert m(**x, num_obj_ptr_tokens=4).shape == (1, 32, 32)


def _fields(cfg: MemoryAttentionConfig) -> dict[str, object]:
    return {f: getattr(cfg, f) for f in cfg.__slots__}


# excerpt of sam2.1_hiera_t's state dict (sam2 1.1.0), with the "memory_attention." prefix removed
OFFICIAL_EXCERPT = {
    "layers.0.self_attn.q_proj.weight": (256, 256),
    "layers.0.self_attn.out_proj.bias": (256,),
    "layers.1.cross_attn_image.k_proj.weight": (256, 64),
    "layers.1.cross_attn_image.v_proj.weight": (256, 64),
    "layers.2.cross_attn_image.out_proj.weight": (256, 256),
    "layers.3.linear1.weight": (2048, 256),
    "layers.3.linear2.bias": (256,),
    "layers.3.norm3.weight": (256,),
    "norm.bias": (256,),
}


def test_parameter_names_equal_official() -> None:
    ours = {
        k: tuple(v.shape)
        for k, v in MemoryAttention(get_config("sam2.1_hiera_t").memory_attention).state_dict().items()
    }
    for key, shape in OFFICIAL_EXCERPT.items():
        assert ours[key] == shape
    official = json.loads((DATA / "key_shapes.json").read_text())
    for name in ("sam2_hiera_t", "sam2.1_hiera_l"):
        expected = {
            k.removeprefix("memory_attention."): tuple(s)
            for k, s in official[name]
            if k.startswith("memory_attention.")
        }
        assert ours == expected
