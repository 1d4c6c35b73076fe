"""Pixel tools: brush, eraser, polygon fill; exact pixel sets on small masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from masklet.engine.edits import Edit, apply_edits, brush, erase, fill_polygon, polygon_mask, stroke_mask


def test_brush_at_one_point_is_a_disc() -> None:
    out = brush(np.zeros((7, 7), dtype=bool), [(3, 3)], radius=1.5)
    expected = np.zeros((7, 7), dtype=bool)
    expected[2:5, 2:5] = True  # distances 0, 1 and sqrt(2) <= 1.5; 2 is not
    np.testing.assert_array_equal(out, expected)
    assert brush(np.zeros((5, 5), bool), [(2, 2)], radius=0).sum() == 1  # radius 0: the one pixel


def test_brush_follows_the_polyline_and_clips_at_the_border() -> None:
    out = stroke_mask((6, 10), [(0, 2), (9, 2), (9, 5)], radius=0.5)
    expected = np.zeros((6, 10), dtype=bool)
    expected[2, :] = True  # horizontal leg along row 2
    expected[2:6, 9] = True  # vertical leg down column 9
    np.testing.assert_array_equal(out, expected)
    edge = stroke_mask((4, 4), [(-1, -1)], radius=1.5)  # centre outside the image
    assert edge.sum() == 1 and edge[0, 0]


def test_eraser_removes_and_input_is_untouched() -> None:
    mask = np.ones((5, 5), dtype=bool)
    out = erase(mask, [(0, 0), (4, 4)], radius=0.5)  # the diagonal (distance 0) only
    assert mask.all()
    np.testing.assert_array_equal(out, ~np.eye(5, dtype=bool))


def test_polygon_includes_its_edges_like_pil() -> None:
    rect = polygon_mask((6, 8), [(1, 1), (4, 1), (4, 3), (1, 3)])
    expected = np.zeros((6, 8), dtype=bool)
    expected[1:4, 1:5] = True  # rows 1..3, columns 1..4, edges included
    np.testing.assert_array_equal(rect, expected)
    # a triangle: every pixel centre on the inner side of all three edges (half-plane test)
    tri = [(1, 1), (14, 3), (5, 12)]
    ys, xs = np.mgrid[0:16, 0:16]
    sides = [
        (b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0])
        for a, b in zip(tri, tri[1:] + tri[:1], strict=True)
    ]
    expected = np.all([s >= 0 for s in sides], axis=0)
    ours = polygon_mask((16, 16), tri)
    np.testing.assert_array_equal(ours, expected)
    # PIL's outline also takes pixels the edge line passes near; ours is a subset of its fill
    image = Image.new("1", (16, 16))
    ImageDraw.Draw(image).polygon(tri, fill=1, outline=1)
    assert not (ours & ~np.asarray(image, dtype=bool)).any()


def test_polygon_even_odd_and_cut_out() -> None:
    # a square with a square hole, drawn as one self-overlapping ring
    ring = [(0, 0), (6, 0), (6, 6), (0, 6), (0, 0), (2, 2), (4, 2), (4, 4), (2, 4), (2, 2)]
    mask = polygon_mask((7, 7), ring)
    assert mask[0, 0] and mask[1, 1] and not mask[3, 3] and mask[2, 2]
    full = np.ones((7, 7), dtype=bool)
    cut = fill_polygon(full, [(1, 1), (5, 1), (5, 5), (1, 5)], value=False)
    assert cut.sum() == 49 - 25


def test_edit_payload_round_trip_and_apply_in_order() -> None:
    edits = [
        Edit("polygon", ((0, 0), (3, 0), (3, 3), (0, 3))),
        Edit("eraser", ((1.0, 1.0),), radius=0.0),
        Edit("brush", ((6.0, 6.0),), radius=0.0),
    ]
    again = [Edit.from_payload(e.to_payload()) for e in edits]
    assert again == edits
    out = apply_edits(np.zeros((8, 8), dtype=bool), again)
    assert out.sum() == 16 - 1 + 1 and not out[1, 1] and out[6, 6]
    with pytest.raises(ValueError, match="tool must be one of"):
        Edit("spray", ((0, 0),))
    with pytest.raises(ValueError, match="an edit is"):
        Edit.from_payload({"tool": "brush"})
    with pytest.raises(ValueError, match="radius"):
        brush(np.zeros((3, 3), bool), [(1, 1)], radius=-1)
