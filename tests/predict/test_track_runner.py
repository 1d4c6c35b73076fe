"""track_masks: the one loop from a tracking session to per-frame masks (CLI, engine, evaluation)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.build import build_sam2
from masklet.errors import SessionError
from masklet.io.masks import RleMask
from masklet.io.synthetic import make_synthetic_video
from masklet.predict.track_runner import frames_to_track, track_masks
from masklet.predict.video import VideoPredictor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "parity"))
from seeded_weights import seeded_state_dict, shapes_of  # noqa: E402

pytestmark = pytest.mark.threads(1)


class ScriptedSession:
    """Yields given logits: object 1 is positive on column >= frame, object 7 on row < frame."""

    def __init__(self, num_frames: int = 5, size: tuple[int, int] = (4, 6)) -> None:
        self.num_frames, self.size = num_frames, size
        self.calls: list[tuple] = []

    def logits(self, frame: int) -> np.ndarray:
        h, w = self.size
        cols = np.broadcast_to(np.arange(w) >= frame, (h, w))
        rows = np.broadcast_to((np.arange(h) < frame)[:, None], (h, w))
        return np.stack([np.where(cols, 2.0, -2.0), np.where(rows, 0.5, 0.0)]).astype(np.float32)

    def propagate(self, start=None, max_frames=None, reverse=False):
        self.calls.append((start, max_frames, reverse))
        first = 0 if start is None else start
        frames = range(first, -1, -1) if reverse else range(first, self.num_frames)
        for k, frame in enumerate(frames):
            if max_frames is not None and k == max_frames:
                return
            yield frame, [1, 7], self.logits(frame)


def test_masks_are_logits_above_zero_in_video_frames() -> None:
    session = ScriptedSession()
    out = list(track_masks(session, 1, frame_step=3, max_frames=3))
    assert session.calls == [(1, 3, False)]
    assert [t.frame for t in out] == [3, 6, 9] and [t.session_frame for t in out] == [1, 2, 3]
    for t in out:
        ref = session.logits(t.session_frame) > 0  # exactly 0 is background
        assert t.obj_ids == (1, 7) and t.masks.dtype == bool
        np.testing.assert_array_equal(t.masks, ref)
        np.testing.assert_array_equal(t.mask(7), ref[1])
        assert t.rle(1) == RleMask.from_mask(ref[0]) and t.rles() == {1: t.rle(1), 7: t.rle(7)}
    with pytest.raises(SessionError, match="object 3 is not tracked on frame 3"):
        out[0].mask(3)


def test_reverse_and_bad_step() -> None:
    session = ScriptedSession()
    assert [t.frame for t in track_masks(session, 2, reverse=True)] == [2, 1, 0]
    with pytest.raises(ValueError, match="frame_step"):
        next(track_masks(session, frame_step=0))


def test_progress_total() -> None:
    assert frames_to_track(10, 3, False, None) == 7
    assert frames_to_track(10, 3, True, None) == 4
    assert frames_to_track(10, 3, False, 2) == 2


def test_real_session_gives_what_propagate_gives() -> None:
    model = build_sam2("sam2.1_hiera_t", image_size=128)
    model.load_state_dict(seeded_state_dict(shapes_of(model.state_dict()), seed=4))
    model.eval()
    video = make_synthetic_video(5, 96, 128, num_objects=2, seed=1)
    predictor = VideoPredictor(model)
    runs = []
    for use_runner in (False, True):
        with predictor.start(video.frames) as s:
            s.add_prompt(frame=0, obj_id=1, points=[video.centers[0, 0].tolist()], labels=[1])
            s.add_prompt(frame=0, obj_id=2, box=video.boxes[0, 1].tolist())
            if use_runner:
                runs.append(
                    {t.frame: (t.obj_ids, t.masks, t.logits.clone()) for t in track_masks(s, progress=True)}
                )
            else:
                runs.append({f: (tuple(i), (lg > 0).numpy(), lg.clone()) for f, i, lg in s.propagate()})
    assert runs[0].keys() == runs[1].keys() == set(range(5))
    for f in runs[0]:
        assert runs[0][f][0] == runs[1][f][0]
        np.testing.assert_array_equal(runs[0][f][1], runs[1][f][1])
        assert torch.equal(runs[0][f][2], runs[1][f][2])
    assert any(m.any() for _, m, _ in runs[1].values())  # something was tracked
