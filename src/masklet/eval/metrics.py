"""Video object segmentation metrics: J (region IoU), F (boundary F-measure), J&F.

Definitions follow the DAVIS-2017 evaluation code and the SA-V evaluator
(`sav_dataset/utils/sav_benchmark.py`, itself from vos-benchmark); scores are in [0, 1]
(the official tools print them × 100).

- J = |pred ∩ gt| / |pred ∪ gt| over non-void pixels; an empty union gives 1.
- F: boundaries are the DAVIS `seg2bmap` maps (a pixel is boundary when it differs from its
  right, lower or lower-right neighbour; the last row/column compare with their one in-image
  neighbour; the bottom-right pixel is never boundary). Tolerance = ceil(0.008 · image
  diagonal) pixels (a value ≥ 1 is taken as pixels); each boundary is dilated by a disk of
  that radius (x² + y² ≤ r²; nothing outside the image). Precision = pred boundary pixels
  within the gt's dilated boundary / pred boundary pixels, recall the other way; F = 2PR/(P+R),
  0 when P + R = 0. Empty boundaries: both → 1; only one → 0 (P, R = 1, 0 or 0, 1).
- Frames scored: those with ground truth, minus the first and last (`skip_first_and_last`,
  the semi-supervised protocol of DAVIS-2017 and SA-V val/test). A missing prediction is
  an empty mask.
- protocol "sav" (SA-V / vos-benchmark): an object is scored from the first scored frame on
  which its gt or prediction is non-empty (earlier frames are left out, not counted as 1),
  and an object whose gt is empty on every scored frame is left out of the results.
- protocol "davis" (DAVIS-2017 semi-supervised): every scored frame counts for every gt object.
- Per object: the mean over its frames; per video and overall: the mean over objects (both
  evaluators weight objects, not videos); J&F = (J + F) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from masklet.io.masks import RleLike, decode_rle

__all__ = [
    "BenchmarkScores",
    "ObjectScores",
    "VideoScores",
    "boundary_map",
    "boundary_precision_recall",
    "boundary_tolerance",
    "davis_statistics",
    "disk",
    "evaluate_object",
    "evaluate_video",
    "f_score",
    "j_score",
    "summarize",
]

BOUND_TH = 0.008  # DAVIS boundary tolerance, as a fraction of the image diagonal
Protocol = Literal["sav", "davis"]
MaskLike = np.ndarray | RleLike


def j_score(pred_mask: np.ndarray, gt_mask: np.ndarray, *, void_mask: np.ndarray | None = None) -> float:
    """Region similarity J (IoU) of two (H, W) masks; 1.0 when both are empty."""
    pred, gt = _pair(pred_mask, gt_mask)
    valid = np.ones_like(gt) if void_mask is None else ~np.asarray(void_mask, dtype=bool)
    union = np.count_nonzero((pred | gt) & valid)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt & valid) / union


def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) bool disk: offsets with x² + y² ≤ r²."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def boundary_tolerance(shape: tuple[int, ...], bound_th: float = BOUND_TH) -> int:
    """Dilation radius in pixels: `bound_th` itself if ≥ 1, else ceil(bound_th · diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool one-pixel boundary of a mask, exactly as DAVIS's `seg2bmap` draws it."""
    seg = np.asarray(mask, dtype=bool)
    right = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    down = np.zeros_like(seg)
    down[:-1, :] = seg[1:, :]
    diag = np.zeros_like(seg)
    diag[:-1, :-1] = seg[1:, 1:]
    edge = (seg ^ right) | (seg ^ down) | (seg ^ diag)
    # parity: DAVIS lets the last row look only right and the last column only down
    edge[-1, :] = seg[-1, :] ^ right[-1, :]
    edge[:, -1] = seg[:, -1] ^ down[:, -1]
    edge[-1, -1] = False
    return edge


def _matched(edges: np.ndarray, other: np.ndarray, radius: int) -> tuple[int, int]:
    """(pixels of `edges` within `radius` of `other`, pixels of `other` within `radius` of `edges`).

    The same counts as dilating each map with `disk(radius)` (nothing outside the image) and
    intersecting with the other, by nearest-neighbour search over the boundary pixels,
    which is far cheaper than dilating the image.
    """
    a, b = np.argwhere(edges), np.argwhere(other)  # (P, 2) row, col
    limit = radius * radius
    # squared distances between pixels are integers, so rounding d² recovers them exactly
    d_ab, _ = cKDTree(b).query(a, k=1, distance_upper_bound=radius + 1)
    d_ba, _ = cKDTree(a).query(b, k=1, distance_upper_bound=radius + 1)
    return int(np.count_nonzero(np.rint(d_ab * d_ab) <= limit)), int(
        np.count_nonzero(np.rint(d_ba * d_ba) <= limit)
    )


def boundary_precision_recall(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    *,
    void_mask: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> tuple[float, float]:
    """Boundary (precision, recall) of pred against gt with the DAVIS tolerance and empty-mask rules."""
    pred, gt = _pair(pred_mask, gt_mask)
    if void_mask is not None:
        valid = ~np.asarray(void_mask, dtype=bool)
        pred, gt = pred & valid, gt & valid
    pred_edge, gt_edge = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = np.count_nonzero(pred_edge), np.count_nonzero(gt_edge)
    if n_pred == 0 and n_gt == 0:
        return 1.0, 1.0
    if n_pred == 0 or n_gt == 0:  # a boundary where there should be none, or none where there should be one
        return (1.0, 0.0) if n_pred == 0 else (0.0, 1.0)
    pred_hits, gt_hits = _matched(pred_edge, gt_edge, boundary_tolerance(pred.shape, bound_th))
    return pred_hits / n_pred, gt_hits / n_gt


def f_score(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    *,
    void_mask: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> float:
    """Boundary F-measure of two (H, W) masks; 1.0 when both are empty, 0.0 when only one is."""
    precision, recall = boundary_precision_recall(pred_mask, gt_mask, void_mask=void_mask, bound_th=bound_th)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _pair(pred_mask: np.ndarray, gt_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"expected two (H, W) masks of one size, got {pred.shape} and {gt.shape}")
    return pred, gt


def davis_statistics(values: Sequence[float]) -> tuple[float, float, float]:
    """DAVIS (mean, recall = share of values > 0.5, decay = mean of first quarter − last quarter)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    # parity: DAVIS's overlapping quarter bins; it casts the edges to uint8, which we do not
    edges = (np.round(np.linspace(1, v.size, 5) + 1e-10) - 1).astype(np.int64)
    decay = float(np.mean(v[edges[0] : edges[1] + 1]) - np.mean(v[edges[3] : edges[4] + 1]))
    return float(v.mean()), float(np.mean(v > 0.5)), decay


@dataclass(frozen=True, slots=True)
class ObjectScores:
    """Per-frame J and F of one object."""

    obj_id: int
    frames: tuple[int, ...]  # the frames scored
    j: tuple[float, ...]  # per scored frame
    f: tuple[float, ...]

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.j)) if self.j else math.nan

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.f)) if self.f else math.nan

    @property
    def jf(self) -> float:
        return (self.j_mean + self.f_mean) / 2


@dataclass(frozen=True, slots=True)
class VideoScores:
    """The scored objects of one video; means are over objects."""

    video_id: str
    objects: tuple[ObjectScores, ...]

    @property
    def j(self) -> float:
        return float(np.mean([o.j_mean for o in self.objects])) if self.objects else math.nan

    @property
    def f(self) -> float:
        return float(np.mean([o.f_mean for o in self.objects])) if self.objects else math.nan

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass(frozen=True, slots=True)
class BenchmarkScores:
    """Dataset-level J, F, J&F: means over every scored object of every video."""

    j: float
    f: float
    jf: float
    num_objects: int
    num_videos: int


def _load(mask: MaskLike | None) -> np.ndarray | None:
    if mask is None or isinstance(mask, np.ndarray):
        return None if mask is None else mask.astype(bool, copy=False)
    return decode_rle(mask)


def evaluate_object(
    pred: Mapping[int, MaskLike],
    gt: Mapping[int, MaskLike],
    *,
    obj_id: int = 0,
    protocol: Protocol = "sav",
    skip_first_and_last: bool = True,
    bound_th: float = BOUND_TH,
) -> ObjectScores | None:
    """Score one object's {frame: mask or RLE} prediction against its ground truth.

    Frames come from `gt` (prediction-only frames are ignored). Returns None when the "sav"
    protocol leaves the object out (its gt is empty on every scored frame).
    """
    if protocol not in ("sav", "davis"):
        raise ValueError(f"protocol must be 'sav' or 'davis', got {protocol!r}")
    frames = sorted(gt)
    if skip_first_and_last:
        frames = frames[1:-1]
    scored, js, fs, seen_gt, started = [], [], [], False, protocol == "davis"
    for frame in frames:
        g = _load(gt[frame])
        p = _load(pred.get(frame))
        p = np.zeros_like(g) if p is None else p
        if p.shape != g.shape:
            raise ValueError(
                f"object {obj_id} frame {frame}: prediction {p.shape} and gt {g.shape} differ in size"
            )
        g_any = bool(g.any())
        seen_gt |= g_any
        started = started or g_any or bool(p.any())
        if not started:
            continue
        scored.append(frame)
        js.append(j_score(p, g))
        fs.append(f_score(p, g, bound_th=bound_th))
    if protocol == "sav" and not seen_gt:
        return None
    return ObjectScores(obj_id=obj_id, frames=tuple(scored), j=tuple(js), f=tuple(fs))


def evaluate_video(
    pred: Mapping[int, Mapping[int, MaskLike]],
    gt: Mapping[int, Mapping[int, MaskLike]],
    *,
    video_id: str = "",
    protocol: Protocol = "sav",
    skip_first_and_last: bool = True,
    bound_th: float = BOUND_TH,
) -> VideoScores:
    """Score {obj_id: {frame: mask or RLE}} predictions of one video against its ground truth.

    Objects come from `gt`; an object or frame missing from `pred` is an empty mask.
    Arguments go (pred, gt) throughout this module, as in `j_score` and `f_score`.
    """
    objects = []
    for obj_id in sorted(gt):
        scores = evaluate_object(
            pred.get(obj_id, {}),
            gt[obj_id],
            obj_id=obj_id,
            protocol=protocol,
            skip_first_and_last=skip_first_and_last,
            bound_th=bound_th,
        )
        if scores is not None:
            objects.append(scores)
    return VideoScores(video_id=video_id, objects=tuple(objects))


def summarize(videos: Sequence[VideoScores]) -> BenchmarkScores:
    """Dataset J, F and J&F as the DAVIS and SA-V tools report them (mean over all objects)."""
    objects = [o for v in videos for o in v.objects]
    j = float(np.mean([o.j_mean for o in objects])) if objects else math.nan
    f = float(np.mean([o.f_mean for o in objects])) if objects else math.nan
    return BenchmarkScores(j=j, f=f, jf=(j + f) / 2, num_objects=len(objects), num_videos=len(videos))
