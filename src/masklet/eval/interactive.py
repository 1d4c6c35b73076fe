"""The SAM 2 paper's simulated annotator and its promptable-video-segmentation protocols.

The click rule (RITM's, as SAM 2 uses it in training and evaluation): the next click goes to
the point of the false-negative or false-positive region farthest from that region's boundary
(Euclidean distance transform with a one-pixel background pad, so the image border counts as
boundary). Of the two regions the deeper one wins (larger maximum distance; a tie goes to the
false positives, as in the official sampler); a false-negative click is positive. Ties inside a
region go to the first pixel in row-major order, so the annotator is deterministic.

Protocols, per object, over any session with the `masklet.predict.video` API (`add_prompt`,
`propagate`, `reset`); each object starts from `reset()`. `gt` maps obj_id -> {frame: mask};
its frames are the annotated (scored) ones. Masks come from logits > 0.
- offline: each round the annotator watches the whole video, picks the unprompted frame with
  the worst IoU (ties: earliest) and gives it up to 3 clicks; then the video is propagated
  with all prompts (forward from the first prompted frame, then backward from it).
- online: one forward pass; clicks on the object's first visible frame, propagate, stop at
  the first later frame with IoU < 0.75, 3 clicks there, propagate on from it; and so on.
- first-frame: 1/3/5 clicks, the gt box, or the gt mask on the object's first visible frame,
  then forward propagation.
Simulated time (`TimeModel`): 1 s to locate an error frame, 1.5 s per click, 30 s to examine
300 frames. Offline round k costs one examination of the video; online, one for the pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
from scipy.ndimage import distance_transform_edt

from masklet.eval.metrics import MaskLike, ObjectScores, evaluate_object
from masklet.io.masks import RleMask, rle_iou, validate_rle
from masklet.predict.track_runner import track_masks

log = logging.getLogger(__name__)

__all__ = [
    "FIRST_FRAME_PROMPTS",
    "Click",
    "CurvePoint",
    "FirstFrameResult",
    "InteractiveResult",
    "ObjectRun",
    "SessionLike",
    "TimeModel",
    "error_click",
    "run_first_frame",
    "run_offline",
    "run_online",
]

FIRST_FRAME_PROMPTS = ("1-click", "3-click", "5-click", "box", "mask")
EvalProtocol = Literal["sav", "davis"]


class SessionLike(Protocol):
    """What the protocols need of a tracking session (`masklet.predict.video`)."""

    def add_prompt(
        self,
        *,
        frame: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask: Any = None,
        clear: bool = False,
    ) -> tuple[Sequence[int], Any]: ...

    def propagate(
        self, start: int | None = None, max_frames: int | None = None, reverse: bool = False
    ) -> Iterable[tuple[int, Sequence[int], Any]]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Click:
    """One simulated click in pixel coordinates; `positive` adds to the object."""

    x: int
    y: int
    positive: bool

    @property
    def label(self) -> int:
        return int(self.positive)


def _depth(region: np.ndarray) -> np.ndarray:
    """Distance of each pixel of `region` to the nearest pixel outside it or to the image border."""
    return distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def error_click(pred_mask: np.ndarray, gt_mask: np.ndarray) -> Click | None:
    """The next click at the centre of the deeper error region; None when pred equals gt."""
    pred, gt = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"expected two (H, W) masks of one size, got {pred.shape} and {gt.shape}")
    fn_depth, fp_depth = _depth(gt & ~pred), _depth(pred & ~gt)  # (H, W) each
    fn_best, fp_best = int(np.argmax(fn_depth)), int(np.argmax(fp_depth))
    fn_max, fp_max = fn_depth.flat[fn_best], fp_depth.flat[fp_best]
    if fn_max == 0 and fp_max == 0:
        return None
    positive = bool(fn_max > fp_max)  # parity: ties go to the false positives, as in SAM 2's sampler
    y, x = divmod(fn_best if positive else fp_best, gt.shape[1])
    return Click(x=int(x), y=int(y), positive=positive)


@dataclass(frozen=True, slots=True)
class TimeModel:
    """Simulated annotator time, in seconds."""

    locate_s: float = 1.0  # finding the frame to correct
    click_s: float = 1.5  # per click
    examine_s: float = 30.0  # watching `examine_frames` frames
    examine_frames: int = 300

    def examine(self, num_frames: int) -> float:
        return self.examine_s * num_frames / self.examine_frames


@dataclass(frozen=True, slots=True)
class ClickStep:
    """A click the annotator gave, in order; `round` is the prompted-frame count it belongs to."""

    round: int
    frame: int
    click: Click


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """Scores after `prompted_frames` frames were prompted, and the simulated time spent."""

    prompted_frames: int
    clicks: int
    seconds: float
    j: float
    f: float
    jf: float


@dataclass(frozen=True, slots=True)
class ObjectRun:
    """One object worked by the simulated annotator."""

    obj_id: int
    curve: tuple[CurvePoint, ...]  # one point per prompted-frame count 1..max_frames
    steps: tuple[ClickStep, ...]
    prompted: tuple[int, ...]  # frames prompted, in order
    masks: Mapping[int, RleMask]  # final prediction on every gt frame


@dataclass(frozen=True, slots=True)
class InteractiveResult:
    """An offline or online run over one video; `curve` aggregates its objects."""

    protocol: str  # "offline" | "online"
    video_id: str
    objects: tuple[ObjectRun, ...]

    @property
    def curve(self) -> tuple[CurvePoint, ...]:
        """Per prompted-frame count: J, F, J&F averaged over objects; clicks and seconds summed."""
        if not self.objects:
            return ()
        return tuple(
            CurvePoint(
                prompted_frames=points[0].prompted_frames,
                clicks=sum(p.clicks for p in points),
                seconds=sum(p.seconds for p in points),
                j=float(np.mean([p.j for p in points])),
                f=float(np.mean([p.f for p in points])),
                jf=float(np.mean([p.jf for p in points])),
            )
            for points in zip(*(o.curve for o in self.objects), strict=True)
        )

    def to_json(self) -> dict[str, Any]:
        point = asdict
        return {
            "protocol": self.protocol,
            "video_id": self.video_id,
            "curve": [point(p) for p in self.curve],
            "objects": [
                {"obj_id": o.obj_id, "prompted": list(o.prompted), "curve": [point(p) for p in o.curve]}
                for o in self.objects
            ],
        }


@dataclass(frozen=True, slots=True)
class FirstFrameResult:
    """The first-frame protocol with one prompt type over one video; means are over objects."""

    prompt: str  # one of FIRST_FRAME_PROMPTS
    video_id: str
    objects: tuple[ObjectScores, ...]

    @property
    def j(self) -> float:
        return float(np.mean([o.j_mean for o in self.objects])) if self.objects else float("nan")

    @property
    def f(self) -> float:
        return float(np.mean([o.f_mean for o in self.objects])) if self.objects else float("nan")

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


# --------------------------------------------------------------------------------------- helpers
class _Object:
    """One object's ground truth and running prediction inside a protocol."""

    def __init__(self, session: SessionLike, obj_id: int, gt: Mapping[int, MaskLike]) -> None:
        self.session, self.obj_id = session, obj_id
        self.gt = {f: _as_rle(m) for f, m in sorted(gt.items())}  # RLE keeps long videos small
        if not self.gt:
            raise ValueError(f"object {obj_id} has no ground-truth frames")
        self.size = next(iter(self.gt.values())).size  # (H, W)
        self.pred: dict[int, RleMask] = {}  # frame -> prediction, gt frames only
        self.steps: list[ClickStep] = []

    @property
    def first_visible(self) -> int | None:
        return next((f for f, m in self.gt.items() if not m.is_empty), None)

    def pred_mask(self, frame: int) -> np.ndarray:
        rle = self.pred.get(frame)
        return np.zeros(self.size, dtype=bool) if rle is None else rle.decode()

    def final_masks(self) -> dict[int, RleMask]:
        """The prediction on every gt frame; empty where nothing was predicted."""
        empty = RleMask.empty(*self.size)
        return {f: self.pred.get(f, empty) for f in self.gt}

    def iou(self, frame: int) -> float:
        pred = self.pred.get(frame, RleMask.empty(*self.size))
        return rle_iou(pred, self.gt[frame], both_empty=1.0)

    def record(self, frame: int, obj_ids: Sequence[int], logits: Any) -> np.ndarray:
        ids = [int(i) for i in obj_ids]
        if self.obj_id not in ids:
            return np.zeros(self.size, dtype=bool)
        mask = _to_numpy(logits)[ids.index(self.obj_id)] > 0
        if frame in self.gt:
            self.pred[frame] = RleMask.from_mask(mask)
        return mask

    def click(self, frame: int, count: int, round_: int) -> int:
        """Up to `count` error-centre clicks on `frame`, each refining the last; returns clicks given."""
        mask, given = self.pred_mask(frame), 0
        for _ in range(count):
            click = error_click(mask, self.gt[frame].decode())
            if click is None:
                break
            obj_ids, logits = self.session.add_prompt(
                frame=frame, obj_id=self.obj_id, points=[[click.x, click.y]], labels=[click.label]
            )
            mask = self.record(frame, obj_ids, logits)
            self.steps.append(ClickStep(round_, frame, click))
            given += 1
        return given

    def propagate(self, start: int | None = None, *, reverse: bool = False) -> None:
        for out in track_masks(self.session, start, reverse=reverse):
            if self.obj_id in out.obj_ids and out.frame in self.gt:
                self.pred[out.frame] = RleMask.from_mask(out.mask(self.obj_id))

    def scores(self, *, protocol: EvalProtocol, skip_first_and_last: bool) -> tuple[float, float, float]:
        s = evaluate_object(
            self.pred, self.gt, obj_id=self.obj_id, protocol=protocol, skip_first_and_last=skip_first_and_last
        )
        if s is None or not s.j:  # nothing scored: an object absent on every scored frame
            return 1.0, 1.0, 1.0
        return s.j_mean, s.f_mean, s.jf


def _as_rle(mask: MaskLike) -> RleMask:
    return RleMask.from_mask(mask) if isinstance(mask, np.ndarray) else validate_rle(mask)


def _to_numpy(logits: Any) -> np.ndarray:
    if hasattr(logits, "detach"):  # a torch tensor, possibly on an accelerator
        logits = logits.detach().float().cpu().numpy()
    array = np.asarray(logits)
    return array[None] if array.ndim == 2 else array  # (N, H, W)


def _num_frames(gt: Mapping[int, Mapping[int, MaskLike]], num_frames: int | None) -> int:
    if num_frames is not None:
        return num_frames
    return 1 + max((f for frames in gt.values() for f in frames), default=-1)


def _padded(curve: list[CurvePoint], max_frames: int) -> tuple[CurvePoint, ...]:
    """Repeat the last point when the annotator stopped early (nothing left to correct)."""
    while curve and len(curve) < max_frames:
        last = curve[-1]
        curve.append(CurvePoint(len(curve) + 1, last.clicks, last.seconds, last.j, last.f, last.jf))
    return tuple(curve)


# ------------------------------------------------------------------------------------- protocols
def _objects(session: SessionLike, gt: Mapping[int, Mapping[int, MaskLike]]) -> Iterable[_Object]:
    """Each object with a visible frame, from a fresh session state."""
    for obj_id in sorted(gt):
        obj = _Object(session, int(obj_id), gt[obj_id])
        if obj.first_visible is None:
            log.info("object %s is empty on every gt frame; nothing to annotate", obj_id)
            continue
        session.reset()
        yield obj


def run_offline(
    session: SessionLike,
    gt: Mapping[int, Mapping[int, MaskLike]],
    *,
    video_id: str = "",
    num_frames: int | None = None,
    max_frames: int = 8,
    clicks_per_frame: int = 3,
    time: TimeModel = TimeModel(),  # noqa: B008 - frozen, so one shared default is safe
    protocol: EvalProtocol = "davis",
    skip_first_and_last: bool = False,
) -> InteractiveResult:
    """Offline protocol: round k prompts the worst unprompted frame, then propagates with every prompt.

    `num_frames` (the video length, for the examination time) defaults to the last gt frame + 1.
    """
    total = _num_frames(gt, num_frames)
    runs = []
    for obj in _objects(session, gt):
        curve: list[CurvePoint] = []
        prompted: list[int] = []
        clicks, seconds = 0, 0.0
        for k in range(1, max_frames + 1):
            candidates = [f for f in obj.gt if f not in prompted]
            if not candidates:
                break
            frame = min(candidates, key=lambda f: (obj.iou(f), f))
            if obj.iou(frame) == 1.0:  # every frame left is already right
                break
            given = obj.click(frame, clicks_per_frame, k)
            prompted.append(frame)
            clicks += given
            seconds += time.examine(total) + time.locate_s + given * time.click_s
            obj.propagate()  # forward from the first prompted frame
            if min(prompted) > 0:
                obj.propagate(min(prompted), reverse=True)
            j, f, jf = obj.scores(protocol=protocol, skip_first_and_last=skip_first_and_last)
            curve.append(CurvePoint(k, clicks, seconds, j, f, jf))
        runs.append(
            ObjectRun(
                obj.obj_id, _padded(curve, max_frames), tuple(obj.steps), tuple(prompted), obj.final_masks()
            )
        )
    return InteractiveResult("offline", video_id, tuple(runs))


def run_online(
    session: SessionLike,
    gt: Mapping[int, Mapping[int, MaskLike]],
    *,
    video_id: str = "",
    num_frames: int | None = None,
    max_frames: int = 8,
    clicks_per_frame: int = 3,
    iou_threshold: float = 0.75,
    time: TimeModel = TimeModel(),  # noqa: B008 - frozen, so one shared default is safe
    protocol: EvalProtocol = "davis",
    skip_first_and_last: bool = False,
) -> InteractiveResult:
    """Online protocol: one forward pass, correcting the first frame below `iou_threshold` each time.

    The point for k prompted frames scores the pass with k corrections, run to the video's end.
    """
    total = _num_frames(gt, num_frames)
    runs = []
    for obj in _objects(session, gt):
        curve: list[CurvePoint] = []
        prompted: list[int] = []
        clicks, seconds = 0, time.examine(total)  # the annotator watches the video once
        start: int | None = obj.first_visible
        for k in range(1, max_frames + 1):
            assert start is not None
            given = obj.click(start, clicks_per_frame, k)
            prompted.append(start)
            clicks += given
            seconds += time.locate_s + given * time.click_s
            obj.propagate(start)
            j, f, jf = obj.scores(protocol=protocol, skip_first_and_last=skip_first_and_last)
            curve.append(CurvePoint(k, clicks, seconds, j, f, jf))
            after = [g for g in obj.gt if g > start and g not in prompted]
            start = next((g for g in after if obj.iou(g) < iou_threshold), None)
            if start is None:
                break
        runs.append(
            ObjectRun(
                obj.obj_id, _padded(curve, max_frames), tuple(obj.steps), tuple(prompted), obj.final_masks()
            )
        )
    return InteractiveResult("online", video_id, tuple(runs))


def run_first_frame(
    session: SessionLike,
    gt: Mapping[int, Mapping[int, MaskLike]],
    *,
    prompt: str,
    video_id: str = "",
    protocol: EvalProtocol = "davis",
    skip_first_and_last: bool = False,
) -> FirstFrameResult:
    """First-frame protocol: one prompt (see FIRST_FRAME_PROMPTS) on each object's first visible frame."""
    if prompt not in FIRST_FRAME_PROMPTS:
        raise ValueError(f"prompt must be one of {', '.join(FIRST_FRAME_PROMPTS)}, got {prompt!r}")
    scored = []
    for obj in _objects(session, gt):
        frame = obj.first_visible
        assert frame is not None
        target = obj.gt[frame].decode()
        if prompt.endswith("-click"):
            obj.click(frame, int(prompt.split("-")[0]), 1)
        elif prompt == "box":
            ys, xs = np.nonzero(target)
            box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]  # XYXY pixels
            obj.record(frame, *obj.session.add_prompt(frame=frame, obj_id=obj.obj_id, box=box))
        else:
            obj.record(frame, *obj.session.add_prompt(frame=frame, obj_id=obj.obj_id, mask=target))
        obj.propagate(frame)
        scores = evaluate_object(
            obj.pred, obj.gt, obj_id=obj.obj_id, protocol=protocol, skip_first_and_last=skip_first_and_last
        )
        if scores is not None:
            scored.append(scores)
    return FirstFrameResult(prompt, video_id, tuple(scored))
