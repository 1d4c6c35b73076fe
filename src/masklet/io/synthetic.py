"""Deterministic synthetic videos with exact per-object masks, for tests and demos.

Circles and squares of fixed, distinct colours bounce inside the frame over a static
textured background. Every frame is a pure function of (seed, frame index), so a generator
can yield frame 2,000 without keeping the ones before it. Objects are drawn in order, later
ones on top; an object's mask is its visible (unoccluded) pixels, so it can be empty on
frames where another object covers it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

__all__ = [
    "OBJECT_COLORS",
    "SyntheticFrame",
    "SyntheticScene",
    "SyntheticVideo",
    "iter_synthetic_video",
    "make_synthetic_video",
    "pick_video_codec",
    "write_frame_folder",
    "write_mp4",
]

# Saturated colours, far from the grey background; object k (obj_id k + 1) uses colour k mod 8.
OBJECT_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 25),
    (25, 200, 40),
    (30, 60, 235),
    (240, 220, 20),
    (220, 30, 220),
    (20, 220, 230),
    (250, 140, 10),
    (250, 250, 250),
)


@dataclass(frozen=True, slots=True)
class SyntheticFrame:
    """One rendered frame and what it shows."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    masks: np.ndarray  # (N, H, W) bool, visible pixels of each object, in obj_ids order
    centers: np.ndarray  # (N, 2) float xy of each object's centre, in pixels (a good click)
    boxes: np.ndarray  # (N, 4) float x0, y0, x1, y1 of each object's full shape


@dataclass(frozen=True, slots=True)
class SyntheticScene:
    """The objects and background of a synthetic video; `render(t)` draws frame t."""

    height: int
    width: int
    background: np.ndarray  # (H, W, 3) uint8
    shapes: tuple[str, ...]  # (N,) "circle" or "square"
    colors: tuple[tuple[int, int, int], ...]  # (N,) RGB
    radii: np.ndarray  # (N,) half size in pixels
    starts: np.ndarray  # (N, 2) xy centre at t = 0
    velocities: np.ndarray  # (N, 2) xy pixels per frame

    @property
    def obj_ids(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.shapes) + 1))

    @classmethod
    def random(cls, *, height: int, width: int, num_objects: int, seed: int) -> SyntheticScene:
        """A scene drawn from `seed` (numpy's PCG64; identical on every platform)."""
        if height < 16 or width < 16:
            raise ValueError(f"synthetic videos need at least 16x16 pixels, got {width}x{height}")
        if num_objects < 0:
            raise ValueError(f"num_objects must be 0 or more, got {num_objects}")
        rng = np.random.default_rng(seed)
        background = _texture(rng, height, width)
        size = min(height, width)
        radii = rng.uniform(0.08, 0.16, num_objects) * size
        starts = np.stack(
            [rng.uniform(radii, width - radii), rng.uniform(radii, height - radii)], axis=1
        ).reshape(num_objects, 2)
        speed = rng.uniform(0.01, 0.03, num_objects) * size
        angle = rng.uniform(0, 2 * np.pi, num_objects)
        velocities = np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=1).reshape(num_objects, 2)
        shapes = tuple("circle" if k % 2 == 0 else "square" for k in range(num_objects))
        colors = tuple(OBJECT_COLORS[k % len(OBJECT_COLORS)] for k in range(num_objects))
        return cls(height, width, background, shapes, colors, radii, starts, velocities)

    def centers_at(self, t: int) -> np.ndarray:
        """(N, 2) xy centres at frame t: straight motion, reflected at the frame borders."""
        low = self.radii[:, None]  # (N, 1)
        span = np.array([self.width, self.height], dtype=np.float64)[None, :] - 2 * low  # (N, 2)
        travelled = np.mod(self.starts - low + self.velocities * t, 2 * span)
        return low + np.where(travelled > span, 2 * span - travelled, travelled)

    def render(self, t: int) -> SyntheticFrame:
        """Frame t with its masks; costs O(N·H·W) and nothing from earlier frames."""
        centers = self.centers_at(t)
        image = self.background.copy()
        masks = np.zeros((len(self.shapes), self.height, self.width), dtype=bool)
        ys = np.arange(self.height, dtype=np.float64)[:, None] + 0.5  # pixel centres
        xs = np.arange(self.width, dtype=np.float64)[None, :] + 0.5
        for k, (shape, color, radius) in enumerate(zip(self.shapes, self.colors, self.radii, strict=True)):
            dx, dy = xs - centers[k, 0], ys - centers[k, 1]
            if shape == "circle":
                inside = dx * dx + dy * dy <= radius * radius
            else:
                inside = (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
            masks[:k, inside] = False  # drawn on top: hides the objects before it
            masks[k] = inside
            image[inside] = color
        boxes = np.concatenate([centers - self.radii[:, None], centers + self.radii[:, None]], axis=1)
        return SyntheticFrame(image, masks, centers, boxes)


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static grey-brown background: a few smooth waves plus fine grain (gives the codec work)."""
    ys = np.arange(height)[:, None] / height
    xs = np.arange(width)[None, :] / width
    level = np.zeros((height, width))
    for _ in range(4):
        fx, fy = rng.uniform(1, 6, 2)
        phase = rng.uniform(0, 2 * np.pi)
        level += np.sin(2 * np.pi * (fx * xs + fy * ys) + phase)
    base = 100 + 12 * level  # about 50..150: darker and duller than every object colour
    tint = np.array([1.0, 0.95, 0.85])
    grain = rng.normal(0, 6, (height, width, 1))  # brightness only: survives chroma subsampling
    return np.clip(base[..., None] * tint + grain, 0, 255).round().astype(np.uint8)


@dataclass(frozen=True, slots=True)
class SyntheticVideo:
    """A rendered synthetic video held in memory (use `iter_synthetic_video` for long ones)."""

    frames: list[np.ndarray]  # T of (H, W, 3) uint8 RGB
    masks: np.ndarray  # (T, N, H, W) bool
    centers: np.ndarray  # (T, N, 2) xy
    boxes: np.ndarray  # (T, N, 4) x0, y0, x1, y1
    obj_ids: tuple[int, ...]  # (N,) 1..N
    colors: tuple[tuple[int, int, int], ...]  # (N,) RGB
    scene: SyntheticScene

    def mask(self, frame: int, obj_id: int) -> np.ndarray:
        """(H, W) bool mask of object `obj_id` on `frame`."""
        return self.masks[frame, self.obj_ids.index(obj_id)]


def iter_synthetic_video(
    num_frames: int, height: int = 128, width: int = 128, num_objects: int = 2, seed: int = 0
) -> Iterator[SyntheticFrame]:
    """Yield the frames of `make_synthetic_video(...)` one by one, keeping none of them."""
    scene = SyntheticScene.random(height=height, width=width, num_objects=num_objects, seed=seed)
    for t in range(num_frames):
        yield scene.render(t)


def make_synthetic_video(
    num_frames: int, height: int = 128, width: int = 128, num_objects: int = 2, seed: int = 0
) -> SyntheticVideo:
    """A deterministic video of `num_objects` moving shapes with their exact masks."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    scene = SyntheticScene.random(height=height, width=width, num_objects=num_objects, seed=seed)
    rendered = [scene.render(t) for t in range(num_frames)]
    return SyntheticVideo(
        frames=[f.image for f in rendered],
        masks=np.stack([f.masks for f in rendered]),
        centers=np.stack([f.centers for f in rendered]),
        boxes=np.stack([f.boxes for f in rendered]),
        obj_ids=scene.obj_ids,
        colors=scene.colors,
        scene=scene,
    )


def pick_video_codec(suffix: str = ".mp4") -> str:
    """The encoder `write_mp4` uses for a file suffix: H.264 (libx264) if built in, else MPEG-4 part 2."""
    preferred = ("libvpx-vp9", "libvpx") if suffix.lower() == ".webm" else ("libx264", "h264", "mpeg4")
    for name in preferred:
        try:
            av.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        return name
    raise RuntimeError(f"this PyAV build has none of the encoders {preferred} needed to write {suffix} files")


def write_mp4(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike[str],
    *,
    fps: float = 30.0,
    codec: str | None = None,
    keyframe_interval: int | None = None,
    frame_times: Iterable[float] | None = None,
) -> Path:
    """Encode (H, W, 3) uint8 RGB frames (any iterable, consumed lazily) into a video file.

    The container follows the suffix (.mp4, .mov, .mkv, .webm). `frame_times` (seconds,
    increasing) gives each frame its own timestamp, for variable-frame-rate files. Height and
    width must be even (yuv420p).
    """
    path = Path(path)
    codec = codec or pick_video_codec(path.suffix)
    rate = Fraction(fps).limit_denominator(1001)
    times = iter(frame_times) if frame_times is not None else None
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = "yuv420p"
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if keyframe_interval is not None:
            stream.codec_context.gop_size = keyframe_interval
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
            if keyframe_interval is not None:
                stream.options["x264-params"] = f"keyint={keyframe_interval}:scenecut=0"
        count = 0
        for image in frames:
            if count == 0:
                height, width = image.shape[:2]
                if height % 2 or width % 2:
                    raise ValueError(f"yuv420p video needs an even height and width, got {width}x{height}")
                stream.height, stream.width = height, width
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if times is not None:
                frame.pts = round(next(times) * 1000)
                frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return path


def write_frame_folder(
    frames: Iterable[np.ndarray],
    folder: str | os.PathLike[str],
    *,
    suffix: str = ".jpg",
    quality: int = 95,
    start: int = 0,
) -> list[Path]:
    """Save frames as 00000.jpg, 00001.jpg, ... (the official predictor's layout); their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, image in enumerate(frames):
        path = folder / f"{start + offset:05d}{suffix}"
        options = {"quality": quality} if suffix.lower() in (".jpg", ".jpeg") else {}
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, **options)
        paths.append(path)
    return paths
