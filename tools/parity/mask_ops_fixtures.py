"""Record the official sam2 1.1.0 mask post-processing on small logit maps, for parity tests.

Runs only in the oracle venv (sam2==1.1.0, scipy, opencv-python-headless), from the repository root:
    /work/refenv/bin/python tools/parity/mask_ops_fixtures.py

Three official functions, on hand-made and seeded random inputs:
- `SAM2Transforms.postprocess_masks` (sam2/utils/transforms.py): the image predictor's hole filling
  and speck removal on low-res logits (max_hole_area, max_sprinkle_area, mask_threshold). Called
  with orig_hw equal to the input size, where its bilinear resize is the identity (checked).
- `fill_holes_in_mask_scores` (sam2/utils/misc.py): the video predictor's hole filling.
- `remove_small_regions` (sam2/utils/amg.py, cv2 connected components).

The first two need the official CUDA extension (`get_connected_components`); on CPU they skip the
work with a warning. As in video_fixtures.py, `sam2.utils.misc.get_connected_components` is
replaced by a scipy stand-in with the extension's documented semantics (8-connectivity, per-pixel
labels and component areas), so the recorded outputs are what a GPU computes. The script fails if
the official code still warns, i.e. if the stand-in was not used.

Writes tests/data/parity/mask_ops.npz; tools/parity/README.md documents its keys.
"""

from __future__ import annotations

import itertools
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_components import connected_components  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "parity" / "mask_ops.npz"
SEED = 20


def quantized(x: np.ndarray) -> np.ndarray:
    """Logits on a 1/8 grid in [-16, 15.875]: exact in float32, and some pixels sit on a threshold."""
    return (np.clip(np.round(x * 8), -128, 127) / 8).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], cell: int, scale: float) -> np.ndarray:
    """Blobs of about `cell` pixels (nearest-upsampled coarse noise) plus fine noise: specks and holes."""
    *lead, h, w = shape
    coarse = rng.normal(size=(*lead, -(-h // cell), -(-w // cell)))
    blobs = coarse.repeat(cell, axis=-2).repeat(cell, axis=-1)[..., :h, :w]
    return quantized(scale * (blobs + 0.6 * rng.normal(size=shape)))


def hand_made() -> dict[str, tuple[np.ndarray, float, int, int]]:
    """name -> (logits (N, M, H, W), mask_threshold, max_hole_area, max_sprinkle_area)."""
    cases: dict[str, tuple[np.ndarray, float, int, int]] = {}

    ring = np.full((7, 7), -1.0, dtype=np.float32)
    ring[2:5, 2:5] = 1.0
    ring[3, 3] = -1.0  # an 8-pixel ring around a 1-pixel hole
    cases["ring"] = (ring[None, None], 0.0, 1, 8)  # the ring is a speck of the unfilled mask
    cases["ring_kept"] = (ring[None, None], 0.0, 1, 7)

    nested = np.full((9, 9), -2.0, dtype=np.float32)
    nested[2:7, 2:7] = 2.0
    nested[3:6, 3:6] = -2.0  # an 8-pixel ring-shaped hole ...
    nested[4, 4] = 2.0  # ... around a 1-pixel speck that touches it on all sides
    cases["speck_in_hole"] = (nested[None, None], 0.0, 8, 1)
    cases["speck_in_hole_big_areas"] = (nested[None, None], 0.0, 8, 16)

    ties = np.full((6, 8), -1.0, dtype=np.float32)
    ties[1:4, 1:4] = 0.5  # exactly at the threshold: background
    ties[2, 2] = 0.625
    ties[4, 6] = 0.5
    ties[0, 7] = 0.625
    cases["threshold_ties"] = (ties[None, None], 0.5, 4, 1)

    diag = np.full((6, 6), -1.0, dtype=np.float32)
    diag[1, 1] = diag[2, 2] = 1.0  # one 8-connected speck of 2
    diag[4, 4] = 1.0  # a speck of 1
    diag[3:6, 0:3] = 1.0
    diag[4, 1] = -1.0  # a hole of 1 ...
    diag[5, 3] = -1.0  # ... and a background pixel touching the outside diagonally
    cases["diagonal"] = (diag[None, None], 0.0, 1, 1)

    edge = np.full((5, 6), 3.0, dtype=np.float32)
    edge[0, 2:4] = -3.0  # a background region on the image border, enclosed by foreground
    edge[4, 0] = -3.0
    cases["border_holes"] = (edge[None, None], 0.0, 2, 0)

    cases["all_background_filled"] = (np.full((1, 2, 4, 5), -1.0, dtype=np.float32), 0.0, 20, 20)
    cases["all_foreground_removed"] = (np.full((2, 1, 4, 5), 1.0, dtype=np.float32), 0.0, 20, 20)
    cases["nothing_to_do"] = (ring[None, None], 0.0, 0, 0)
    return cases


def random_cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, float, int, int]]:
    return {
        "random_b2m3": (smooth_noise(rng, (2, 3, 32, 32), 4, 1.0), 0.0, 8, 8),
        "random_noise": (quantized(rng.normal(size=(1, 3, 24, 24))), 0.0, 3, 5),
        "random_holes_only": (smooth_noise(rng, (3, 1, 40, 40), 5, 1.0), 0.5, 20, 0),
        "random_specks_only": (smooth_noise(rng, (1, 2, 40, 40), 3, 1.0), -0.25, 0, 12),
        "random_amg_like": (smooth_noise(rng, (1, 3, 48, 48), 6, 8.0), 8.0, 100, 100),
        "random_b4m1_large_areas": (smooth_noise(rng, (4, 1, 32, 32), 8, 1.0), 0.0, 60, 30),
    }


def region_masks(rng: np.random.Generator) -> dict[str, np.ndarray]:
    masks = {
        "blobs": smooth_noise(rng, (48, 48), 4, 1.0) > 0,
        "noise": rng.random((40, 40)) < 0.45,
        "sparse": rng.random((32, 32)) < 0.08,
        "empty": np.zeros((12, 10), dtype=bool),
        "full": np.ones((12, 10), dtype=bool),
    }
    ties = np.zeros((10, 12), dtype=bool)
    ties[1:3, 1:3] = ties[6:8, 8:10] = True  # two islands of the same size: the first is kept
    masks["tied_islands"] = ties
    return masks


def main() -> int:
    torch.set_num_threads(2)
    from importlib.metadata import version

    import sam2.utils.misc as misc

    misc.get_connected_components = connected_components
    from sam2.utils.amg import remove_small_regions
    from sam2.utils.transforms import SAM2Transforms

    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {"sam2_version": np.array(version("sam2"))}

    changed_pixels = {}
    for name, (logits, thr, hole, sprinkle) in {**hand_made(), **random_cases(rng)}.items():
        transforms = SAM2Transforms(1024, mask_threshold=thr, max_hole_area=hole, max_sprinkle_area=sprinkle)
        x = torch.from_numpy(logits)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # a skipped post-processing step only warns
            out = transforms.postprocess_masks(x, x.shape[-2:]).numpy()
        identity = SAM2Transforms(1024, mask_threshold=thr).postprocess_masks(x, x.shape[-2:]).numpy()
        assert np.array_equal(identity, logits), "the same-size resize is not the identity"
        arrays[f"post.{name}.logits_x8"] = (logits * 8).astype(np.int8)
        assert np.array_equal(arrays[f"post.{name}.logits_x8"] / np.float32(8), logits)
        arrays[f"post.{name}.params"] = np.array([thr, hole, sprinkle], dtype=np.float64)
        arrays[f"post.{name}.out"] = out
        changed_pixels[name] = int((out != logits).sum())
    print("postprocess_masks, pixels changed per case:", changed_pixels)
    ring_cover = int((arrays["post.ring.out"] > 0).sum())
    assert ring_cover == 1, f"ring case keeps {ring_cover} pixels"
    for name in ("random_b2m3", "random_noise", "random_amg_like", "speck_in_hole"):
        assert changed_pixels[name] > 0, f"{name}: nothing changed"

    for name, (logits, max_area) in {
        "random_b2": (smooth_noise(rng, (2, 1, 32, 32), 4, 1.0), 8),
        "noise": (quantized(rng.normal(size=(3, 1, 20, 20))), 3),
        "ring": (hand_made()["ring"][0], 1),
        "absent_object": (np.full((1, 1, 2, 3), -1024.0, dtype=np.float32), 8),
    }.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            out = misc.fill_holes_in_mask_scores(torch.from_numpy(logits), max_area).numpy()
        arrays[f"video.{name}.logits"] = logits  # float32: includes -1024
        arrays[f"video.{name}.max_area"] = np.array(max_area)
        arrays[f"video.{name}.out"] = out

    modes, areas = ("holes", "islands"), (1.0, 3.0, 10.0, 40.0, 1e9)
    arrays["regions.modes"], arrays["regions.areas"] = np.array(modes), np.array(areas)
    num_changed = 0
    for name, mask in region_masks(rng).items():
        outs = np.zeros((len(modes), len(areas), *mask.shape), dtype=bool)
        changed = np.zeros((len(modes), len(areas)), dtype=bool)
        for (i, mode), (j, area) in itertools.product(enumerate(modes), enumerate(areas)):
            out, changed[i, j] = remove_small_regions(mask, area, mode)
            outs[i, j] = out
        arrays[f"regions.{name}.mask"], arrays[f"regions.{name}.out"] = mask, outs
        arrays[f"regions.{name}.changed"] = changed
        num_changed += int(changed.sum())
    print(f"remove_small_regions: {num_changed} calls of {len(modes) * len(areas) * 6} changed the mask")

    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT.relative_to(REPO)}: {OUT.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
