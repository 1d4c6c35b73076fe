"""DAVIS folders: {video}/{frame:05d}.png palette label maps with 0 background and 255 void."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet.errors import FormatError
from masklet.io.formats.davis import labels_from_masks, masks_from_labels, read_davis_video, write_davis_video
from masklet.io.masks import RleMask, write_label_png


def _masks() -> dict[int, dict[int, np.ndarray]]:
    h, w = 10, 14
    out: dict[int, dict[int, np.ndarray]] = {1: {}, 2: {}}
    for frame in range(3):
        a = np.zeros((h, w), bool)
        a[1:5, frame : frame + 4] = True
        b = np.zeros((h, w), bool)
        b[6:9, 5:12] = True
        out[1][frame] = a
        if frame != 1:  # object 2 absent on frame 1
            out[2][frame] = b
    return out


def test_round_trip_with_void(tmp_path: Path) -> None:
    masks = _masks()
    void = np.zeros((10, 14), bool)
    void[9, :] = True
    write_davis_video(tmp_path / "bear", masks, size=(10, 14), void={2: void})
    assert sorted(p.name for p in (tmp_path / "bear").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    with Image.open(tmp_path / "bear" / "00002.png") as image:
        assert image.mode == "P"
        assert np.unique(np.asarray(image)).tolist() == [0, 1, 2, 255]
    video = read_davis_video(tmp_path / "bear", num_frames=3)
    assert video.size == (10, 14) and video.frames == (0, 1, 2) and video.obj_ids == (1, 2)
    for obj, frames in masks.items():
        for frame, mask in frames.items():
            np.testing.assert_array_equal(video.masks[obj][frame].decode(), mask)
    assert video.masks[2][1].is_empty  # absent: an empty RLE, as in SA-V
    assert list(video.void) == [2]
    np.testing.assert_array_equal(video.void[2].decode(), void)
    assert video.labels(2)[9, 0] == 255 and video.labels(0)[2, 1] == 1


def test_overlap_lowest_id_on_top() -> None:
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.ones((4, 4), bool)
    labels = labels_from_masks({3: b, 1: a}, size=(4, 4))
    assert labels[0, 0] == 1 and labels[3, 3] == 3
    separated = masks_from_labels(labels)
    np.testing.assert_array_equal(separated[1], a)
    np.testing.assert_array_equal(separated[3], ~a)
    with pytest.raises(ValueError, match="1..254"):
        labels_from_masks({255: a}, size=(4, 4))


def test_rles_and_explicit_frames(tmp_path: Path) -> None:
    m = np.zeros((5, 6), bool)
    m[1:3, 2:4] = True
    write_davis_video(tmp_path / "v", {4: {1: RleMask.from_mask(m)}}, size=(5, 6), frames=(0, 1, 2))
    video = read_davis_video(tmp_path / "v")
    assert video.frames == (0, 1, 2) and video.obj_ids == (4,)
    assert video.masks[4][0].is_empty and video.masks[4][1].area == 4


def test_reader_errors(tmp_path: Path) -> None:
    v = tmp_path / "v"
    write_label_png(v / "00000.png", np.zeros((4, 4), np.uint8))
    write_label_png(v / "00003.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(FormatError, match="00003.png: frame 3 is past the end of the 2-frame video"):
        read_davis_video(v, num_frames=2)
    write_label_png(v / "00001.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(FormatError, match=r"00001.png: label map is 5x4 \(HxW\), the first frame is 4x4"):
        read_davis_video(v)
    Image.new("RGB", (4, 4)).save(v / "00001.png")
    with pytest.raises(FormatError, match="RGB image; expected an indexed"):
        read_davis_video(v)
    (v / "00001.png").unlink()
    (v / "frame.png").write_bytes(b"")
    with pytest.raises(FormatError, match="must be a number"):
        read_davis_video(v)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no numbered PNG"):
        read_davis_video(tmp_path / "empty")


def test_failed_write_leaves_old_folder(tmp_path: Path) -> None:
    write_davis_video(tmp_path / "v", _masks(), size=(10, 14))
    before = {p.name: p.read_bytes() for p in (tmp_path / "v").iterdir()}
    with pytest.raises(ValueError, match="frame size"):
        write_davis_video(tmp_path / "v", {1: {0: np.ones((3, 3), bool)}}, size=(10, 14), overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "v").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["v"]
