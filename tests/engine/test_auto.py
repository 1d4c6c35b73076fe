"""Auto masklets (`engine/auto.py`): selection rules by hand, and the pipeline on a random-weight model."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.engine.auto import (
    AutoCandidate,
    AutoMaskletConfig,
    _st_iou,
    generate_auto_masklets,
    propose,
    select,
)
from masklet.engine.exports import sav_annotation
from masklet.engine.store import InvalidEditError, Store, Video
from masklet.errors import ConfigError, FormatError, FrameSourceError
from masklet.io.masks import RleMask, decode_rle, encode_rle
from masklet.io.synthetic import SyntheticVideo, make_synthetic_video

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.threads(1),
]

T, H, W = 12, 96, 128  # 24 fps: annotated frames 0, 4, 8 (SA-V's stride)
LOOSE = dict(
    grid_sizes=(4, 2, 1),
    pred_iou_thresh=0.0,
    stability_score_thresh=0.0,
    box_nms_thresh=1.0,
    crop_nms_thresh=1.0,
    min_region_area=20,
    min_stability=0.0,
    min_size_px=50.0,
    dedup_iou=0.5,
)  # fmt: skip - random weights: the generator's own filters would keep next to nothing


@pytest.fixture(scope="module")
def clip() -> SyntheticVideo:
    return make_synthetic_video(T, height=H, width=W, num_objects=2, seed=1)


@pytest.fixture
def video(store: Store) -> Video:
    project = store.create_project("auto")
    return store.add_video(project.id, "clip.mp4", fps=24, width=W, height=H, frame_count=T, content_hash="a")


def box(y0: int, x0: int, y1: int, x1: int, shape: tuple[int, int] = (10, 10)) -> RleMask:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return RleMask.from_mask(mask)


# ------------------------------------------------------------------------------------------ by hand
def test_spatio_temporal_iou_sums_over_shared_frames() -> None:
    a = {0: box(0, 0, 4, 4), 4: box(0, 0, 2, 2)}  # 16 px, then 4 px
    b = {0: box(0, 0, 4, 2), 4: box(0, 0, 2, 2), 8: box(5, 5, 9, 9)}  # frame 8 is a's blind spot
    # frame 0: inter 8, union 16; frame 4: inter 4, union 4 -> 12 / 20
    np.testing.assert_allclose(_st_iou([a], [b]), [[12 / 20]])
    np.testing.assert_allclose(_st_iou([a, {9: box(0, 0, 1, 1)}], [a]), [[1.0], [0.0]])


def test_select_filters_by_size_stability_presence_and_duplicates() -> None:
    empty = box(0, 0, 0, 0)
    config = AutoMaskletConfig(min_stability=0.8, min_presence=0.5, min_size_px=10, dedup_iou=0.5)

    def cand(masks: dict[int, RleMask], stability: float) -> AutoCandidate:
        return AutoCandidate(masks, {f: stability for f in masks})

    good = cand({0: box(0, 0, 5, 5), 4: box(0, 0, 5, 5)}, 0.95)
    near_good = cand({0: box(0, 0, 5, 4), 4: box(0, 0, 5, 4)}, 0.90)  # IoU 0.8 with `good`, less stable
    small = cand({0: box(0, 0, 3, 3), 4: box(0, 0, 3, 3)}, 0.99)  # 9 px
    unstable = cand({0: box(5, 5, 10, 10), 4: box(5, 5, 10, 10)}, 0.5)
    absent = cand({0: box(5, 0, 10, 5), 4: empty, 8: empty}, 0.99)  # visible on 1 of 3 frames
    manual_copy = cand({0: box(5, 5, 10, 9), 4: box(5, 5, 10, 9)}, 0.99)
    manual = {0: box(5, 5, 10, 10)}  # only frame 0 annotated: IoU 20 / 25 there
    kept, dropped = select([near_good, small, unstable, absent, manual_copy, good], [manual], config)
    assert kept == [good]
    assert dropped == {"small": 1, "unstable": 1, "absent": 1, "duplicate": 2}
    kept, _ = select([near_good, good], [], AutoMaskletConfig(min_size_px=1, min_stability=0, dedup_iou=0.85))
    assert kept == [good, near_good]  # below the threshold both stay, most stable first


def test_config_is_checked() -> None:
    for bad in (dict(grid_sizes=()), dict(grid_sizes=(32, 0)), dict(dedup_iou=1.5), dict(stride=0)):
        with pytest.raises(ConfigError):
            AutoMaskletConfig(**bad)


# ------------------------------------------------------------------------------------ with a model
# The model's part (proposals on 21 crops, then tracking) on SQLite only: the two tests below write
# auto masklets, refuse bad input and dedup against a manual masklet on both backends.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_pipeline_end_to_end_dedups_against_a_manual_masklet(store, video, clip, small_model) -> None:
    config = AutoMaskletConfig(**LOOSE)
    proposals = propose(small_model, clip.frames[0], config)
    assert len(proposals) >= 3 and all(p.mask.any() and p.stability is not None for p in proposals)
    manual = store.create_masklet(video.id, by="ann")  # an annotator already has proposal 0's object
    store.put_frame_mask(manual.id, 0, encode_rle(proposals[0].mask), source="manual", by="ann")

    result = generate_auto_masklets(store, video.id, small_model, config=config, frames=clip.frames)
    assert result.candidates == len(proposals) and result.dropped["duplicate"] >= 1
    assert len(result.masklets) + sum(result.dropped.values()) == result.candidates
    assert result.masklets, "nothing kept: loosen LOOSE"
    manual_masks = {0: RleMask.from_mask(proposals[0].mask)}
    saved_tracks = []
    for m in result.masklets:
        assert (m.type, m.status) == ("auto", "in_review")
        masks = store.get_frame_masks(m.id)
        assert [(f.frame, f.source) for f in masks] == [(0, "auto"), (4, "auto"), (8, "auto")]
        track = {f.frame: RleMask(f.size, f.counts) for f in masks}
        saved_tracks.append(track)
        assert _st_iou([track], [manual_masks])[0, 0] <= 0.5
        scores = m.meta["stability_scores"]
        assert len(scores) == 3 and m.meta["stability_score"] == pytest.approx(np.mean(scores))
        assert m.meta["sav"] == {"stability_score": scores} and m.meta["frame_stride"] == 4
        assert any(np.array_equal(decode_rle(masks[0].rle), p.mask) for p in proposals)  # frame 0: a proposal
    among = _st_iou(saved_tracks, saved_tracks)
    assert (among[~np.eye(len(saved_tracks), dtype=bool)] <= 0.5).all()
    (run,) = store.list_events(video_id=video.id, action="auto.run")
    assert run.payload["kept"] == len(result.masklets) and run.payload["candidates"] == result.candidates
    assert run.payload["masklet_ids"] == [m.id for m in result.masklets]
    # the SA-V auto export carries the per-frame stability as masklet_stability_score
    exported = sav_annotation(store, video.id, masklet_type="auto")
    assert [list(x.stability_score) for x in exported.masklets] == [
        m.meta["stability_scores"] for m in result.masklets
    ]


def test_given_proposals_and_the_frame_they_start_on(store, video, clip, small_model) -> None:
    manual = store.create_masklet(video.id, by="ann", obj_id=1)
    store.put_frame_mask(manual.id, 4, encode_rle(clip.mask(4, 1)), source="manual", by="ann")
    config = AutoMaskletConfig(**{**LOOSE, "min_size_px": 1.0})
    result = generate_auto_masklets(
        store, video.id, small_model, config=config, frames=clip.frames, frame=4,
        proposals=[clip.mask(4, 1), encode_rle(clip.mask(4, 2))],
    )  # fmt: skip
    assert result.candidates == 2 and result.dropped["duplicate"] == 1
    (auto,) = result.masklets
    masks = store.get_frame_masks(auto.id)
    assert [f.frame for f in masks] == [4, 8]  # tracked forward from frame 4 only
    np.testing.assert_array_equal(decode_rle(masks[0].rle), clip.mask(4, 2))
    assert "sav" not in auto.meta and auto.meta["first_frame"] == 4  # not SA-V's frames: no export list


def test_bad_proposals_and_frames_save_nothing(store, video, clip, small_model) -> None:
    config = AutoMaskletConfig(**LOOSE)
    cases = [
        (dict(proposals=[np.ones((H, W + 1), bool)]), InvalidEditError, "proposal 0"),
        (dict(proposals=[clip.mask(0, 1), encode_rle(np.ones((W, H), bool))]), FormatError, "proposal 1"),
        (dict(frame=T), InvalidEditError, "annotated frame"),
        (dict(frame=2), InvalidEditError, "annotated frame"),
        (dict(frames=clip.frames[:-1]), FrameSourceError, "pass the video.s own frames"),
    ]
    for kwargs, error, message in cases:
        kwargs.setdefault("frames", clip.frames)
        with pytest.raises(error, match=message):
            generate_auto_masklets(store, video.id, small_model, config=config, **kwargs)
    assert store.list_masklets(video_id=video.id) == []
    assert store.list_events(video_id=video.id, action="auto.run") == []
