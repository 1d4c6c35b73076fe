"""Synthetic videos: deterministic frames, exact masks, lazy generation, writers."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from masklet.io.synthetic import (
    SyntheticScene,
    iter_synthetic_video,
    make_synthetic_video,
    pick_video_codec,
    write_frame_folder,
    write_mp4,
)


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(24, 72, 112, num_objects=3, seed=7)


def test_same_seed_same_video_other_seed_other_video(video):
    again = make_synthetic_video(24, 72, 112, num_objects=3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(video.frames, again.frames, strict=True))
    assert np.array_equal(video.masks, again.masks)
    other = make_synthetic_video(24, 72, 112, num_objects=3, seed=8)
    assert not np.array_equal(video.frames[0], other.frames[0])
    assert video.frames[0].dtype == np.uint8 and video.frames[0].shape == (72, 112, 3)


def test_masks_are_the_visible_pixels_of_each_object(video):
    assert video.obj_ids == (1, 2, 3)
    assert video.masks.shape == (24, 3, 72, 112) and video.masks.dtype == bool
    assert (video.masks.sum(axis=1) <= 1).all()  # disjoint: occluded pixels belong to the top object
    for t in (0, 11, 23):
        frame = video.frames[t]
        for k, color in enumerate(video.colors):
            mask = video.mask(t, video.obj_ids[k])
            assert mask.any()
            assert (frame[mask] == color).all()  # exact colour inside
            x0, y0, x1, y1 = video.boxes[t, k]
            ys, xs = np.nonzero(mask)
            assert x0 - 1 <= xs.min() and xs.max() <= x1 and y0 - 1 <= ys.min() and ys.max() <= y1
        background = ~video.masks[t].any(axis=0)
        colors = np.array(video.colors)
        assert (
            not (frame[background][:, None, :] == colors[None]).all(axis=2).any()
        )  # no object colour outside


def test_objects_move_and_stay_inside(video):
    steps = np.linalg.norm(np.diff(video.centers, axis=0), axis=2)  # (T-1, N)
    assert (steps > 0.1).all() and (steps < 0.05 * 112).all()
    radii = video.scene.radii
    assert (video.centers[..., 0] >= radii - 1e-9).all() and (
        video.centers[..., 0] <= 112 - radii + 1e-9
    ).all()
    assert (video.centers[..., 1] >= radii - 1e-9).all() and (
        video.centers[..., 1] <= 72 - radii + 1e-9
    ).all()


def test_bouncing_is_a_reflection():
    scene = SyntheticScene.random(height=64, width=64, num_objects=1, seed=0)
    radius = scene.radii[0]
    span = 64 - 2 * radius
    period = np.ceil(2 * span / np.abs(scene.velocities[0]).min())
    long_run = np.stack([scene.centers_at(t)[0] for t in range(int(period) + 5)])
    assert long_run.min() >= radius - 1e-9 and long_run.max() <= 64 - radius + 1e-9
    assert np.ptp(long_run[:, 0]) > span * 0.9 or np.ptp(long_run[:, 1]) > span * 0.9


def test_generator_yields_the_same_frames_without_keeping_them(video):
    frames = iter_synthetic_video(24, 72, 112, num_objects=3, seed=7)
    for t, frame in enumerate(frames):
        assert np.array_equal(frame.image, video.frames[t])
        assert np.array_equal(frame.masks, video.masks[t])
    late = SyntheticScene.random(height=72, width=112, num_objects=3, seed=7).render(1999)
    assert late.image.shape == (72, 112, 3) and late.masks.shape == (3, 72, 112)


def test_write_mp4_from_a_generator(tmp_path):
    assert pick_video_codec(".mp4") in ("libx264", "h264", "mpeg4")
    frames = (f.image for f in iter_synthetic_video(15, 64, 80, num_objects=2, seed=1))
    path = write_mp4(frames, tmp_path / "gen.mp4", fps=15)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == 15.0
    assert len(decoded) == 15 and decoded[0].shape == (64, 80, 3)
    truth = make_synthetic_video(15, 64, 80, num_objects=2, seed=1)
    assert np.abs(decoded[14].astype(int) - truth.frames[14]).mean() < 8


def test_write_mp4_with_mpeg4_and_odd_sizes(video, tmp_path):
    path = write_mp4(video.frames[:5], tmp_path / "m4.mp4", codec="mpeg4")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    with pytest.raises(ValueError, match="even height and width"):
        write_mp4([np.zeros((63, 64, 3), np.uint8)], tmp_path / "odd.mp4")


def test_write_frame_folder(video, tmp_path):
    paths = write_frame_folder(video.frames[:3], tmp_path / "jpg")
    assert [p.name for p in paths] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    decoded = np.asarray(Image.open(paths[2]))
    assert np.abs(decoded.astype(int) - video.frames[2]).mean() < 4
    pngs = write_frame_folder(video.frames[:2], tmp_path / "png", suffix=".png", start=10)
    assert [p.name for p in pngs] == ["00010.png", "00011.png"]
    assert np.array_equal(np.asarray(Image.open(pngs[1])), video.frames[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        make_synthetic_video(0)
    with pytest.raises(ValueError, match="16x16"):
        make_synthetic_video(2, 8, 8)
