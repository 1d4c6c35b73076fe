"""A tiny SA-V-layout training folder (synthetic videos with exact masks), made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

SIZE = 128  # model input and video side: the real sam2.1_hiera_t architecture, small maps


def write_sav_folder(folder: Path, *, videos: int, frames: int, objects: int, seed: int = 0) -> Path:
    from masklet.io.formats.sav import SAV_FRAME_STRIDE, SavVideoAnnotation, write_sav_json
    from masklet.io.synthetic import make_synthetic_video, write_mp4

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        video = make_synthetic_video(frames, SIZE, SIZE, objects, seed=seed + i)
        name = f"synth_{i:03d}"
        write_mp4(video.frames, folder / f"{name}.mp4", fps=24)
        annotated = range(0, frames, SAV_FRAME_STRIDE)
        masks = [[video.masks[t, k] for t in annotated] for k in range(objects)]
        ann = SavVideoAnnotation.from_masks(masks, video_id=name, video_frame_count=frames, height=SIZE, width=SIZE)
        write_sav_json(folder / f"{name}_manual.json", ann)
    return folder


@pytest.fixture(scope="session")
def sav_folder(tmp_path_factory) -> Path:
    """Two 16-frame videos (4 annotated frames each), two objects."""
    return write_sav_folder(tmp_path_factory.mktemp("sav_train"), videos=2, frames=16, objects=2)


@pytest.fixture(scope="session")
def one_clip_folder(tmp_path_factory) -> Path:
    """One video of 3 annotated frames and one object: a clip of 3 frames is always the same clip."""
    return write_sav_folder(tmp_path_factory.mktemp("sav_one"), videos=1, frames=12, objects=1, seed=3)


@pytest.fixture(scope="session")
def four_object_folder(tmp_path_factory) -> Path:
    """One 8-frame video (2 annotated frames), four objects: single frames with many objects."""
    return write_sav_folder(tmp_path_factory.mktemp("sav_four"), videos=1, frames=8, objects=4, seed=7)
