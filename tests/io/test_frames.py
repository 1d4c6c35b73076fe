"""Frame sources: video files (exact seeking), image folders, arrays, live streams, dispatch."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from masklet.errors import FrameSourceError
from masklet.io.frames import (
    ArraySource,
    FrameCache,
    FrameSource,
    ImageFolderSource,
    StreamSource,
    VideoFileSource,
    open_frame_source,
)
from masklet.io.synthetic import make_synthetic_video, write_frame_folder, write_mp4

NUM_FRAMES, HEIGHT, WIDTH, KEYINT = 40, 64, 96, 8
CLIP = Path(__file__).resolve().parents[1] / "data" / "videos" / "bedroom_1s.mp4"


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame, decoded straight through with plain PyAV (the reference)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(NUM_FRAMES, HEIGHT, WIDTH, num_objects=2, seed=3)


@pytest.fixture(scope="module")
def mp4(video, tmp_path_factory) -> Path:
    return write_mp4(
        video.frames, tmp_path_factory.mktemp("mp4") / "clip.mp4", fps=24, keyframe_interval=KEYINT
    )


@pytest.fixture(scope="module")
def reference(mp4) -> list[np.ndarray]:
    return decode_all(mp4)


def count_seeks(source: VideoFileSource, monkeypatch) -> list[int]:
    seeks: list[int] = []
    real = source._seek

    def spy(frame: int) -> None:
        seeks.append(frame)
        real(frame)

    monkeypatch.setattr(source, "_seek", spy)
    return seeks


# --- video files ------------------------------------------------------------------------------


def test_mp4_round_trip_metadata_and_pixels(mp4, video, reference):
    with VideoFileSource(mp4) as source:
        assert (len(source), source.num_frames, source.height, source.width) == (
            NUM_FRAMES,
            NUM_FRAMES,
            HEIGHT,
            WIDTH,
        )
        assert source.fps == pytest.approx(24.0)
        assert not source.is_live
        assert source.frame_index.keyframes == (0, 8, 16, 24, 32)
        frame = source.get(5)
        assert frame.dtype == np.uint8 and frame.shape == (HEIGHT, WIDTH, 3)
        # lossy, but close to what was encoded, and each object's centre shows its colour
        assert np.abs(frame.astype(int) - video.frames[5]).mean() < 8
        for k, color in enumerate(video.colors):
            x, y = video.centers[5, k].astype(int)
            if video.masks[5, k, y, x]:
                assert np.abs(frame[y, x].astype(int) - color).max() < 40
        assert len(reference) == NUM_FRAMES


def test_random_access_equals_sequential_decode(mp4, reference):
    order = np.random.default_rng(0).permutation(NUM_FRAMES)
    with VideoFileSource(mp4, max_cached_frames=2) as source:
        for frame in order:
            assert np.array_equal(source.get(int(frame)), reference[frame]), frame
        assert [np.array_equal(a, b) for a, b in zip(source, reference, strict=True)] == [True] * NUM_FRAMES


def test_seeking_backwards_and_forwards(mp4, reference, monkeypatch):
    with VideoFileSource(mp4, max_cached_frames=1) as source:
        seeks = count_seeks(source, monkeypatch)
        for frame in [30, 2, 39, 0, 17, 16, 15, 25, 26, 8, 7, 39]:
            assert np.array_equal(source.get(frame), reference[frame]), frame
        # each target is reached from the keyframe at or before it (0 rewinds the file)
        assert seeks == [24, 0, 32, 0, 16, 16, 8, 24, 8, 0, 32]


def test_sequential_access_does_not_seek_every_frame(mp4, reference, monkeypatch):
    with VideoFileSource(mp4, max_cached_frames=0) as source:
        seeks = count_seeks(source, monkeypatch)
        for frame in range(3, NUM_FRAMES):
            assert np.array_equal(source.get(frame), reference[frame])
        assert seeks == [0]
        source.get(NUM_FRAMES - 1)  # no cache, decoder past it: one seek to its keyframe
        assert seeks == [0, 32]


def test_reverse_access_reuses_the_frames_a_seek_decoded(mp4, reference, monkeypatch):
    with VideoFileSource(mp4, max_cached_frames=KEYINT) as source:
        seeks = count_seeks(source, monkeypatch)
        for frame in reversed(range(NUM_FRAMES)):
            assert np.array_equal(source.get(frame), reference[frame])
        assert seeks == [32, 24, 16, 8, 0]


class _SeekTooFar:
    """A container whose seeks land on the last keyframe, like a demuxer that overshoots."""

    def __init__(self, container, stream, pts):
        self._container, self._stream, self._pts = container, stream, pts

    def seek(self, offset, **kwargs):
        self._container.seek(self._pts, stream=self._stream, backward=True)

    def __getattr__(self, name):
        return getattr(self._container, name)


def test_a_seek_past_the_target_rewinds(mp4, reference, monkeypatch):
    with VideoFileSource(mp4, max_cached_frames=1) as source:
        source.get(0)
        source._container = _SeekTooFar(source._container, source._stream, source.frame_index.pts[32])
        seeks = count_seeks(source, monkeypatch)
        assert np.array_equal(source.get(20), reference[20])
        assert seeks == [16, 0]  # landed on 32, so decoded again from the start


def test_packet_index_that_disagrees_with_the_decoder_is_rebuilt(mp4, reference, monkeypatch, caplog):
    with VideoFileSource(mp4) as source:
        good = source._scan_packets()
        shifted = [p + 1 for p in good.pts]  # timestamps the decoder will never produce
        wrong = type(good).from_timestamps(shifted, [shifted[k] for k in good.keyframes], from_packets=True)
        monkeypatch.setattr(source, "_scan_packets", lambda: wrong)
        with caplog.at_level(logging.WARNING):
            assert np.array_equal(source.get(13), reference[13])
        assert "re-indexing" in caplog.text
        assert source.frame_index.pts == good.pts and not source.frame_index.from_packets


def test_frame_cache_stays_bounded(mp4):
    with VideoFileSource(mp4, max_cached_frames=3) as source:
        for frame in np.random.default_rng(1).integers(0, NUM_FRAMES, 30):
            source.get(int(frame))
            assert len(source._cache) <= 3
        assert source._cache.keys()[-1] == frame
    cache = FrameCache(2)
    for i in range(5):
        cache.put(i, np.zeros(1))
    assert cache.get(3) is not None and cache.get(1) is None
    cache.put(9, np.zeros(1))
    assert cache.keys() == [3, 9]  # 4 was the least recently used


def test_returned_frames_are_copies(mp4, reference):
    with VideoFileSource(mp4) as source:
        first = source.get(4)
        first[:] = 0
        assert np.array_equal(source.get(4), reference[4])


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mov"])
def test_other_containers(video, tmp_path, suffix):
    path = write_mp4(video.frames[:12], tmp_path / f"clip{suffix}", fps=10, keyframe_interval=4)
    reference = decode_all(path)
    with open_frame_source(path, max_cached_frames=1) as source:
        assert isinstance(source, VideoFileSource)
        assert (len(source), source.width, source.height, source.fps) == (12, WIDTH, HEIGHT, 10.0)
        for frame in [11, 0, 6, 5, 9, 1]:
            assert np.array_equal(source.get(frame), reference[frame])


def test_variable_frame_rate_index_is_exact(video, tmp_path):
    times = np.cumsum(np.r_[0.0, np.random.default_rng(5).uniform(0.01, 0.12, 29)])
    path = write_mp4(video.frames[:30], tmp_path / "vfr.mp4", keyframe_interval=7, frame_times=times)
    reference = decode_all(path)
    with VideoFileSource(path, max_cached_frames=1) as source:
        assert len(source) == 30
        assert [source.frame_time(i) for i in range(30)] == pytest.approx(times, abs=1e-3)
        assert source.fps == pytest.approx(29 / times[-1], rel=0.1)
        for frame in np.random.default_rng(2).permutation(30):
            assert np.array_equal(source.get(int(frame)), reference[frame])


def test_stream_without_timestamps_is_counted(video, tmp_path):
    path = tmp_path / "raw.h264"
    with av.open(str(path), mode="w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for image in video.frames[:15]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    reference = decode_all(path)
    with VideoFileSource(path, max_cached_frames=1) as source:
        assert len(source) == 15 and source.frame_index.pts is None
        for frame in [3, 14, 0, 7, 8, 2]:
            assert np.array_equal(source.get(frame), reference[frame])


def test_metadata_disagreeing_with_packets_is_corrected_by_decoding(video, tmp_path, caplog):
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for image in video.frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])  # header intact (it states 40 frames), tail gone
    with caplog.at_level(logging.WARNING), VideoFileSource(path) as source:
        count = len(source)
        assert 0 < count < NUM_FRAMES
        assert source.get(count - 1).shape == (HEIGHT, WIDTH, 3)
        with pytest.raises(FrameSourceError, match=f"valid frames are 0..{count - 1}"):
            source.get(count)
    assert "states 40 frames" in caplog.text


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated: the index (moov) at the end is gone
        lambda data: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),  # garbage
        lambda data: b"",  # empty file
        lambda data: data[:2000] + bytes(b ^ 0xFF for b in data[2000:6000]) + data[6000:],  # first frame
    ],
    ids=["truncated", "garbage", "empty-file", "corrupt-first-frame"],
)
def test_corrupt_video_fails_at_open(mp4, tmp_path, damage):
    path = tmp_path / "broken.mp4"
    path.write_bytes(damage(mp4.read_bytes()))
    with pytest.raises(FrameSourceError, match="broken.mp4"):
        VideoFileSource(path)


def test_video_without_frames_fails_at_open(tmp_path):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
        container.mux(stream.encode(None))
    with pytest.raises(FrameSourceError, match="empty.mp4"):
        VideoFileSource(path)


def test_missing_file_and_folder_given_as_video(tmp_path):
    with pytest.raises(FrameSourceError, match="nothere.mp4: no such file"):
        VideoFileSource(tmp_path / "nothere.mp4")
    with pytest.raises(FrameSourceError, match="is a folder"):
        VideoFileSource(tmp_path)


def test_index_errors_name_the_valid_range(mp4):
    source = VideoFileSource(mp4)
    with pytest.raises(
        FrameSourceError, match=r"clip.mp4: frame 40 is out of range; valid frames are 0\.\.39"
    ):
        source.get(40)
    with pytest.raises(FrameSourceError, match="frame -1 is out of range"):
        source.get(-1)
    with pytest.raises(FrameSourceError, match="must be an integer"):
        source.get(1.5)
    assert source.get(np.int64(39)).shape == (HEIGHT, WIDTH, 3)
    source.close()
    source.close()  # idempotent
    with pytest.raises(FrameSourceError, match="closed"):
        source.get(0)


def test_real_clip(monkeypatch):
    """The first second of bedroom.mp4 at half size (tools/make_test_clip.py), keyframes every 10."""
    reference = decode_all(CLIP)
    with VideoFileSource(CLIP, max_cached_frames=2) as source:
        assert (len(source), source.width, source.height, source.fps) == (30, 480, 270, 30.0)
        assert source.frame_index.keyframes == (0, 10, 20)
        seeks = count_seeks(source, monkeypatch)
        for frame in [29, 0, 15, 14, 16, 21, 9]:
            assert np.array_equal(source.get(frame), reference[frame])
        assert seeks == [20, 0, 10, 20, 0]  # 14 was cached by the seek to 15
        assert source.get(0).std() > 20  # a real picture, not a flat frame


# --- image folders ----------------------------------------------------------------------------


def test_folder_orders_integer_names_numerically(video, tmp_path):
    for number in [10, 2, 1, 0]:
        Image.fromarray(video.frames[number]).save(tmp_path / f"{number}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    with ImageFolderSource(tmp_path, fps=12) as source:
        assert [p.name for p in source.paths] == ["0.png", "1.png", "2.png", "10.png"]
        assert (len(source), source.height, source.width, source.fps) == (4, HEIGHT, WIDTH, 12)
        assert np.array_equal(source.get(3), video.frames[10])  # png: lossless
        assert np.array_equal(source.get(2), video.frames[2])


def test_folder_falls_back_to_natural_order(video, tmp_path):
    for number in [10, 2, 1]:
        Image.fromarray(video.frames[number]).save(tmp_path / f"frame_{number}.png")
    source = ImageFolderSource(tmp_path)
    assert [p.name for p in source.paths] == ["frame_1.png", "frame_2.png", "frame_10.png"]
    assert np.array_equal(source.get(2), video.frames[10])


def test_folder_of_jpegs_matches_pil_and_stays_cached_within_bounds(video, tmp_path):
    paths = write_frame_folder(video.frames[:12], tmp_path)
    assert [p.name for p in paths[:2]] == ["00000.jpg", "00001.jpg"]
    source = open_frame_source(tmp_path, max_cached_frames=3)
    assert isinstance(source, ImageFolderSource)
    for frame in [11, 0, 5, 5, 7, 2]:
        assert np.array_equal(source.get(frame), np.asarray(Image.open(paths[frame]).convert("RGB")))
        assert len(source._cache) <= 3
    with pytest.raises(FrameSourceError, match=r"valid frames are 0\.\.11"):
        source.get(12)


def test_folder_with_mixed_sizes_names_the_file(video, tmp_path):
    write_frame_folder(video.frames[:3], tmp_path)
    Image.new("RGB", (WIDTH + 2, HEIGHT)).save(tmp_path / "00003.jpg")
    with pytest.raises(FrameSourceError, match=r"00003.jpg: is 98x64 but 00000.jpg is 96x64"):
        ImageFolderSource(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(FrameSourceError, match="no frames found"):
        ImageFolderSource(tmp_path)
    with pytest.raises(FrameSourceError, match="does not exist"):
        ImageFolderSource(tmp_path / "missing")


def test_unreadable_frame_file(tmp_path):
    (tmp_path / "0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FrameSourceError, match="0.jpg: cannot be read as an image"):
        ImageFolderSource(tmp_path)


# --- arrays -----------------------------------------------------------------------------------


def test_array_source(video):
    source = ArraySource(video.frames[:5], fps=5)
    assert (len(source), source.height, source.width, source.fps) == (5, HEIGHT, WIDTH, 5)
    got = source.get(4)
    assert np.array_equal(got, video.frames[4])
    got[:] = 0  # a copy: the caller's frames are untouched
    assert np.array_equal(source.get(4), video.frames[4])
    stacked = open_frame_source(np.stack(video.frames[:3]))
    assert len(stacked) == 3 and np.array_equal(stacked.get(2), video.frames[2])
    pil = open_frame_source([Image.fromarray(video.frames[1])])
    assert np.array_equal(pil.get(0), video.frames[1])


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], "empty"),
        ([np.zeros((8, 8, 3), np.float32)], "expected dtype uint8, got float32"),
        ([np.zeros((8, 8), np.uint8)], r"shape \(8, 8\)"),
        ([np.zeros((8, 8, 4), np.uint8)], r"shape \(8, 8, 4\)"),
        (
            [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)],
            "frame 1: is 10x8 but frame 0 is 8x8",
        ),
        (["a"], "got str"),
    ],
)
def test_array_source_validation(frames, message):
    with pytest.raises(FrameSourceError, match=message):
        ArraySource(frames)


# --- live streams -----------------------------------------------------------------------------


def test_stream_window_and_errors(video):
    closed = []

    def camera():
        try:
            yield from video.frames[:10]
        finally:
            closed.append(True)

    source = StreamSource(camera(), max_buffered=3, fps=30)
    assert source.is_live and source.num_frames is None and source.num_arrived == 1
    assert (source.height, source.width) == (HEIGHT, WIDTH) and bool(source)
    with pytest.raises(TypeError, match="unknown until it ends"):
        len(source)
    assert np.array_equal(source.get(0), video.frames[0])
    with pytest.raises(FrameSourceError, match="frame 1 has not arrived yet"):
        source.get(1)
    iterator = iter(source)
    for expected in range(6):
        assert np.array_equal(next(iterator), video.frames[expected])
    assert source.buffered_frames == range(3, 6)
    assert np.array_equal(source.get(3), video.frames[3])  # the window: frames 3, 4, 5
    with pytest.raises(FrameSourceError, match=r"frame 2 was dropped .* keeps the last 3 frames \(3\.\.5\)"):
        source.get(2)
    rest = list(iterator)
    assert len(rest) == 4 and np.array_equal(rest[-1], video.frames[9])
    assert source.num_frames == 10 and len(source) == 10
    with pytest.raises(FrameSourceError, match=r"frame 10 is out of range; valid frames are 0\.\.9"):
        source.get(10)
    source.close()
    assert closed == [True]


def test_stream_list_and_dispatch(video):
    source = open_frame_source(iter(video.frames[:4]))
    assert isinstance(source, StreamSource)
    frames = list(source)  # len() raising TypeError must not break list()
    assert len(frames) == 4 and np.array_equal(frames[3], video.frames[3])
    assert list(source) == []  # a stream is read once


def test_stream_errors():
    with pytest.raises(FrameSourceError, match="ended before its first frame"):
        StreamSource(iter([]))
    frames = iter([np.zeros((8, 8, 3), np.uint8), np.zeros((6, 8, 3), np.uint8)])
    with pytest.raises(FrameSourceError, match="frame 1: is 8x6 but the stream started at 8x8"):
        list(StreamSource(frames))


# --- dispatch and layering --------------------------------------------------------------------


def test_open_frame_source_dispatch(mp4, video, tmp_path):
    with open_frame_source(str(mp4)) as source:
        assert isinstance(source, VideoFileSource) and isinstance(source, FrameSource)
        assert open_frame_source(source) is source
    assert isinstance(open_frame_source(video.frames[:2]), ArraySource)
    assert isinstance(open_frame_source(f for f in video.frames[:2]), StreamSource)
    with pytest.raises(FrameSourceError, match="no such file or folder"):
        open_frame_source(tmp_path / "missing.mp4")
    Image.fromarray(video.frames[0]).save(tmp_path / "one.png")
    with pytest.raises(FrameSourceError, match="one.png: is a single image"):
        open_frame_source(tmp_path / "one.png")
    for unsupported in [42, {"a": 1}, b"bytes"]:
        with pytest.raises(FrameSourceError, match=f"cannot read frames from a {type(unsupported).__name__}"):
            open_frame_source(unsupported)
    with pytest.raises(FrameSourceError, match=r"shape \(T, H, W, 3\)"):
        open_frame_source(video.frames[0])


def test_io_does_not_import_torch():
    code = "import sys, masklet.io.frames, masklet.io.synthetic; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
