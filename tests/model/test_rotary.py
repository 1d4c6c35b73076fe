"""2D axial rotary encoding: against a naive per-position rotation, norms, relative positions, keys."""

from __future__ import annotations

import math

import pytest
import torch

from masklet.model.rotary import apply_rope, apply_rope_qk, axial_rope_tables


def _naive_rope(x: torch.Tensor, end_x: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotate x (L, D) token by token in float64: pair i turns by col * f_i (first half) or row * f_i."""
    length, dim = x.shape
    out = torch.empty(length, dim, dtype=torch.float64)
    for t in range(length):
        col, row = t % end_x, t // end_x
        for i in range(dim // 2):
            freq = theta ** (-4 * (i % (dim // 4)) / dim)
            angle = (col if i < dim // 4 else row) * freq
            a, b = x[t, 2 * i].item(), x[t, 2 * i + 1].item()
            out[t, 2 * i] = a * math.cos(angle) - b * math.sin(angle)
            out[t, 2 * i + 1] = a * math.sin(angle) + b * math.cos(angle)
    return out


@pytest.mark.parametrize(("dim", "end_x", "end_y"), [(16, 4, 4), (8, 5, 3)])
def test_equals_naive_rotation(dim: int, end_x: int, end_y: int) -> None:
    x = torch.randn(end_x * end_y, dim, generator=torch.Generator().manual_seed(0))
    cos, sin = axial_rope_tables(dim, end_x, end_y)
    assert cos.shape == sin.shape == (end_x * end_y, dim // 2)
    expected = _naive_rope(x, end_x)
    torch.testing.assert_close(apply_rope(x, cos, sin).double(), expected, atol=1e-5, rtol=0)
    # token 0 sits at (0, 0): unrotated; the rest move
    torch.testing.assert_close(apply_rope(x, cos, sin)[0], x[0])
    assert (apply_rope(x, cos, sin)[1:] - x[1:]).abs().max() > 0.1


def test_preserves_pair_norms() -> None:
    x = 5 * torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))  # (B, heads, L, D)
    cos, sin = axial_rope_tables(32, 8, 8)
    y = apply_rope(x, cos, sin)
    torch.testing.assert_close(y.unflatten(-1, (-1, 2)).norm(dim=-1), x.unflatten(-1, (-1, 2)).norm(dim=-1))


def test_dot_products_depend_on_relative_position_only() -> None:
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(32, generator=g), torch.randn(32, generator=g)
    cos, sin = axial_rope_tables(32, 8, 8)

    def score(q_at: tuple[int, int], k_at: tuple[int, int]) -> float:  # positions as (col, row)
        qi, ki = q_at[1] * 8 + q_at[0], k_at[1] * 8 + k_at[0]
        return float(apply_rope(q, cos[qi], sin[qi]) @ apply_rope(k, cos[ki], sin[ki]))

    assert score((1, 2), (3, 1)) == pytest.approx(score((4, 5), (6, 4)), abs=1e-4)
    assert abs(score((1, 2), (3, 1)) - score((1, 2), (1, 3))) > 1e-2


def test_repeated_key_frequencies() -> None:
    g = torch.Generator().manual_seed(3)
    cos, sin = axial_rope_tables(16, 4, 4)
    q = torch.randn(2, 1, 16, 16, generator=g)
    frames = [torch.randn(2, 1, 16, 16, generator=g) for _ in range(3)]
    q_out, k_out = apply_rope_qk(q, torch.cat(frames, dim=-2), cos, sin, repeat_freqs_k=True)
    torch.testing.assert_close(q_out, apply_rope(q, cos, sin))
    # every frame of keys turns like the query grid
    for i, frame in enumerate(frames):
        torch.testing.assert_close(k_out[..., 16 * i : 16 * (i + 1), :], apply_rope(frame, cos, sin))


def test_zero_length_keys_are_returned_unchanged() -> None:
    cos, sin = axial_rope_tables(16, 4, 4)
    q, k = torch.randn(1, 2, 16, 16), torch.randn(1, 2, 0, 16)
    q_out, k_out = apply_rope_qk(q, k, cos, sin, repeat_freqs_k=True)
    assert k_out is k
    torch.testing.assert_close(q_out, apply_rope(q, cos, sin))


def test_key_length_errors() -> None:
    cos, sin = axial_rope_tables(16, 4, 4)
    q = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match="whole number"):
        apply_rope_qk(q, torch.randn(1, 1, 24, 16), cos, sin, repeat_freqs_k=True)
    with pytest.raises(ValueError, match="equal length"):
        apply_rope_qk(q, torch.randn(1, 1, 32, 16), cos, sin)
    with pytest.raises(ValueError, match="divisible by 4"):
        axial_rope_tables(18, 4, 4)


def test_low_precision_input_keeps_its_dtype() -> None:
    cos, sin = axial_rope_tables(16, 4, 4)
    x = torch.randn(16, 16)
    y = apply_rope(x.bfloat16(), cos, sin)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), apply_rope(x.bfloat16().float(), cos, sin).bfloat16().float())
