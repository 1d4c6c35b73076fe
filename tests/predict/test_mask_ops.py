"""Mask post-processing against the official sam2 1.1.0, bit for bit.

Fixture: tests/data/parity/mask_ops.npz from tools/parity/mask_ops_fixtures.py (the official
functions with a scipy stand-in for their CUDA connected components; tools/parity/README.md).
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
import torch

from masklet.predict.mask_ops import fill_holes_and_sprinkles, remove_small_regions
from masklet.predict.video_step import fill_holes


@pytest.fixture(scope="module")
def ref(data_dir) -> dict[str, np.ndarray]:
    with np.load(data_dir / "parity" / "mask_ops.npz") as z:
        return {k: z[k] for k in z.files}


def _cases(ref: dict[str, np.ndarray], group: str) -> list[str]:
    names = {k.split(".")[1] for k in ref if k.startswith(f"{group}.")}
    return sorted(names - {"modes", "areas"})


def test_ring_around_a_hole_is_a_speck() -> None:
    """Specks are found on the mask before hole filling: the ring goes, its filled hole stays."""
    logits = torch.full((1, 1, 7, 7), -1.0)
    logits[..., 2:5, 2:5] = 1.0
    logits[..., 3, 3] = -1.0
    out = fill_holes_and_sprinkles(logits, max_hole_area=1, max_sprinkle_area=8)
    expected = torch.zeros(1, 1, 7, 7, dtype=torch.bool)
    expected[..., 3, 3] = True
    assert torch.equal(out > 0, expected)
    assert out[0, 0, 3, 3] == 10.0 and out[0, 0, 2, 2] == -10.0


def test_fill_holes_and_sprinkles_matches_official(ref) -> None:
    cases = _cases(ref, "post")
    assert len(cases) >= 15
    failures = []
    for name in cases:
        logits = torch.from_numpy(ref[f"post.{name}.logits_x8"].astype(np.float32) / np.float32(8))
        threshold, hole, sprinkle = ref[f"post.{name}.params"].tolist()
        out = fill_holes_and_sprinkles(
            logits, threshold=threshold, max_hole_area=int(hole), max_sprinkle_area=int(sprinkle)
        ).numpy()
        expected = ref[f"post.{name}.out"]
        assert out.shape == expected.shape and out.dtype == expected.dtype
        if not np.array_equal(out, expected):
            failures.append(f"{name}: {int((out != expected).sum())} of {out.size} values differ")
    assert not failures, failures


def test_video_fill_holes_matches_official(ref) -> None:
    for name in _cases(ref, "video"):
        logits = torch.from_numpy(ref[f"video.{name}.logits"])
        out = fill_holes(logits, int(ref[f"video.{name}.max_area"])).numpy()
        np.testing.assert_array_equal(out, ref[f"video.{name}.out"], err_msg=name)


def test_remove_small_regions_matches_official(ref) -> None:
    modes, areas = ref["regions.modes"].tolist(), ref["regions.areas"].tolist()
    cases = _cases(ref, "regions")
    assert len(cases) >= 6
    for name in cases:
        mask = ref[f"regions.{name}.mask"]
        for (i, mode), (j, area) in product(enumerate(modes), enumerate(areas)):
            out, changed = remove_small_regions(mask, area, mode=mode)
            where = f"{name}, {mode}, area {area:g}"
            np.testing.assert_array_equal(out, ref[f"regions.{name}.out"][i, j], err_msg=where)
            assert changed == bool(ref[f"regions.{name}.changed"][i, j]), where
