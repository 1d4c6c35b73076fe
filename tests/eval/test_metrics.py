"""J, F and J&F: hand-computed cases, empty-mask conventions, protocols, and official reference numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from masklet.eval.metrics import (
    VideoScores,
    boundary_map,
    boundary_precision_recall,
    boundary_tolerance,
    davis_statistics,
    disk,
    evaluate_object,
    evaluate_video,
    f_score,
    j_score,
    summarize,
)
from masklet.io.formats.sav import read_sav_json
from masklet.io.masks import RleMask

DATA = Path(__file__).parents[1] / "data"


def _square(shape: tuple[int, int], r0: int, c0: int, side: int = 5) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[r0 : r0 + side, c0 : c0 + side] = True
    return m


def test_identical_masks_score_one() -> None:
    m = _square((30, 40), 5, 7, side=9)
    assert j_score(m, m) == 1.0 and f_score(m, m) == 1.0


def test_empty_mask_conventions() -> None:
    empty, m = np.zeros((20, 20), bool), _square((20, 20), 5, 5)
    assert j_score(empty, empty) == 1.0 and f_score(empty, empty) == 1.0
    assert j_score(m, empty) == 0.0 and f_score(m, empty) == 0.0
    assert j_score(empty, m) == 0.0 and f_score(empty, m) == 0.0
    assert boundary_precision_recall(empty, m) == (1.0, 0.0)
    assert boundary_precision_recall(m, empty) == (0.0, 1.0)


def test_boundary_map_is_davis_seg2bmap() -> None:
    # a 5x5 square at rows/cols 5..9 gives the 6x6 ring at rows/cols 4..9 (offset towards the origin)
    ring = np.zeros((20, 20), bool)
    ring[4, 4:10] = ring[9, 4:10] = ring[4:10, 4] = ring[4:10, 9] = True
    np.testing.assert_array_equal(boundary_map(_square((20, 20), 5, 5)), ring)
    # a mask filling the image has no boundary under seg2bmap's edge rules
    assert not boundary_map(np.ones((6, 7), bool)).any()
    # touching the right edge: the last column compares only with the pixel below
    # (expected map printed by the DAVIS-2017 code's _seg2bmap)
    right = np.zeros((5, 5), bool)
    right[1:3, 3:] = True
    expected = [[0, 0, 1, 1, 1], [0, 0, 1, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(boundary_map(right), np.array(expected, bool))


def test_disk_and_tolerance() -> None:
    np.testing.assert_array_equal(disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert disk(2).sum() == 13 and disk(8).shape == (17, 17)
    assert boundary_tolerance((480, 854)) == 8  # ceil(0.008 * 979.7)
    assert boundary_tolerance((100, 100)) == 2
    assert boundary_tolerance((20, 20)) == 1
    assert boundary_tolerance((20, 20), bound_th=3) == 3


def test_one_pixel_shift() -> None:
    gt = _square((20, 20), 5, 5)
    pred = _square((20, 20), 5, 6)
    assert j_score(pred, gt) == pytest.approx(20 / 30)  # 4 shared columns of 5 px, union 6 columns
    assert f_score(pred, gt) == 1.0  # every boundary pixel within the 1-pixel tolerance
    big_gt, big_pred = _square((100, 100), 40, 40, side=10), _square((100, 100), 40, 41, side=10)
    assert j_score(big_pred, big_gt) == pytest.approx(90 / 110)
    assert f_score(big_pred, big_gt) == 1.0


def test_far_shift_by_hand() -> None:
    gt = _square((20, 20), 5, 5)
    pred = _square((20, 20), 5, 8)  # 3 columns right; tolerance 1 pixel
    assert j_score(pred, gt) == pytest.approx(10 / 40)
    # each boundary is a 20-pixel ring; a pixel matches when the other ring is within 1 px
    # (4-neighbourhood): 4 on its top row, 4 on its bottom row, and the 2 side pixels next to
    # the other ring's top and bottom rows: 10 / 20 both ways
    assert boundary_precision_recall(pred, gt) == (0.5, 0.5)
    assert f_score(pred, gt) == 0.5
    assert f_score(pred, gt, bound_th=3) == 1.0  # a looser tolerance covers the shift


def test_void_pixels_are_ignored() -> None:
    gt, pred = _square((20, 20), 5, 5), _square((20, 20), 5, 6)
    void = np.zeros((20, 20), bool)
    void[:, 5] = void[:, 10] = True  # the two columns where they disagree
    assert j_score(pred, gt, void_mask=void) == 1.0


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((DATA / "eval" / "reference_scores.json").read_text())


def test_frame_scores_equal_the_official_code(reference: dict) -> None:
    auto = read_sav_json(DATA / "sav" / "sav_000001_auto.json")
    for case in reference["frame_cases"]:
        (tp, o), (tg, o2) = case["pred"], case["gt"]
        pred, gt = auto.masklets[o].mask(tp), auto.masklets[o2].mask(tg)
        assert j_score(pred, gt) == pytest.approx(case["J"], abs=1e-12), case
        assert f_score(pred, gt) == pytest.approx(case["F"], abs=1e-12), case


def test_video_scores_equal_the_sav_evaluator(reference: dict) -> None:
    case = reference["video_case"]
    manual = read_sav_json(DATA / "sav" / "sav_000001_manual.json")
    last = manual.num_annotated_frames - 1
    gt, pred = {}, {}
    for m in manual.masklets:
        gt[m.masklet_id] = {4 * t: m.rles[t] for t in case["frames"]}
        pred[m.masklet_id] = {4 * t: m.rles[min(t + case["shift"], last)] for t in case["frames"]}
        for t in case["empty"].get(str(m.masklet_id), []):
            pred[m.masklet_id][4 * t] = RleMask.empty(*manual.size)
    for key, skip in (("skip", True), ("noskip", False)):
        scores = evaluate_video(pred, gt, video_id="sav_000001", skip_first_and_last=skip)
        expected = case["objects"][key]
        assert [str(o.obj_id) for o in scores.objects] == list(expected)
        for obj in scores.objects:
            ref = expected[str(obj.obj_id)]
            assert len(obj.frames) == ref["frames"]  # object 3 is scored from its first appearance on
            assert obj.j_mean == pytest.approx(ref["J"], abs=1e-12)
            assert obj.f_mean == pytest.approx(ref["F"], abs=1e-12)


def _track(frames: int, appear: int | None, shape: tuple[int, int] = (12, 12)) -> dict[int, np.ndarray]:
    return {
        f: _square(shape, 3, 3) if appear is not None and f >= appear else np.zeros(shape, bool)
        for f in range(frames)
    }


def test_protocols_on_late_and_absent_objects() -> None:
    gt = _track(6, appear=3)
    empty = _track(6, appear=None)
    sav = evaluate_object(empty, gt, protocol="sav")
    assert sav is not None and sav.frames == (3, 4) and sav.j == (0.0, 0.0)  # frames 1, 2 not scored yet
    davis = evaluate_object(empty, gt, protocol="davis")
    assert davis is not None and davis.frames == (1, 2, 3, 4) and davis.j_mean == 0.5 and davis.f_mean == 0.5
    # a prediction that appears early starts the object's scoring there
    early = evaluate_object(_track(6, appear=2), gt, protocol="sav")
    assert early is not None and early.frames == (2, 3, 4) and early.j == (0.0, 1.0, 1.0)
    # an object never in the gt: SA-V leaves it out, DAVIS scores its empty frames as correct
    assert evaluate_object(_track(6, appear=2), empty, protocol="sav") is None
    assert evaluate_object(empty, empty, protocol="davis").j_mean == 1.0
    no_skip = evaluate_object(gt, gt, skip_first_and_last=False)
    assert no_skip is not None and no_skip.frames == (3, 4, 5) and no_skip.jf == 1.0


def test_missing_predictions_are_empty_and_summaries_weight_objects() -> None:
    gt = {1: _track(5, appear=0), 2: _track(5, appear=0)}
    video_a = evaluate_video({1: gt[1]}, gt, video_id="a")  # object 2 not predicted at all
    assert [o.obj_id for o in video_a.objects] == [1, 2]
    assert video_a.objects[0].jf == 1.0 and video_a.objects[1].jf == 0.0 and video_a.jf == 0.5
    video_b = evaluate_video({7: _track(5, appear=0)}, {7: _track(5, appear=0)}, video_id="b")
    total = summarize([video_a, video_b])
    assert (total.num_objects, total.num_videos) == (3, 2)
    assert total.j == pytest.approx(2 / 3) and total.jf == pytest.approx(2 / 3)  # not (0.5 + 1) / 2
    assert np.isnan(VideoScores("c", ()).jf)


def test_davis_statistics() -> None:
    mean, recall, decay = davis_statistics([1.0, 1.0, 0.0, 0.0])
    assert (mean, recall, decay) == (0.5, 0.5, 1.0)
    mean, recall, decay = davis_statistics([0.9] * 10)
    assert mean == pytest.approx(0.9) and recall == 1.0 and decay == pytest.approx(0.0)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="one size"):
        j_score(np.zeros((3, 3), bool), np.zeros((3, 4), bool))
