"""CPU stand-in for the official CUDA connected components, shared by the fixture scripts.

sam2 1.1.0 fills holes and removes specks with `sam2.utils.misc.get_connected_components`, a CUDA
extension; on CPU the official code skips that work with a warning. The fixture scripts replace
the function by `connected_components` below, which has the extension's documented semantics
(8-connectivity; per-pixel component labels and component areas, 0 for the background), so what
they record is what a GPU computes.
"""

from __future__ import annotations

import numpy as np
import torch


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) mask -> (labels, areas), each (N, 1, H, W) int32 on the mask's device."""
    from scipy import ndimage

    m = mask.to(torch.uint8).cpu().numpy()
    labels = np.zeros(m.shape, dtype=np.int32)
    areas = np.zeros(m.shape, dtype=np.int32)
    for idx in np.ndindex(*m.shape[:2]):
        lab, _ = ndimage.label(m[idx], structure=np.ones((3, 3), dtype=int))
        counts = np.bincount(lab.ravel())
        counts[0] = 0
        labels[idx] = lab
        areas[idx] = counts[lab]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


class CountingComponents:
    """`connected_components` that also counts the pixels the video predictor's hole filling
    changes: foreground components of at most `max_area` pixels of the inverted mask it passes."""

    def __init__(self, max_area: int = 8) -> None:
        self.max_area = max_area
        self.filled_pixels = 0

    def __call__(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels, areas = connected_components(mask)
        self.filled_pixels += int(((labels > 0) & (areas <= self.max_area)).sum())
        return labels, areas
