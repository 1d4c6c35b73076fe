"""COCO instance JSON and YouTube-VIS JSON: round trips and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from masklet.errors import FormatError
from masklet.io.formats.coco import (
    CocoAnnotation,
    CocoCategory,
    CocoDataset,
    CocoImage,
    read_coco_json,
    write_coco_json,
)
from masklet.io.formats.ytvis import (
    YtvisAnnotation,
    YtvisDataset,
    YtvisVideo,
    read_ytvis_json,
    write_ytvis_json,
)
from masklet.io.masks import RleMask, encode_rle


def _square(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


def _coco() -> CocoDataset:
    images = (CocoImage(1, "a.jpg", 20, 30), CocoImage(2, "b.jpg", 10, 12, extra={"license": 3}))
    anns = (
        CocoAnnotation.from_mask(_square(20, 30, 2, 6, 3, 10), id=1, image_id=1, category_id=7),
        CocoAnnotation.from_mask(
            _square(10, 12, 0, 10, 0, 1), id=2, image_id=2, category_id=8, extra={"score": 0.5}
        ),
    )
    cats = (CocoCategory(7, "cat", "animal"), CocoCategory(8, "dog"))
    return CocoDataset(images, anns, cats, extra={"info": {"year": 2024}, "licenses": []})


def test_coco_round_trip(tmp_path: Path) -> None:
    ds = _coco()
    assert ds.annotations[0].area == 28.0 and ds.annotations[0].bbox == (3.0, 2.0, 7.0, 4.0)
    path = write_coco_json(tmp_path / "instances.json", ds)
    back = read_coco_json(path)
    assert back == ds
    assert write_coco_json(tmp_path / "again.json", back).read_bytes() == path.read_bytes()
    raw = json.loads(path.read_text())
    assert raw["annotations"][1]["score"] == 0.5 and raw["info"] == {"year": 2024}
    assert raw["annotations"][0]["segmentation"] == encode_rle(_square(20, 30, 2, 6, 3, 10))


def test_coco_polygon_and_uncompressed_segmentations(tmp_path: Path) -> None:
    data = _coco().to_json_dict()
    data["annotations"][0]["segmentation"] = [[3.0, 2.0, 10.0, 2.0, 10.0, 6.0, 3.0, 6.0]]
    data["annotations"][1]["segmentation"] = {"size": [10, 12], "counts": [0, 10, 110]}
    path = tmp_path / "poly.json"
    path.write_text(json.dumps(data))
    back = read_coco_json(path)
    poly = back.annotations[0].rle.decode()
    assert poly.shape == (20, 30) and poly[3:6, 4:10].all() and not poly[10:].any()
    assert back.annotations[1].rle == RleMask.from_mask(_square(10, 12, 0, 10, 0, 1))


def _broken(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["annotations"][1]["segmentation"].update(size=[12, 10]),
            "annotations[1].segmentation: RLE size",
        ),
        (
            lambda d: d["annotations"][0].update(image_id=9),
            "annotations[0].image_id: 9 is not the id of any image",
        ),
        (lambda d: d["annotations"][0].update(category_id=1), "category_id: 1 is not the id of any category"),
        (lambda d: d["annotations"][1].update(id=1), "annotations: id 1 appears more than once"),
        (lambda d: d["images"][0].pop("height"), "images[0]: missing field 'height'"),
        (lambda d: d.pop("categories"), "missing field 'categories'"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "polygon is a flat list"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), "a box is [x, y, w, h]"),
    ],
)
def test_coco_bad_input(tmp_path: Path, edit, message: str) -> None:
    data = _coco().to_json_dict()
    edit(data)
    path = _broken(tmp_path, data)
    with pytest.raises(FormatError) as err:
        read_coco_json(path)
    assert str(path) in str(err.value) and message in str(err.value)


def _ytvis() -> YtvisDataset:
    frames = [_square(8, 9, 1, 4, t, t + 3) for t in range(4)]
    frames[2] = np.zeros((8, 9), bool)  # absent on frame 2 -> null
    video = YtvisVideo(5, 8, 9, tuple(f"v/{t:05d}.jpg" for t in range(4)))
    ann = YtvisAnnotation.from_masks(frames, id=1, video_id=5, category_id=2, extra={"height": 8, "width": 9})
    return YtvisDataset((video,), (ann,), (CocoCategory(2, "person"),), extra={"info": {}})


def test_ytvis_round_trip(tmp_path: Path) -> None:
    ds = _ytvis()
    ann = ds.annotations[0]
    assert ann.segmentations[2] is None and ann.areas[2] is None and ann.bboxes[2] is None
    assert ann.areas[0] == 9.0 and ann.bboxes[1] == (1.0, 1.0, 3.0, 3.0)
    path = write_ytvis_json(tmp_path / "ytvis.json", ds)
    raw = json.loads(path.read_text())
    assert raw["annotations"][0]["segmentations"][2] is None and raw["videos"][0]["length"] == 4
    back = read_ytvis_json(path)
    assert back == ds
    assert write_ytvis_json(tmp_path / "again.json", back).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["annotations"][0]["segmentations"].append(None), "entry 4 is past the end of the video"),
        (lambda d: d["annotations"][0]["segmentations"].pop(), "3 entries for a 4-frame video"),
        (
            lambda d: d["annotations"][0]["segmentations"][1].update(size=[9, 8]),
            "segmentations[1]: RLE size is [9, 8]",
        ),
        (lambda d: d["annotations"][0].update(video_id=6), "video_id: 6 is not the id of any video"),
        (lambda d: d["videos"][0].update(length=5), "length is 5 but file_names lists 4 frames"),
        (lambda d: d["annotations"][0]["areas"].__setitem__(0, "big"), "areas[0]: expected a number"),
    ],
)
def test_ytvis_bad_input(tmp_path: Path, edit, message: str) -> None:
    data = _ytvis().to_json_dict()
    edit(data)
    path = _broken(tmp_path, data)
    with pytest.raises(FormatError) as err:
        read_ytvis_json(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_ytvis_uncompressed_rle_is_accepted(tmp_path: Path) -> None:
    data = _ytvis().to_json_dict()
    mask = _square(8, 9, 0, 8, 0, 1)  # first column
    data["annotations"][0]["segmentations"][0] = {"size": [8, 9], "counts": [0, 8, 64]}
    back = read_ytvis_json(_broken(tmp_path, data))
    np.testing.assert_array_equal(back.annotations[0].segmentations[0].decode(), mask)
