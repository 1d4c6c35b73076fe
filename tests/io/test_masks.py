"""COCO RLE helpers, PNG masks and atomic writes in masklet.io.masks / masklet.io._files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from masklet.errors import FormatError
from masklet.io._files import atomic_directory, read_json, write_bytes_atomic, write_json_atomic
from masklet.io.masks import (
    RleMask,
    davis_palette,
    decode_rle,
    decode_rles,
    empty_rle,
    encode_rle,
    encode_rles,
    read_binary_png,
    read_label_png,
    rle_area,
    rle_bbox,
    rle_iou,
    rle_iou_matrix,
    validate_rle,
    write_binary_png,
    write_label_png,
)

SAV_AUTO = Path(__file__).parents[1] / "data" / "sav" / "sav_000001_auto.json"


def _square(h: int = 10, w: int = 12, r0: int = 2, r1: int = 5, c0: int = 3, c1: int = 7) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (13, 17), (64, 48)])
def test_encode_decode_round_trip(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for density in (0.0, 0.1, 0.5, 1.0):
        mask = rng.random(shape) < density
        rle = encode_rle(mask)
        assert rle["size"] == list(shape) and isinstance(rle["counts"], str)
        np.testing.assert_array_equal(decode_rle(rle), mask)
        assert rle_area(rle) == mask.sum()


def test_batch_encode_decode() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((4, 9, 11)) < 0.3
    rles = encode_rles(masks)
    assert rles == [encode_rle(m) for m in masks]
    np.testing.assert_array_equal(decode_rles(rles), masks)
    assert decode_rles([], expected_size=(9, 11)).shape == (0, 9, 11)
    assert encode_rles(np.zeros((0, 3, 3), bool)) == []


def test_rle_mask_properties() -> None:
    rle = RleMask.from_mask(_square())
    assert rle.size == (10, 12)
    assert rle.area == 12
    assert rle.bbox == (3.0, 2.0, 4.0, 3.0)  # COCO (x, y, w, h)
    assert not rle.is_empty and RleMask.empty(10, 12).is_empty
    assert RleMask.from_dict(rle.to_dict()) == rle
    np.testing.assert_array_equal(rle.decode(), _square())
    assert rle_bbox(empty_rle(4, 4)) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
def test_area_matches_pycocotools_on_sav_masks() -> None:
    data = json.loads(SAV_AUTO.read_text())
    for row in data["masklet"][::20]:
        for rle in row:
            coco = {"size": rle["size"], "counts": rle["counts"].encode()}
            assert rle_area(rle) == int(mask_utils.area(coco))
            np.testing.assert_array_equal(
                decode_rle(rle, expected_size=(848, 480)), mask_utils.decode(coco) > 0
            )


def test_iou() -> None:
    a = RleMask.from_mask(_square(c0=3, c1=7))  # 12 px
    b = RleMask.from_mask(_square(c0=5, c1=9))  # 12 px, 6 shared
    assert rle_iou(a, b) == pytest.approx(6 / 18)
    assert rle_iou(a, a) == 1.0
    empty = empty_rle(10, 12)
    assert rle_iou(empty, empty) == 0.0 and rle_iou(empty, empty, both_empty=1.0) == 1.0
    matrix = rle_iou_matrix([a, b, empty], [a, b])
    np.testing.assert_allclose(matrix, [[1, 1 / 3], [1 / 3, 1], [0, 0]])


def test_uncompressed_counts_are_compressed() -> None:
    mask = _square(h=4, w=3, r0=1, r1=3, c0=0, c1=2)
    runs = [1, 2, 2, 2, 5]  # column-major: bg 1, fg 2, bg 2, fg 2, bg 5
    rle = validate_rle({"size": [4, 3], "counts": runs})
    assert rle == RleMask.from_mask(mask)


@pytest.mark.parametrize(
    ("rle", "expected", "message"),
    [
        (
            {"size": [848, 481], "counts": "P`]<"},
            (848, 480),
            "size is [848, 481] but the image is [848, 480]",
        ),
        ({"size": [848, 480], "counts": "P`]<1"}, None, "cover 407041 pixels but size [848, 480] has 407040"),
        ({"size": [848, 480], "counts": "P`]"}, None, "truncated"),
        ({"size": [848, 480], "counts": "P`]<~"}, None, "character '~'"),
        ({"size": [848, 480], "counts": "P`]é"}, None, "non-ASCII"),
        ({"size": [8, 8], "counts": "o" * 13 + "0"}, None, "14 characters long"),
        ({"size": [2, 2], "counts": [1, -1, 4]}, None, "negative run length"),
        ({"size": [2, 2]}, None, "lacks 'counts'"),
        ({"size": [2], "counts": "4"}, None, "size must be [H, W]"),
        ({"size": [2, 2], "counts": 4}, None, "counts must be a string"),
        ([2, 2], None, "expected an RLE dict"),
    ],
)
def test_malformed_rle_raises_format_error(
    rle: object, expected: tuple[int, int] | None, message: str
) -> None:
    with pytest.raises(FormatError) as err:
        decode_rle(rle, expected_size=expected, where="f.json: masklet[3][1]")  # type: ignore[arg-type]
    assert "f.json: masklet[3][1]" in str(err.value)
    assert message in str(err.value)


def test_davis_palette() -> None:
    pal = davis_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert pal[0].tolist() == [0, 0, 0]
    assert (
        pal[1].tolist() == [128, 0, 0] and pal[2].tolist() == [0, 128, 0] and pal[3].tolist() == [128, 128, 0]
    )
    assert pal[255].tolist() == [224, 224, 192]


def test_label_png_round_trip(tmp_path: Path) -> None:
    labels = np.zeros((6, 7), dtype=np.uint8)
    labels[1:3, 1:4] = 1
    labels[4, :] = 2
    labels[0, 6] = 255
    path = write_label_png(tmp_path / "a" / "00000.png", labels)
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.getpalette()[3:6] == [128, 0, 0]
    np.testing.assert_array_equal(read_label_png(path), labels)


def test_binary_png_round_trip_and_checks(tmp_path: Path) -> None:
    mask = _square()
    np.testing.assert_array_equal(read_binary_png(write_binary_png(tmp_path / "m.png", mask)), mask)
    # a 0/255 grayscale PNG (another common way to store one object) reads the same
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_binary_png(tmp_path / "g.png"), mask)
    three = mask.astype(np.uint8)
    three[0, 0] = 2
    write_label_png(tmp_path / "three.png", three)
    with pytest.raises(FormatError, match="3 distinct values"):
        read_binary_png(tmp_path / "three.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(FormatError, match="RGB image"):
        read_label_png(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(FormatError, match="bad.png: not a readable PNG"):
        read_binary_png(tmp_path / "bad.png")
    with pytest.raises(FormatError, match="file not found"):
        read_label_png(tmp_path / "missing.png")


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(ValueError):
        write_json_atomic(target, {"v": float("nan")})  # fails while serialising: nothing touched

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(target, b'{"v": 2}')
    monkeypatch.undo()
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary left behind


def test_atomic_directory(tmp_path: Path) -> None:
    target = tmp_path / "video"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("crash mid-way")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(FileExistsError):
        with atomic_directory(target):
            pass
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("two")
    assert [p.name for p in tmp_path.iterdir()] == ["video"]
    assert [p.name for p in target.iterdir()] == ["b.txt"]


def test_read_json_errors(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text('{"a": [1, 2')
    with pytest.raises(FormatError, match=r"t.json: malformed JSON at line 1"):
        read_json(tmp_path / "t.json")
    with pytest.raises(FormatError, match="file not found"):
        read_json(tmp_path / "none.json")


def test_io_and_metrics_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, masklet.io.masks, masklet.io.formats, masklet.eval.metrics; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
