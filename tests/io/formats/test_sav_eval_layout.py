"""SA-V evaluation layout: {video}/{obj:03d}/{frame:05d}.png, one binary PNG per object per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet.errors import FormatError
from masklet.io.formats.sav import read_sav_json
from masklet.io.formats.sav_eval import list_sav_eval_videos, read_sav_eval_video, write_sav_eval_video
from masklet.io.masks import RleMask, read_binary_png, write_binary_png, write_label_png

MANUAL = Path(__file__).parents[2] / "data" / "sav" / "sav_000001_manual.json"


def test_sav_masks_round_trip_through_the_layout(tmp_path: Path) -> None:
    ann = read_sav_json(MANUAL)
    masks = {obj: dict(list(frames.items())[110:116]) for obj, frames in ann.to_eval_masks().items()}
    write_sav_eval_video(tmp_path, ann.video_id, masks)
    video = tmp_path / "sav_000001"
    assert sorted(p.name for p in video.iterdir()) == ["000", "001", "002", "003", "004"]
    assert sorted(p.name for p in (video / "003").iterdir()) == [f"{f:05d}.png" for f in range(440, 464, 4)]
    assert list_sav_eval_videos(tmp_path) == ["sav_000001"]
    back = read_sav_eval_video(video, num_frames=483, size=(848, 480))
    assert back == masks  # every object, frame and mask (RLEs compare by value)
    assert back[3][448].is_empty and not back[3][452].is_empty  # object 3 appears on annotated frame 113


def test_overlapping_objects_stay_separate(tmp_path: Path) -> None:
    a = np.zeros((8, 8), bool)
    a[1:6, 1:6] = True
    b = np.zeros((8, 8), bool)
    b[3:8, 3:8] = True  # overlaps a
    write_sav_eval_video(tmp_path, "v", {1: {0: a}, 2: {0: RleMask.from_mask(b)}})
    back = read_sav_eval_video(tmp_path / "v")
    np.testing.assert_array_equal(back[1][0].decode(), a)
    np.testing.assert_array_equal(back[2][0].decode(), b)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    mask = np.ones((4, 4), bool)
    with pytest.raises(ValueError, match="3-digit"):
        write_sav_eval_video(tmp_path, "v", {0: {0: mask}, 1000: {0: mask}})
    assert list(tmp_path.iterdir()) == []


def test_reader_errors(tmp_path: Path) -> None:
    video = tmp_path / "v"
    write_binary_png(video / "000" / "00000.png", np.ones((4, 5), bool))
    write_binary_png(video / "000" / "00008.png", np.ones((4, 5), bool))
    with pytest.raises(FormatError, match=r"00008.png: frame 8 is past the end of the 5-frame video"):
        read_sav_eval_video(video, num_frames=5)
    with pytest.raises(FormatError, match=r"mask is 4x5 \(HxW\), expected 5x4"):
        read_sav_eval_video(video, size=(5, 4))
    write_label_png(video / "001" / "00000.png", np.array([[0, 1], [2, 0]], np.uint8))
    with pytest.raises(FormatError, match="3 distinct values"):
        read_sav_eval_video(video)
    (video / "001" / "00000.png").unlink()
    (video / "001" / "first.png").write_bytes(b"")
    with pytest.raises(FormatError, match="first.png: a file name must be a number"):
        read_sav_eval_video(video)
    (video / "001" / "first.png").unlink()
    with pytest.raises(FormatError, match="holds no PNG masks"):
        read_sav_eval_video(video)
    (video / "001").rmdir()
    (video / "obj").mkdir()
    with pytest.raises(FormatError, match="obj: a folder name must be a number"):
        read_sav_eval_video(video)


def test_reads_grayscale_ground_truth(tmp_path: Path) -> None:
    mask = np.zeros((6, 6), bool)
    mask[2:4, 1:5] = True
    (tmp_path / "v" / "000").mkdir(parents=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(tmp_path / "v" / "000" / "00004.png")
    back = read_sav_eval_video(tmp_path / "v")
    np.testing.assert_array_equal(back[0][4].decode(), mask)
    np.testing.assert_array_equal(read_binary_png(tmp_path / "v" / "000" / "00004.png"), mask)
