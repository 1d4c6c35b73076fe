"""SA-V JSON: import → export of the release files, derived fields, from_masks and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from masklet.errors import FormatError
from masklet.io.formats.sav import (
    SAV_FRAME_STRIDE,
    SavVideoAnnotation,
    masklet_stats,
    read_sav_json,
    write_sav_json,
)
from masklet.io.masks import RleMask, decode_rle

SAV = Path(__file__).parents[2] / "data" / "sav"
MANUAL = SAV / "sav_000001_manual.json"
AUTO = SAV / "sav_000001_auto.json"
FIELDS = [
    "video_id", "video_duration", "video_frame_count", "video_height", "video_width", "video_resolution",
    "video_environment", "video_split", "masklet", "masklet_id", "masklet_size_rel", "masklet_size_abs",
    "masklet_size_bucket", "masklet_visibility_changes", "masklet_first_appeared_frame", "masklet_frame_count",
    "masklet_edited_frame_count", "masklet_type", "masklet_stability_score", "masklet_num",
]  # fmt: skip


@pytest.fixture(scope="module")
def manual() -> SavVideoAnnotation:
    return read_sav_json(MANUAL)


@pytest.fixture(scope="module")
def auto() -> SavVideoAnnotation:
    return read_sav_json(AUTO)


@pytest.mark.parametrize("path", [MANUAL, AUTO], ids=["manual", "auto"])
def test_import_export_reproduces_the_file(path: Path, tmp_path: Path) -> None:
    out = write_sav_json(tmp_path / path.name, read_sav_json(path))
    assert out.read_bytes() == path.read_bytes()  # every field, value, type and key order
    original, exported = json.loads(path.read_text()), json.loads(out.read_text())
    assert list(exported) == FIELDS == list(original)
    for key in FIELDS:
        assert exported[key] == original[key], key
        assert json.dumps(exported[key]) == json.dumps(original[key]), key  # int stays int, 0.0 stays 0.0
    for t, (row_a, row_b) in enumerate(zip(original["masklet"], exported["masklet"], strict=True)):
        for n, (rle_a, rle_b) in enumerate(zip(row_a, row_b, strict=True)):
            assert np.array_equal(decode_rle(rle_a), decode_rle(rle_b)), (t, n)


def test_typed_fields(manual: SavVideoAnnotation, auto: SavVideoAnnotation) -> None:
    assert manual.video_id == "sav_000001" and manual.size == (848, 480)
    assert manual.num_annotated_frames == 121 and len(manual.masklets) == 5 and len(auto.masklets) == 9
    assert manual.annotated_frames[:3] == (0, 4, 8) and manual.annotated_frames[-1] == 480
    assert SAV_FRAME_STRIDE * (manual.num_annotated_frames - 1) < manual.video_frame_count
    m3 = manual.masklets[3]
    assert m3.masklet_id == 3 and m3.first_appeared_frame == 113.0 and m3.masklet_type == "manual"
    assert m3.stability_score is None and len(m3.rles) == 121
    assert m3.rles[112].is_empty and not m3.rles[113].is_empty
    assert auto.masklets[1].stability_score is not None and len(auto.masklets[1].stability_score) == 121
    assert auto.masklets[1].stability_score[0] == pytest.approx(0.999616265296936)
    assert manual.frame_masks(0).shape == (5, 848, 480)
    eval_masks = manual.to_eval_masks()
    assert sorted(eval_masks) == [0, 1, 2, 3, 4] and eval_masks[3][452] == m3.rles[113]


def test_masklet_stats_definitions() -> None:
    stats = masklet_stats([0, 0, 10, 20, 0, 30], resolution=100)
    assert stats.size_abs == 20.0 and stats.size_rel == 0.2 and stats.size_bucket == "small"
    assert stats.first_appeared_frame == 2 and stats.visibility_changes == 2 and stats.frame_count == 6
    assert masklet_stats([1023], resolution=10**6).size_bucket == "small"
    assert masklet_stats([1024], resolution=10**6).size_bucket == "medium"
    assert masklet_stats([9215], resolution=10**6).size_bucket == "medium"
    assert masklet_stats([9216], resolution=10**6).size_bucket == "large"
    with pytest.raises(ValueError, match="empty on every annotated frame"):
        masklet_stats([0, 0], resolution=4)


def _rebuild(ann: SavVideoAnnotation, *, auto: bool) -> SavVideoAnnotation:
    return SavVideoAnnotation.from_masks(
        [m.rles for m in ann.masklets],
        video_id=ann.video_id,
        video_frame_count=int(ann.video_frame_count),
        height=ann.size[0],
        width=ann.size[1],
        masklet_ids=[m.masklet_id for m in ann.masklets],
        masklet_type="auto" if auto else "manual",
        edited_frame_counts=[m.edited_frame_count for m in ann.masklets],
        stability_scores=[m.stability_score for m in ann.masklets] if auto else None,
        environment=ann.video_environment,
        split=ann.video_split,
    )


def test_from_masks_reproduces_the_auto_file(auto: SavVideoAnnotation) -> None:
    assert _rebuild(auto, auto=True).to_json_dict() == json.loads(AUTO.read_text())


def test_from_masks_reproduces_the_manual_fields(manual: SavVideoAnnotation) -> None:
    rebuilt = _rebuild(manual, auto=False)
    for key in ("video_duration", "video_frame_count", "video_height", "video_width", "video_resolution"):
        assert getattr(rebuilt, key) == getattr(manual, key)
    for ours, theirs in zip(rebuilt.masklets, manual.masklets, strict=True):
        # the manual release rounds sizes to 10 decimals and writes frame indices as floats
        assert round(ours.size_abs, 10) == theirs.size_abs and round(ours.size_rel, 10) == theirs.size_rel
        assert ours.first_appeared_frame == theirs.first_appeared_frame
        assert ours.visibility_changes == theirs.visibility_changes
        assert (ours.size_bucket, ours.frame_count) == (theirs.size_bucket, theirs.frame_count)
        assert ours.rles == theirs.rles


def test_from_masks_with_arrays_round_trips(tmp_path: Path) -> None:
    h, w, frames = 12, 16, 5
    masks = np.zeros((2, frames, h, w), dtype=bool)
    masks[0, :, 2:5, 3:9] = True
    masks[1, 2:4, 6:10, 1:3] = True  # appears on annotated frame 2, gone on 4
    ann = SavVideoAnnotation.from_masks(list(masks), video_id="v", video_frame_count=19, height=h, width=w)
    assert ann.video_duration == 19 / 24 and ann.video_resolution == h * w
    m1 = ann.masklets[1]
    assert (m1.first_appeared_frame, m1.visibility_changes, m1.size_abs) == (2, 1, 8.0)
    back = read_sav_json(write_sav_json(tmp_path / "v_manual.json", ann))
    assert back == ann
    np.testing.assert_array_equal(back.frame_masks(2), masks[:, 2])
    with pytest.raises(FormatError, match="past the end"):
        SavVideoAnnotation.from_masks(list(masks), video_id="v", video_frame_count=16, height=h, width=w)
    with pytest.raises(ValueError, match="mask shape"):
        SavVideoAnnotation.from_masks(list(masks), video_id="v", video_frame_count=19, height=h, width=w + 1)


def _write_broken(tmp_path: Path, edit) -> Path:
    data = json.loads(MANUAL.read_text())
    edit(data)
    path = tmp_path / "broken_manual.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("masklet_size_rel"), "missing field(s) masklet_size_rel"),
        (lambda d: d.update(masklet_num=6), "masklet_id has 5 entries but masklet_num is 6"),
        (lambda d: d["masklet_id"].__setitem__(2, "two"), "masklet_id[2]: expected int, got str"),
        (lambda d: d["masklet"][7][1].update(size=[848, 481]), "masklet[7][1]: RLE size is [848, 481]"),
        (lambda d: d["masklet"][7][1].update(counts="P`]<1"), "masklet[7][1]: RLE runs cover 407041"),
        (lambda d: d["masklet"][9].pop(), "masklet[9] has 4 RLEs but masklet_num is 5"),
        (
            lambda d: d.update(video_frame_count=400.0),
            "reach video frame 480, past the end of a 400-frame video",
        ),
        (
            lambda d: d.update(masklet_stability_score=[[1.0] * 5] * 3),
            "masklet_stability_score: expected 5 nulls",
        ),
        (lambda d: d.update(video_height=848.5), "video_height must be a whole number"),
    ],
)
def test_malformed_files_raise_format_error(tmp_path: Path, edit, message: str) -> None:
    path = _write_broken(tmp_path, edit)
    with pytest.raises(FormatError) as err:
        read_sav_json(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_truncated_and_non_object_files(tmp_path: Path) -> None:
    cut = tmp_path / "cut.json"
    cut.write_text(MANUAL.read_text()[:5000])
    with pytest.raises(FormatError, match="cut.json: malformed JSON at line 1"):
        read_sav_json(cut)
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(FormatError, match="holds a JSON object"):
        read_sav_json(lst)


def test_failed_write_leaves_no_file(tmp_path: Path, manual: SavVideoAnnotation) -> None:
    bad = SavVideoAnnotation.from_masks(
        [[RleMask.from_mask(np.ones((2, 2), bool))]], video_id="v", video_frame_count=1, height=2, width=2
    )
    bad = SavVideoAnnotation(
        **{**{k: getattr(bad, k) for k in bad.__slots__}, "video_duration": float("nan")}
    )
    with pytest.raises(ValueError):
        write_sav_json(tmp_path / "v.json", bad)
    assert list(tmp_path.iterdir()) == []
