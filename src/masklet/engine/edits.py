"""Pixel tools of the Phase-1 editor: brush, eraser and polygon fill on a boolean mask.

Coordinates are (x, y) in pixels of the mask (x = column, y = row); pixel (row r, col c)
has its centre at (x, y) = (c, r). A stroke covers every pixel whose centre lies within
`radius` of the polyline through its points (a disc at a single point); a polygon covers
every pixel whose centre lies inside it or on its edges (even-odd rule). Pure numpy; every
tool returns a new mask and leaves its input untouched. `Edit` is the JSON-able record of one
tool use, as the editor logs it (`{"tool": "brush", "points": [[x, y], ...], "radius": 3}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TOOLS", "Edit", "apply_edits", "brush", "erase", "fill_polygon", "polygon_mask", "stroke_mask"]

TOOLS = ("brush", "eraser", "polygon", "polygon_erase")
_ON_EDGE = 1e-9  # pixels: a centre this close to a polygon edge counts as inside


def _points(points: Iterable[Sequence[float]], what: str) -> np.ndarray:
    array = np.asarray([tuple(p) for p in points], dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0 or not np.isfinite(array).all():
        raise ValueError(f"{what} needs one or more finite (x, y) points, got {array.tolist()!r:.80}")
    return array  # (P, 2) x, y


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is (H, W), got shape {mask.shape}")
    return mask.astype(bool, copy=True)


def _segment_distance2(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distance of the points (xs, ys) to the segment a-b (a point when a == b)."""
    d = b - a
    length2 = float(d @ d)
    if length2 == 0.0:
        return (xs - a[0]) ** 2 + (ys - a[1]) ** 2
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / length2, 0.0, 1.0)
    return (xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2


def stroke_mask(shape: tuple[int, int], points: Iterable[Sequence[float]], *, radius: float) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies within `radius` of the polyline through `points`."""
    if not radius >= 0:
        raise ValueError(f"a brush radius is a non-negative number of pixels, got {radius!r}")
    pts = _points(points, "a stroke")
    h, w = shape
    out = np.zeros((h, w), dtype=bool)
    segments = zip(pts[:-1], pts[1:], strict=True) if len(pts) > 1 else [(pts[0], pts[0])]
    for a, b in segments:
        # only the segment's bounding box, grown by the radius, can be reached
        x0, x1 = (
            max(0, int(np.floor(min(a[0], b[0]) - radius))),
            min(w - 1, int(np.ceil(max(a[0], b[0]) + radius))),
        )
        y0, y1 = (
            max(0, int(np.floor(min(a[1], b[1]) - radius))),
            min(h - 1, int(np.ceil(max(a[1], b[1]) + radius))),
        )
        if x0 > x1 or y0 > y1:
            continue
        ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
        out[y0 : y1 + 1, x0 : x1 + 1] |= _segment_distance2(xs, ys, a, b) <= radius * radius
    return out


def polygon_mask(shape: tuple[int, int], vertices: Iterable[Sequence[float]]) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies inside the polygon (even-odd rule) or on an edge."""
    pts = _points(vertices, "a polygon")
    if len(pts) < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {len(pts)}")
    h, w = shape
    out = np.zeros((h, w), dtype=bool)
    x0, x1 = max(0, int(np.floor(pts[:, 0].min()))), min(w - 1, int(np.ceil(pts[:, 0].max())))
    y0, y1 = max(0, int(np.floor(pts[:, 1].min()))), min(h - 1, int(np.ceil(pts[:, 1].max())))
    if x0 > x1 or y0 > y1:
        return out
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
    inside = np.zeros(xs.shape, dtype=bool)
    on_edge = np.zeros(xs.shape, dtype=bool)
    for a, b in zip(pts, np.roll(pts, -1, axis=0), strict=True):
        # scanline crossing test: the edge spans the row half-open, and the crossing lies right of x
        spans = (a[1] > ys) != (b[1] > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[0] + (ys - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        inside ^= spans & (xs < x_cross)
        on_edge |= _segment_distance2(xs, ys, a, b) <= _ON_EDGE
    out[y0 : y1 + 1, x0 : x1 + 1] = inside | on_edge
    return out


def brush(mask: np.ndarray, points: Iterable[Sequence[float]], *, radius: float) -> np.ndarray:
    """A copy of `mask` with a brush stroke added."""
    out = _check_mask(mask)
    return out | stroke_mask(out.shape, points, radius=radius)


def erase(mask: np.ndarray, points: Iterable[Sequence[float]], *, radius: float) -> np.ndarray:
    """A copy of `mask` with an eraser stroke removed."""
    out = _check_mask(mask)
    return out & ~stroke_mask(out.shape, points, radius=radius)


def fill_polygon(mask: np.ndarray, vertices: Iterable[Sequence[float]], *, value: bool = True) -> np.ndarray:
    """A copy of `mask` with the polygon set to `value` (True adds, False cuts out)."""
    out = _check_mask(mask)
    region = polygon_mask(out.shape, vertices)
    return out | region if value else out & ~region


@dataclass(frozen=True, slots=True)
class Edit:
    """One use of a pixel tool; `radius` applies to brush and eraser strokes."""

    tool: str  # one of TOOLS
    points: tuple[tuple[float, float], ...]  # stroke path or polygon vertices, (x, y) pixels
    radius: float = 0.0

    def __post_init__(self) -> None:
        if self.tool not in TOOLS:
            raise ValueError(f"tool must be one of {', '.join(TOOLS)}, got {self.tool!r}")

    def apply(self, mask: np.ndarray) -> np.ndarray:
        if self.tool == "brush":
            return brush(mask, self.points, radius=self.radius)
        if self.tool == "eraser":
            return erase(mask, self.points, radius=self.radius)
        return fill_polygon(mask, self.points, value=self.tool == "polygon")

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tool": self.tool, "points": [list(p) for p in self.points]}
        if self.tool in ("brush", "eraser"):
            out["radius"] = self.radius
        return out

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Edit:
        """Read `to_payload`'s form; a malformed payload raises ValueError."""
        try:
            points = tuple((float(x), float(y)) for x, y in payload["points"])
            return cls(str(payload["tool"]), points, float(payload.get("radius", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f'an edit is {{"tool": ..., "points": [[x, y], ...], "radius": r}}, got {dict(payload)!r:.100}'
            ) from exc


def apply_edits(mask: np.ndarray, edits: Iterable[Edit]) -> np.ndarray:
    """Apply `edits` in order to a copy of `mask`."""
    out = _check_mask(mask)
    for edit in edits:
        out = edit.apply(out)
    return out
