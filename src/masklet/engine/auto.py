"""Auto masklets as in SA-V: segment everything on one frame, track it all, keep the good, new ones.

1. Proposals: the automatic mask generator on the first frame with a 32x32 point grid, plus
   16x16 on each of the 4 crops of crop layer 1 and 4x4 on each of the 16 crops of layer 2
   (`grid_sizes`; explicit grids, since one downscale factor cannot give 32, 16, 4); holes
   and components under `min_region_area` (200) pixels removed at full resolution.
2. Tracking: every proposal is a mask prompt of one object, all objects in one session,
   propagated forward; masks are kept on the annotated frames (every `stride`-th, default
   round(fps / 6)). On the prompt frame the proposal itself is kept.
3. Per-frame stability (SA-V's `masklet_stability_score`): the IoU of the frame's logits
   thresholded at +offset and -offset (1.0 when both are empty; the generator's own score
   on the first frame). A masklet is kept when its mean stability, its presence (share of
   annotated frames where it is visible) and its size (mean area over visible frames) pass
   the thresholds, and its spatio-temporal IoU (summed intersection / summed union over the
   frames both have) with every masklet already on the video (manual or auto) and with every
   more stable kept candidate is at most `dedup_iou`.
4. Each kept masklet is saved in one transaction: type `auto`, masks with source `auto`,
   status `in_review` (sent to review), meta with its scores (`stability_score` the mean,
   `stability_scores` per annotated frame, and under "sav" the list the SA-V export writes
   as `masklet_stability_score` when the frames are SA-V's: stride 4 from frame 0). The run
   logs an `auto.run` event with its counts and settings.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from masklet.engine.store import InvalidEditError, Masklet, Store, Video
from masklet.engine.video_frames import EveryNthFrame, annotation_stride, check_frames_match
from masklet.engine.vocabulary import EventAction, MaskletType, MaskSource
from masklet.errors import ConfigError
from masklet.io.formats.sav import SAV_FRAME_STRIDE
from masklet.io.frames import open_frame_source
from masklet.io.masks import RleLike, RleMask, decode_rle, rle_area, rle_iou_matrix, validate_rle
from masklet.predict.mask_ops import point_grid, remove_small_regions

log = logging.getLogger(__name__)

__all__ = [
    "AutoCandidate", "AutoMaskletConfig", "AutoResult", "Proposal", "generate_auto_masklets", "propose", "select",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class AutoMaskletConfig:
    """Settings of an auto-masklet run (defaults: SA-V's where known)."""

    grid_sizes: tuple[int, ...] = (32, 16, 4)  # points per side: whole frame, then each crop layer
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8  # the generator's own filters, on the first frame
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    crop_nms_thresh: float = 0.7
    min_region_area: int = 200  # holes and components smaller than this (pixels) are removed
    stability_offset: float = 1.0  # logit offset of the stability score
    min_stability: float = 0.9  # mean over annotated frames
    min_presence: float = 0.0  # share of annotated frames where the masklet is visible
    min_size_px: float = 200.0  # mean area over the visible annotated frames
    dedup_iou: float = 0.5  # above this spatio-temporal IoU a candidate is a duplicate
    stride: int | None = None  # annotated frames; None: round(fps / 6)
    track_all_frames: bool = False  # track every frame (slower), not only the annotated ones

    def __post_init__(self) -> None:
        if not self.grid_sizes or any(not isinstance(n, int) or n < 1 for n in self.grid_sizes):
            raise ConfigError(
                f"grid_sizes must be positive ints, one per crop layer; got {self.grid_sizes!r}"
            )
        for name in ("min_stability", "min_presence", "dedup_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"stride must be a positive integer or None, got {self.stride!r}")


@dataclass(frozen=True, slots=True)
class Proposal:
    """A first-frame mask to track, with the generator's scores when it made it."""

    mask: np.ndarray  # (H, W) bool
    predicted_iou: float | None = None
    stability: float | None = None
    point: tuple[float, float] | None = None  # the grid point that made it


@dataclass(frozen=True, slots=True)
class AutoCandidate:
    """One tracked proposal: its masks and stability on the annotated frames from the first on."""

    masks: Mapping[int, RleMask]  # frame -> mask
    stability: Mapping[int, float]  # frame -> stability score
    predicted_iou: float | None = None  # the generator's, on the first frame
    point: tuple[float, float] | None = None  # the grid point that made it

    @property
    def mean_stability(self) -> float:
        return float(np.mean(list(self.stability.values()))) if self.stability else 0.0

    @property
    def presence(self) -> float:
        return sum(1 for m in self.masks.values() if not m.is_empty) / len(self.masks) if self.masks else 0.0

    @property
    def size_px(self) -> float:
        areas = [a for a in (m.area for m in self.masks.values()) if a > 0]
        return float(np.mean(areas)) if areas else 0.0


@dataclass(frozen=True, slots=True)
class AutoResult:
    """What a run saved, and how many candidates each filter dropped."""

    masklets: tuple[Masklet, ...]
    candidates: int
    dropped: Mapping[str, int]  # "small", "unstable", "absent", "duplicate"


def _clean(mask: np.ndarray, min_area: int) -> np.ndarray:
    if min_area <= 0:
        return mask
    mask, _ = remove_small_regions(mask, min_area, mode="holes")
    mask, _ = remove_small_regions(mask, min_area, mode="islands")
    return mask


def propose(model: Any, image: np.ndarray, config: AutoMaskletConfig) -> list[Proposal]:
    """The generator's masks on one frame, small holes and components removed (empty ones dropped)."""
    from masklet.predict.automatic import AutomaticMaskGenerator

    generator = AutomaticMaskGenerator(
        model, points_per_side=None, point_grids=[point_grid(n) for n in config.grid_sizes],
        crop_n_layers=len(config.grid_sizes) - 1, points_per_batch=config.points_per_batch,
        pred_iou_thresh=config.pred_iou_thresh, stability_score_thresh=config.stability_score_thresh,
        stability_score_offset=config.stability_offset, box_nms_thresh=config.box_nms_thresh,
        crop_nms_thresh=config.crop_nms_thresh,
        output_mode="coco_rle",
    )  # fmt: skip
    out = []
    for record in generator.generate(image):
        mask = _clean(decode_rle(record.segmentation), config.min_region_area)
        if mask.any():
            x, y = record.point_coords[0]
            out.append(Proposal(mask, record.predicted_iou, record.stability_score, (x, y)))
    return out


def _stability(logits: Any, offset: float) -> np.ndarray:
    """(N,) IoU of logits > +offset and logits > -offset per object; 1.0 where both are empty."""
    inner = (logits > offset).flatten(1).sum(1).cpu().numpy()
    outer = (logits > -offset).flatten(1).sum(1).cpu().numpy()
    return np.where(outer > 0, inner / np.maximum(outer, 1), 1.0)


def _track(
    model: Any,
    frames: Any,
    start: int,
    proposals: Sequence[np.ndarray],
    *,
    stride: int,
    config: AutoMaskletConfig,
) -> tuple[list[dict[int, RleMask]], list[dict[int, float]]]:
    """Every proposal tracked from `start` in one session: masks and stability per annotated frame."""
    from masklet.predict.track_runner import track_masks
    from masklet.predict.video import VideoPredictor

    every = config.track_all_frames or stride == 1
    source = frames if every else EveryNthFrame(frames, stride)
    step = 1 if every else stride
    masks: list[dict[int, RleMask]] = [{} for _ in proposals]
    scores: list[dict[int, float]] = [{} for _ in proposals]
    with VideoPredictor(model).start(source) as session:
        for k, proposal in enumerate(proposals):
            session.add_prompt(frame=start // step, obj_id=k, mask=proposal)
        for out in track_masks(session, start // step, frame_step=step, progress="auto masklets"):
            if out.frame % stride:
                continue
            stable = _stability(out.logits, config.stability_offset)
            for index, k in enumerate(out.obj_ids):
                masks[k][out.frame] = RleMask.from_mask(_clean(out.masks[index], config.min_region_area))
                scores[k][out.frame] = float(stable[index])
    return masks, scores


def _st_iou(a: Sequence[Mapping[int, RleMask]], b: Sequence[Mapping[int, RleMask]]) -> np.ndarray:
    """(len(a), len(b)) spatio-temporal IoU over the frames both masklets of a pair have."""
    inter = np.zeros((len(a), len(b)))
    union = np.zeros((len(a), len(b)))
    frames = sorted({f for m in (*a, *b) for f in m})
    for f in frames:
        rows = [i for i, m in enumerate(a) if f in m]
        cols = [j for j, m in enumerate(b) if f in m]
        if not rows or not cols:
            continue
        iou = rle_iou_matrix([a[i][f] for i in rows], [b[j][f] for j in cols])
        area_a = np.array([rle_area(a[i][f]) for i in rows], dtype=float)[:, None]
        area_b = np.array([rle_area(b[j][f]) for j in cols], dtype=float)[None, :]
        both = iou * (area_a + area_b) / (1.0 + iou)  # intersection, from IoU and the two areas
        inter[np.ix_(rows, cols)] += both
        union[np.ix_(rows, cols)] += area_a + area_b - both
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def select(
    candidates: Sequence[AutoCandidate], existing: Sequence[Mapping[int, RleMask]], config: AutoMaskletConfig
) -> tuple[list[AutoCandidate], dict[str, int]]:
    """The candidates worth review, most stable first, and how many each filter dropped."""
    dropped = {"small": 0, "unstable": 0, "absent": 0, "duplicate": 0}
    passing = []
    for c in candidates:
        reason = (
            "small" if c.size_px < config.min_size_px
            else "unstable" if c.mean_stability < config.min_stability
            else "absent" if c.presence < config.min_presence
            else None
        )  # fmt: skip
        if reason is None:
            passing.append(c)
        else:
            dropped[reason] += 1
    passing.sort(key=lambda c: -c.mean_stability)
    against = _st_iou([c.masks for c in passing], existing) if existing else np.zeros((len(passing), 0))
    among = _st_iou([c.masks for c in passing], [c.masks for c in passing])
    kept: list[int] = []
    for i in range(len(passing)):
        if (against[i] > config.dedup_iou).any() or any(among[i, j] > config.dedup_iou for j in kept):
            dropped["duplicate"] += 1
        else:
            kept.append(i)
    return [passing[i] for i in kept], dropped


def _meta(c: AutoCandidate, *, start: int, stride: int) -> dict[str, Any]:
    scores = [c.stability[f] for f in sorted(c.stability)]
    meta: dict[str, Any] = {
        "stability_score": c.mean_stability, "stability_scores": scores, "first_frame": start,
        "frame_stride": stride, "presence": c.presence, "size_px": c.size_px,
        "predicted_iou": c.predicted_iou, "point": None if c.point is None else list(c.point),
    }  # fmt: skip
    if start == 0 and stride == SAV_FRAME_STRIDE:
        meta["sav"] = {"stability_score": scores}  # the SA-V export's masklet_stability_score
    return meta


def _save(store: Store, video: Video, c: AutoCandidate, meta: dict[str, Any], by: str) -> Masklet:
    """One auto masklet, its masks and its trip to review, in one transaction."""
    with store.transaction():
        masklet = store.create_masklet(video.id, by=by, type=MaskletType.AUTO, meta=meta)
        store.put_frame_masks(
            masklet.id, {f: m.to_dict() for f, m in c.masks.items()}, source=MaskSource.AUTO, by=by
        )
        version = store.get_masklet(masklet.id).version
        return store.set_masklet_status(masklet.id, "in_review", expected_version=version, by=by)


def _given(masks: Sequence[np.ndarray | RleLike], video: Video) -> list[Proposal]:
    size, out = (video.height, video.width), []
    for i, m in enumerate(masks):
        if isinstance(m, np.ndarray):
            if m.shape != size:
                raise InvalidEditError(
                    f"proposal {i} is {m.shape}, but video {video.id} frames are {size} (H, W)"
                )
            out.append(Proposal(m.astype(bool)))
        else:
            out.append(Proposal(decode_rle(validate_rle(m, expected_size=size, where=f"proposal {i}"))))
    return out


def generate_auto_masklets(
    store: Store,
    video_id: int,
    model: Any,
    *,
    config: AutoMaskletConfig = AutoMaskletConfig(),  # noqa: B008 - frozen, so one shared default is safe
    frames: Any = None,
    frame: int = 0,
    proposals: Sequence[np.ndarray | RleLike] | None = None,
    by: str = "auto",
) -> AutoResult:
    """Auto masklets for one video (see the module doc), saved in review; returns what was saved.

    `frames` defaults to the video's path; `frame` is where proposals are made (an annotated
    frame); `proposals` ((H, W) masks or RLEs) replace the generator's.
    """
    video = store.get_video(video_id)
    stride = annotation_stride(video, config.stride)
    if not 0 <= frame < video.frame_count or frame % stride:
        raise InvalidEditError(
            f"auto masklets start on an annotated frame of video {video.id} (0..{video.frame_count - 1}, "
            f"every {stride}th); got {frame!r}"
        )
    given = None if proposals is None else _given(proposals, video)
    with open_frame_source(video.path if frames is None else frames) as source:
        check_frames_match(video, source)
        found = given if given is not None else propose(model, source.get(frame), config)
        tracked = ([], []) if not found else _track(
            model, source, frame, [p.mask for p in found], stride=stride, config=config
        )  # fmt: skip
    candidates = []
    for p, masks, scores in zip(found, *tracked, strict=True):
        masks[frame] = RleMask.from_mask(p.mask)  # the proposal itself on its own frame
        if p.stability is not None:
            scores[frame] = p.stability
        candidates.append(AutoCandidate(masks, scores, p.predicted_iou, p.point))
    existing = [
        {m.frame: validate_rle(m.rle) for m in store.get_frame_masks(ml.id)}
        for ml in store.list_masklets(video_id=video.id)
    ]
    kept, dropped = select(candidates, existing, config)
    saved = tuple(_save(store, video, c, _meta(c, start=frame, stride=stride), by) for c in kept)
    store.log_event(EventAction.AUTO_RUN, by=by, video_id=video.id, frame=frame, payload={
        "candidates": len(candidates), "kept": len(saved), "dropped": dropped,
        "masklet_ids": [m.id for m in saved], "config": dataclasses.asdict(config),
    })  # fmt: skip
    log.info(
        "video %d: %d auto masklets from %d candidates (dropped %s)",
        video.id,
        len(saved),
        len(found),
        dropped,
    )
    return AutoResult(saved, len(candidates), dropped)
