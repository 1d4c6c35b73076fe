"""engine.video_frames: the annotated-frame stride and the frames-match check, shared by phases and auto."""

from __future__ import annotations

import pytest

from masklet.engine.store import InvalidEditError, Store
from masklet.engine.video_frames import EveryNthFrame, annotation_stride, check_frames_match
from masklet.errors import FrameSourceError
from masklet.io.frames import open_frame_source
from masklet.io.synthetic import make_synthetic_video


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_stride_and_frames(store: Store) -> None:
    project = store.create_project("p")
    video = store.add_video(
        project.id, "v.mp4", fps=30.0, width=128, height=96, frame_count=11, content_hash="b" * 64
    )
    assert annotation_stride(video, None) == 5  # 30 fps -> about 6 fps
    assert annotation_stride(video, 2) == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidEditError, match="positive integer"):
            annotation_stride(video, bad)
    clip = make_synthetic_video(11, 96, 128, num_objects=1, seed=0)
    with open_frame_source(clip.frames) as frames:
        check_frames_match(video, frames)
        every = EveryNthFrame(frames, 5)
        assert len(every) == 3 and (every.get(2) == clip.frames[10]).all()
    for wrong in (clip.frames[:10], make_synthetic_video(11, 96, 130, num_objects=1, seed=0).frames):
        with (
            open_frame_source(wrong) as frames,
            pytest.raises(FrameSourceError, match="pass the video's own"),
        ):
            check_frames_match(video, frames)
