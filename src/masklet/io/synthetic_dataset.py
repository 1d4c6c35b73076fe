"""Synthetic training sets: folders of videos with SA-V-layout ground truth and exact masks.

Each video shows a few textured shapes (striped or checkered, in two random colours) that move,
bounce off the borders, rotate and deform (their outline is a circle modulated by a few
harmonics whose strengths change over time) over a textured, tinted background. Shapes are
drawn in order, later ones on top, so they occlude each other; a mask is an object's visible
pixels. Every frame is a pure function of (seed, frame). `write_training_set` writes
`NAME.mp4` and `NAME_manual.json` (masks on every 4th frame, as SA-V) per video, the layout
`masklet train --data` reads.
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from masklet.io.formats.sav import SAV_FRAME_STRIDE, SavVideoAnnotation, write_sav_json
from masklet.io.synthetic import write_mp4

HARMONICS = (2, 3, 5)  # angular frequencies of the outline's wobble


def _colour(rng: np.random.Generator, *, lightness: tuple[float, float]) -> np.ndarray:
    hue, sat = rng.uniform(0, 1), rng.uniform(0.5, 1.0)
    return np.array(colorsys.hls_to_rgb(hue, rng.uniform(*lightness), sat)) * 255


@dataclass(frozen=True, slots=True)
class TexturedScene:
    """The objects and background of one training video; `render(t)` draws frame t."""

    height: int
    width: int
    background: np.ndarray  # (H, W, 3) uint8
    radii: np.ndarray  # (N,) mean radius, pixels
    starts: np.ndarray  # (N, 2) xy at t = 0
    velocities: np.ndarray  # (N, 2) pixels per frame
    spins: np.ndarray  # (N,) radians per frame
    wobble: np.ndarray  # (N, K) outline harmonic amplitudes (fractions of the radius)
    wobble_rates: np.ndarray  # (N, K) how fast each amplitude oscillates, radians per frame
    wobble_phases: np.ndarray  # (N, K) their phases at t = 0
    colours: np.ndarray  # (N, 2, 3) the two colours of each texture
    patterns: tuple[str, ...]  # (N,) "stripes" or "checks"
    periods: np.ndarray  # (N,) texture period, pixels

    @classmethod
    def random(cls, *, height: int, width: int, num_objects: int, seed: int) -> TexturedScene:
        rng = np.random.default_rng(seed)
        ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
        level = sum(np.sin(2 * np.pi * (rng.uniform(1, 7) * xs + rng.uniform(1, 7) * ys) + rng.uniform(0, 6.3))
                    for _ in range(5))  # fmt: skip
        tint = _colour(rng, lightness=(0.3, 0.5)) / 255
        grain = rng.normal(0, 8, (height, width, 1))
        background = np.clip((110 + 18 * level)[..., None] * (0.5 + 0.5 * tint) + grain, 0, 255).astype(np.uint8)
        size = min(height, width)
        radii = rng.uniform(0.1, 0.2, num_objects) * size
        starts = np.stack([rng.uniform(radii, width - radii), rng.uniform(radii, height - radii)], axis=1)
        speed = rng.uniform(0.01, 0.035, num_objects) * size
        angle = rng.uniform(0, 2 * np.pi, num_objects)
        velocities = np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=1)
        colours = np.stack([np.stack([_colour(rng, lightness=(0.45, 0.7)), _colour(rng, lightness=(0.2, 0.45))])
                            for _ in range(num_objects)]).reshape(num_objects, 2, 3)  # fmt: skip
        return cls(
            height, width, background, radii, starts.reshape(num_objects, 2), velocities.reshape(num_objects, 2),
            spins=rng.uniform(-0.08, 0.08, num_objects),
            wobble=rng.uniform(0.0, 0.25, (num_objects, len(HARMONICS))),
            wobble_rates=rng.uniform(0.05, 0.3, (num_objects, len(HARMONICS))),
            wobble_phases=rng.uniform(0, 2 * np.pi, (num_objects, len(HARMONICS))),
            colours=colours, patterns=tuple(rng.choice(["stripes", "checks"], num_objects).tolist()),
            periods=rng.uniform(4, 12, num_objects),
        )  # fmt: skip

    @property
    def obj_ids(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.radii) + 1))

    def centres_at(self, t: int) -> np.ndarray:
        low = self.radii[:, None]
        span = np.array([self.width, self.height], dtype=np.float64)[None] - 2 * low
        travelled = np.mod(self.starts - low + self.velocities * t, 2 * span)
        return low + np.where(travelled > span, 2 * span - travelled, travelled)

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t: (H, W, 3) uint8 image and (N, H, W) bool visible masks."""
        image = self.background.copy()
        n = len(self.radii)
        masks = np.zeros((n, self.height, self.width), dtype=bool)
        ys, xs = np.mgrid[0 : self.height, 0 : self.width] + 0.5
        for k, centre in enumerate(self.centres_at(t)):
            dx, dy = xs - centre[0], ys - centre[1]
            rot = self.spins[k] * t
            theta = np.arctan2(dy, dx) - rot
            amplitudes = self.wobble[k] * np.sin(self.wobble_rates[k] * t + self.wobble_phases[k])  # deforms
            outline = self.radii[k] * (1 + sum(a * np.cos(h * theta) for a, h in zip(amplitudes, HARMONICS, strict=True)))
            inside = np.hypot(dx, dy) <= outline
            u = dx * np.cos(rot) + dy * np.sin(rot)  # texture coordinates turn with the shape
            v = -dx * np.sin(rot) + dy * np.cos(rot)
            if self.patterns[k] == "stripes":
                parity = np.floor(u / self.periods[k]).astype(int) % 2
            else:
                parity = (np.floor(u / self.periods[k]) + np.floor(v / self.periods[k])).astype(int) % 2
            texture = self.colours[k][parity]  # (H, W, 3)
            image[inside] = texture[inside].astype(np.uint8)
            masks[:k, inside] = False
            masks[k] = inside
        return image, masks


def write_training_set(
    folder: str | os.PathLike[str],
    *,
    videos: int,
    frames: int = 48,
    height: int = 240,
    width: int = 320,
    objects: tuple[int, int] = (2, 4),
    seed: int = 0,
    fps: float = 24.0,
    progress: bool = True,
) -> list[Path]:
    """`videos` synthetic videos with SA-V ground truth under `folder`; the video paths.

    Video i has its own scene (seed + i) with between objects[0] and objects[1] shapes.
    """
    if videos < 1 or frames < 1 or height % 2 or width % 2:
        raise ValueError("videos and frames must be positive and height/width even (yuv420p video)")
    lo, hi = objects
    if not 1 <= lo <= hi:
        raise ValueError(f"objects must be a range 1 <= low <= high, got {objects}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in tqdm(range(videos), desc="synthetic videos", unit="video", disable=not progress):
        count = int(np.random.default_rng([seed, i]).integers(lo, hi + 1))
        scene = TexturedScene.random(height=height, width=width, num_objects=count, seed=seed * 100_003 + i)
        name = f"synth_{i:04d}"
        annotated: list[np.ndarray] = []

        def frames_of(scene: TexturedScene = scene, annotated: list[np.ndarray] = annotated):
            for t in range(frames):
                image, masks = scene.render(t)
                if t % SAV_FRAME_STRIDE == 0:
                    annotated.append(masks)
                yield image

        path = write_mp4(frames_of(), folder / f"{name}.mp4", fps=fps)
        per_object = [[m[k] for m in annotated] for k in range(count)]
        ann = SavVideoAnnotation.from_masks(per_object, video_id=name, video_frame_count=frames,
                                            height=height, width=width, masklet_ids=list(scene.obj_ids))  # fmt: skip
        write_sav_json(folder / f"{name}_manual.json", ann)
        written.append(path)
    return written
