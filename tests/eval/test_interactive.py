"""The simulated annotator: the error-centre click rule and the offline/online/first-frame protocols.

The protocols run here on a small fake session (below) that returns masks the test chooses, so
the protocol logic (which frame gets clicks, when to stop, the time axis) can be checked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from masklet.eval.interactive import (
    Click,
    TimeModel,
    error_click,
    run_first_frame,
    run_offline,
    run_online,
)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def square(y0: int, x0: int, y1: int, x1: int, shape: tuple[int, int] = (12, 12)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ---------------------------------------------------------------------------------- the click rule
def test_click_at_the_centre_of_a_missed_object() -> None:
    gt = square(1, 1, 6, 6, (9, 9))  # rows/cols 1..5: centre (3, 3), 3 px from the background
    assert error_click(np.zeros((9, 9), bool), gt) == Click(x=3, y=3, positive=True)


def test_the_image_border_counts_as_boundary() -> None:
    # everything predicted, nothing there: without the pad the distance would grow towards the border
    assert error_click(np.ones((9, 9), bool), np.zeros((9, 9), bool)) == Click(x=4, y=4, positive=False)
    # a false negative touching the border at the left: deepest 2 px inside the border, row 1 first
    gt = square(0, 0, 3, 6, (8, 8))  # rows 0..2, cols 0..5
    assert error_click(np.zeros((8, 8), bool), gt) == Click(x=1, y=1, positive=True)


def test_the_deeper_region_wins_and_ties_go_to_false_positives() -> None:
    # a long thin miss (20 px, depth 1) against a 3x3 false positive (9 px, depth 2): the deeper one
    gt = np.zeros((12, 24), bool)
    gt[0, 2:22] = True
    pred = np.zeros((12, 24), bool)
    pred[6:9, 10:13] = True
    assert error_click(pred, gt) == Click(x=11, y=7, positive=False)
    # equally deep: 3x3 miss and 3x3 extra; the official sampler clicks negative
    gt, pred = square(1, 1, 4, 4), square(6, 6, 9, 9)
    assert error_click(pred, gt) == Click(x=7, y=7, positive=False)
    # no error, no click
    assert error_click(gt, gt) is None


def test_ties_inside_a_region_take_the_first_pixel_in_row_major_order() -> None:
    gt = square(2, 1, 4, 5, (6, 6))  # 2x4: every pixel is 1 px from the background
    pred = square(2, 1, 3, 2, (6, 6))  # covers (row 2, col 1)
    assert error_click(pred, gt) == Click(x=2, y=2, positive=True)


def test_click_rejects_masks_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="one size"):
        error_click(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


# ------------------------------------------------------------------------------- the fake session
class FakeSession:
    """Returns given masks: a prompted frame shows the gt after `clicks_to_fix` clicks (the gt's left
    half before that), a box or mask prompt shows the gt, and other frames show `tracked[frame]`."""

    def __init__(self, gt: dict[int, dict[int, np.ndarray]], tracked: dict[int, dict[int, np.ndarray]],
                 num_frames: int, *, clicks_to_fix: int = 2) -> None:  # fmt: skip
        self.gt, self.tracked, self.num_frames, self.clicks_to_fix = gt, tracked, num_frames, clicks_to_fix
        self.calls: list[tuple] = []
        self.reset()

    def reset(self) -> None:
        self.clicks: dict[tuple[int, int], int] = {}  # (obj, frame) -> clicks so far
        self.fixed: set[tuple[int, int]] = set()
        self.calls.append(("reset",))

    def _mask(self, obj: int, frame: int) -> np.ndarray:
        gt = self.gt[obj][frame]
        if (obj, frame) in self.fixed:
            return gt
        if (obj, frame) in self.clicks:
            half = gt.copy()
            half[:, gt.shape[1] // 2 :] = False
            return half
        return self.tracked[obj][frame]

    def _out(self, frame: int) -> tuple[list[int], np.ndarray]:
        objs = sorted({o for o, _ in self.clicks} | {o for o, _ in self.fixed})
        return objs, np.stack([np.where(self._mask(o, frame), 5.0, -5.0) for o in objs])

    def add_prompt(self, *, frame, obj_id, points=None, labels=None, box=None, mask=None, clear=False):
        self.calls.append(("prompt", obj_id, frame, points, labels, box is not None, mask is not None))
        key = (obj_id, frame)
        if points is not None:
            self.clicks[key] = self.clicks.get(key, 0) + len(points)
            if self.clicks[key] >= self.clicks_to_fix:
                self.fixed.add(key)
        else:
            self.clicks.setdefault(key, 0)
            self.fixed.add(key)
        return self._out(frame)

    def propagate(self, start=None, max_frames=None, reverse=False):
        prompted = sorted(f for _, f in self.clicks)
        start = prompted[0] if start is None else start
        frames = range(start, -1, -1) if reverse else range(start, self.num_frames)
        self.calls.append(("propagate", start, reverse))
        for frame in frames:
            yield (frame, *self._out(frame))


def video(tracked_cols: dict[int, int], num_frames: int = 6, first: int = 0):
    """One object: a 4x4 square at rows 4..7, cols 4..7 on frames >= first; `tracked_cols` shifts
    the tracked square on some frames (a 2-column shift: IoU 8/24 = 0.33; 1 column: 12/20 = 0.6)."""
    gt = {f: square(4, 4, 8, 8) if f >= first else np.zeros((12, 12), bool) for f in range(num_frames)}
    tracked = {f: np.roll(gt[f], tracked_cols.get(f, 0), axis=1) for f in range(num_frames)}
    return {1: gt}, {1: tracked}


def test_offline_prompts_the_worst_frame_each_round() -> None:
    gt, tracked = video({3: 1, 5: 2})  # frame 5 is worst (0.33), then frame 3 (0.6)
    session = FakeSession(gt, tracked, 6)
    result = run_offline(session, gt, max_frames=4, time=TimeModel())
    (run,) = result.objects
    # round 1: nothing predicted, every frame IoU 0: the earliest; then 5 (worst), then 3; then all right
    assert run.prompted == (0, 5, 3)
    assert [(s.round, s.frame, s.click.positive) for s in run.steps] == [
        (1, 0, True), (1, 0, True), (2, 5, False), (2, 5, True), (3, 3, False), (3, 3, True)
    ]  # fmt: skip
    # a shifted square: miss and extra are equally deep (1 px), so the first click is negative,
    # at the first extra pixel in row-major order (row 4, col 8)
    assert (run.steps[2].click.x, run.steps[2].click.y) == (8, 4)
    # two clicks fix a frame (the first leaves the right half missing, the second clicks there)
    assert [(s.click.x, s.click.y) for s in run.steps[:2]] == [(5, 5), (6, 4)]
    per_round = 6 * 30 / 300 + 1.0 + 2 * 1.5  # examine 6 frames, locate, two clicks
    assert [p.seconds for p in run.curve] == pytest.approx(
        [per_round, 2 * per_round, 3 * per_round, 3 * per_round]
    )
    assert [p.clicks for p in run.curve] == [2, 4, 6, 6]
    assert [p.prompted_frames for p in run.curve] == [1, 2, 3, 4]
    jf = [p.jf for p in run.curve]
    assert jf[0] < jf[1] < jf[2] == jf[3] == 1.0
    # J after round 1: frames 0..5 score 1, 1, 1, 0.6, 1, 1/3
    assert run.curve[0].j == pytest.approx((4 + 0.6 + 1 / 3) / 6)
    # each pass propagates forward from the first prompt; never backwards from frame 0
    assert ("propagate", 0, True) not in session.calls


def test_offline_propagates_backwards_when_the_first_prompt_is_late() -> None:
    gt, tracked = video({}, first=2)
    session = FakeSession(gt, tracked, 6, clicks_to_fix=1)
    (run,) = run_offline(session, gt, max_frames=2).objects
    assert run.prompted == (2,)  # frames 0, 1 are empty in gt and prediction alike: IoU 1
    assert ("propagate", 2, True) in session.calls
    assert run.curve[-1].jf == 1.0 and len(run.curve) == 2


def test_online_stops_at_the_first_bad_frame_and_goes_on() -> None:
    gt, tracked = video({2: 1, 3: 0, 4: 2}, num_frames=6, first=1)  # frame 2: 0.6 < 0.75, frame 4: 0.33
    session = FakeSession(gt, tracked, 6)
    result = run_online(session, gt, max_frames=8, time=TimeModel(examine_s=60.0))
    (run,) = result.objects
    assert run.prompted == (1, 2, 4)  # the first visible frame, then each first bad frame after
    assert [c for c in session.calls if c[0] == "propagate"] == [
        ("propagate", 1, False), ("propagate", 2, False), ("propagate", 4, False)
    ]  # fmt: skip
    watch = 6 * 60 / 300  # the one pass over the video
    assert [p.seconds for p in run.curve[:3]] == pytest.approx([watch + 4, watch + 8, watch + 12])
    assert len(run.curve) == 8 and run.curve[-1] == run.curve[2].__class__(8, 6, watch + 12, 1.0, 1.0, 1.0)
    assert set(run.masks) == set(range(6))


def test_online_respects_the_frame_budget_and_aggregates_objects() -> None:
    gt1, tr1 = video({2: 2, 3: 2, 4: 2, 5: 2})
    gt2, tr2 = video({})
    gt, tracked = {1: gt1[1], 7: gt2[1]}, {1: tr1[1], 7: tr2[1]}
    session = FakeSession(gt, tracked, 6)
    result = run_online(session, gt, max_frames=2)
    one, seven = result.objects
    assert one.prompted == (0, 2) and seven.prompted == (0,)
    assert sum(1 for c in session.calls if c == ("reset",)) >= 2  # each object from a fresh state
    curve = result.curve
    assert [p.clicks for p in curve] == [4, 6]
    assert curve[1].seconds == pytest.approx(one.curve[1].seconds + seven.curve[1].seconds)
    assert curve[1].jf == pytest.approx((one.curve[1].jf + 1.0) / 2)
    assert result.to_json()["curve"][1]["clicks"] == 6


@pytest.mark.parametrize(("prompt", "clicks"), [("1-click", 1), ("3-click", 2), ("box", 0), ("mask", 0)])
def test_first_frame_prompts(prompt: str, clicks: int) -> None:
    gt, tracked = video({4: 2}, first=1)
    session = FakeSession(gt, tracked, 6)
    result = run_first_frame(session, gt, prompt=prompt)
    prompts = [c for c in session.calls if c[0] == "prompt"]
    assert all(c[2] == 1 for c in prompts)  # everything on the first visible frame
    assert sum(len(c[3]) for c in prompts if c[3] is not None) == clicks  # 3-click stops when right
    if prompt == "box":
        assert prompts == [("prompt", 1, 1, None, None, True, False)]
    (obj,) = result.objects
    expected_j = {0: 1.0, 1: 0.5 if prompt == "1-click" else 1.0, 4: 1 / 3}  # the rest tracked right
    assert obj.j == tuple(expected_j.get(f, 1.0) for f in range(6))
    with pytest.raises(ValueError, match="prompt must be one of"):
        run_first_frame(session, gt, prompt="scribble")
