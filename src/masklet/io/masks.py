"""Masks on the wire: COCO RLE (via pycocotools) and PNG label maps / binary masks.

An RLE is the COCO compressed form `{"size": [H, W], "counts": str}` (column-major runs,
first run = background). Every function that takes an RLE accepts that dict or an `RleMask`;
RLEs read from files are checked here before pycocotools sees them, because its C decoder
trusts the counts (a bad string can read or write past its buffers).
numpy only: nothing in masklet.io imports torch.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from masklet.errors import FormatError
from masklet.io._files import write_bytes_atomic

__all__ = [
    "RleLike",
    "RleMask",
    "davis_palette",
    "decode_rle",
    "decode_rles",
    "empty_rle",
    "encode_rle",
    "encode_rles",
    "read_binary_png",
    "read_label_png",
    "rle_area",
    "rle_bbox",
    "rle_iou",
    "rle_iou_matrix",
    "validate_rle",
    "write_binary_png",
    "write_label_png",
]

VOID_LABEL = 255  # DAVIS: pixels excluded from evaluation

_MAX_GROUP_CHARS = 12  # 60 bits: far beyond any real count, and shifts stay inside int64


@dataclass(frozen=True, slots=True)
class RleMask:
    """One binary mask as COCO compressed RLE; hashable and cheap to keep per frame."""

    size: tuple[int, int]  # (H, W)
    counts: str

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> RleMask:
        """Encode a (H, W) mask (bool, or any dtype where nonzero is foreground)."""
        d = encode_rle(mask)
        return cls((d["size"][0], d["size"][1]), d["counts"])

    @classmethod
    def empty(cls, height: int, width: int) -> RleMask:
        return cls.from_dict(empty_rle(height, width))

    @classmethod
    def from_dict(
        cls, rle: Mapping[str, Any], *, expected_size: tuple[int, int] | None = None, where: str = "RLE"
    ) -> RleMask:
        """Check an RLE dict (compressed or uncompressed counts) and return it compressed."""
        return validate_rle(rle, expected_size=expected_size, where=where)

    def to_dict(self) -> dict[str, Any]:
        return {"size": [self.size[0], self.size[1]], "counts": self.counts}

    def decode(self) -> np.ndarray:
        """The (H, W) bool mask."""
        return decode_rle(self)

    @property
    def area(self) -> int:
        return rle_area(self)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return rle_bbox(self)

    @property
    def is_empty(self) -> bool:
        return self.area == 0


RleLike = Mapping[str, Any] | RleMask


def _as_coco(rle: RleLike) -> dict[str, Any]:
    """The dict pycocotools wants (counts as bytes); `rle` must already be valid."""
    if isinstance(rle, RleMask):
        return {"size": list(rle.size), "counts": rle.counts.encode("ascii")}
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


def _parse_counts(counts: str, where: str) -> np.ndarray:
    """Decode the LEB128-like COCO counts string into run lengths (int64), checking every rule."""
    if not counts.isascii():
        raise FormatError(f"{where}: counts holds non-ASCII characters; COCO RLE uses only '0'..'o'")
    raw = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if raw.size == 0:
        return raw
    if raw.min() < 0 or raw.max() > 63:
        bad = counts[int(np.flatnonzero((raw < 0) | (raw > 63))[0])]
        raise FormatError(f"{where}: counts has the character {bad!r}; COCO RLE uses only '0'..'o'")
    more = (raw & 0x20) != 0
    if more[-1]:
        raise FormatError(f"{where}: counts ends in the middle of a number (truncated string?)")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > _MAX_GROUP_CHARS:
        raise FormatError(f"{where}: counts holds a number {lengths.max()} characters long; not a COCO RLE")
    group = np.repeat(np.arange(ends.size), lengths)
    shift = 5 * (np.arange(raw.size) - starts[group])
    values = np.zeros(ends.size, dtype=np.int64)
    np.add.at(values, group, (raw & 0x1F) << shift)  # disjoint bits, so add == or
    negative = (raw[ends] & 0x10) != 0
    values[negative] |= np.left_shift(np.int64(-1), 5 * lengths[negative])
    # counts from the fourth on are stored as the difference to the one two places back
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    if runs.size > 2:
        runs[2::2] = np.cumsum(values[2::2])
    return runs


def validate_rle(
    rle: RleLike, *, expected_size: tuple[int, int] | None = None, where: str = "RLE"
) -> RleMask:
    """Check `rle` fully (size, counts syntax, run lengths summing to H*W) and return an RleMask.

    `where` names the file and field in error messages. Uncompressed RLE (counts a list of
    ints, as in some COCO/YouTube-VIS files) is accepted and compressed.
    """
    return _checked(rle, expected_size, where)[0]


def _checked(rle: RleLike, expected_size: tuple[int, int] | None, where: str) -> tuple[RleMask, np.ndarray]:
    """The validated RleMask and its run lengths (int64, column-major, background first)."""
    if isinstance(rle, RleMask):
        size, counts = list(rle.size), rle.counts
    elif isinstance(rle, Mapping):
        missing = [k for k in ("size", "counts") if k not in rle]
        if missing:
            raise FormatError(
                f"{where}: RLE lacks {', '.join(map(repr, missing))}; expected {{'size': [H, W], 'counts': str}}"
            )
        size, counts = rle["size"], rle["counts"]
    else:
        raise FormatError(
            f"{where}: expected an RLE dict {{'size': [H, W], 'counts': str}}, got {type(rle).__name__}"
        )
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise FormatError(f"{where}: RLE size must be [H, W] with non-negative ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if expected_size is not None and (h, w) != tuple(expected_size):
        raise FormatError(
            f"{where}: RLE size is [{h}, {w}] but the image is {list(expected_size)} (H, W); "
            "was the mask encoded at another resolution, or with width and height swapped?"
        )
    if isinstance(counts, (bytes, bytearray)):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        runs = _parse_counts(counts, where)
    elif isinstance(counts, (list, tuple)):
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
            raise FormatError(f"{where}: uncompressed RLE counts must be a list of ints")
        runs = np.asarray(counts, dtype=np.int64)
    else:
        raise FormatError(
            f"{where}: RLE counts must be a string (or a list of ints), got {type(counts).__name__}"
        )
    if runs.size and runs.min() < 0:
        raise FormatError(f"{where}: RLE counts decode to a negative run length; the string is corrupt")
    total = int(runs.sum())
    if total != h * w:
        raise FormatError(
            f"{where}: RLE runs cover {total} pixels but size [{h}, {w}] has {h * w}; "
            "the counts do not belong to a mask of this size"
        )
    if isinstance(counts, str):
        return RleMask((h, w), counts), runs
    compressed = mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in runs]}, h, w)
    return RleMask((h, w), compressed["counts"].decode("ascii")), runs


def _runs_to_mask(size: tuple[int, int], runs: np.ndarray) -> np.ndarray:
    h, w = size
    # odd-numbered runs are foreground; pixels run down columns (Fortran order)
    flat = np.repeat(np.arange(runs.size) % 2 == 1, runs)
    return flat.reshape(w, h).T


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a (H, W) mask as `{"size": [H, W], "counts": str}`; nonzero is foreground."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(
            f"encode_rle expects one (H, W) mask, got shape {mask.shape}; use encode_rles for (N, H, W)"
        )
    rle = mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def encode_rles(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode (N, H, W) masks; one RLE dict per mask."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode_rles expects (N, H, W) masks, got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    stacked = np.asfortranarray(np.moveaxis(masks != 0, 0, -1), dtype=np.uint8)  # (H, W, N)
    return [
        {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}
        for r in mask_utils.encode(stacked)
    ]


def decode_rle(
    rle: RleLike, *, expected_size: tuple[int, int] | None = None, where: str = "RLE"
) -> np.ndarray:
    """Decode one RLE to a (H, W) bool mask, after validating it."""
    checked, runs = _checked(rle, expected_size, where)
    return np.ascontiguousarray(_runs_to_mask(checked.size, runs))


def decode_rles(
    rles: Sequence[RleLike], *, expected_size: tuple[int, int] | None = None, where: str = "RLE"
) -> np.ndarray:
    """Decode RLEs of one size to (N, H, W) bool; with no RLEs, `expected_size` gives (0, H, W)."""
    checked = [_checked(r, expected_size, f"{where}[{i}]") for i, r in enumerate(rles)]
    if not checked:
        h, w = expected_size if expected_size is not None else (0, 0)
        return np.zeros((0, h, w), dtype=bool)
    sizes = {c.size for c, _ in checked}
    if len(sizes) > 1:
        raise FormatError(f"{where}: RLEs of different sizes {sorted(sizes)} cannot be stacked")
    return np.stack([_runs_to_mask(c.size, runs) for c, runs in checked])


def empty_rle(height: int, width: int) -> dict[str, Any]:
    """The RLE of an all-background (H, W) mask."""
    return encode_rle(np.zeros((height, width), dtype=bool))


def rle_area(rle: RleLike) -> int:
    """Foreground pixel count, read from the runs without decoding."""
    return int(_checked(rle, None, "RLE")[1][1::2].sum())


def rle_bbox(rle: RleLike) -> tuple[float, float, float, float]:
    """COCO box `(x, y, w, h)` in pixels; (0, 0, 0, 0) for an empty mask."""
    box = mask_utils.toBbox(_as_coco(validate_rle(rle)))
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def rle_iou_matrix(a: Sequence[RleLike], b: Sequence[RleLike]) -> np.ndarray:
    """(len(a), len(b)) IoU between two lists of same-size RLEs; an empty union gives 0."""
    ca = [_as_coco(validate_rle(r)) for r in a]
    cb = [_as_coco(validate_rle(r)) for r in b]
    if not ca or not cb:
        return np.zeros((len(ca), len(cb)), dtype=np.float64)
    sizes = {tuple(r["size"]) for r in ca + cb}
    if len(sizes) > 1:
        raise ValueError(f"rle_iou needs RLEs of one size, got {sorted(sizes)}")
    return np.asarray(mask_utils.iou(ca, cb, [0] * len(cb)), dtype=np.float64).reshape(len(ca), len(cb))


def rle_iou(a: RleLike, b: RleLike, *, both_empty: float = 0.0) -> float:
    """IoU of two same-size RLEs; `both_empty` is returned when neither has a pixel."""
    if rle_area(a) == 0 and rle_area(b) == 0:
        return both_empty
    return float(rle_iou_matrix([a], [b])[0, 0])


def davis_palette() -> np.ndarray:
    """The (256, 3) uint8 palette of DAVIS/PASCAL VOC PNGs: 0 black, 1 dark red, ..., 255 void."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, rgb = index, [0, 0, 0]
        for bit in range(8):  # spread the index bits over the three channels, high bits first
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        palette[index] = rgb
    return palette


def _encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_label_png(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    *,
    palette: np.ndarray | None = None,
    durable: bool = True,
) -> Path:
    """Write a (H, W) uint8 label map as an indexed PNG (DAVIS palette unless given), atomically."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map is (H, W), got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError(
                f"labels must lie in 0..255 for an 8-bit PNG, got {labels.min()}..{labels.max()}"
            )
        labels = labels.astype(np.uint8)
    pal = davis_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    h, w = labels.shape
    image = Image.frombytes("P", (w, h), np.ascontiguousarray(labels).tobytes())
    image.putpalette(pal.reshape(-1).tolist())
    return write_bytes_atomic(path, _encode_png(image), durable=durable)


def _open_single_channel(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "1":
                return np.asarray(image, dtype=np.uint8)
            if mode not in ("P", "L", "I;16", "I"):
                raise FormatError(
                    f"{path}: a {mode} image; expected an indexed (palette) or grayscale PNG "
                    "holding one label per pixel"
                )
            return np.asarray(image)
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise FormatError(f"{path}: not a readable PNG ({e})") from None


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an indexed or 8-bit grayscale PNG as a (H, W) uint8 label map (palette ignored)."""
    path = Path(path)
    arr = _open_single_channel(path)
    if arr.dtype != np.uint8:
        if arr.size and arr.max() > 255:
            raise FormatError(f"{path}: labels up to {arr.max()} do not fit a DAVIS 8-bit label map")
        arr = arr.astype(np.uint8)
    return arr


def write_binary_png(path: str | os.PathLike[str], mask: np.ndarray, *, durable: bool = True) -> Path:
    """Write a (H, W) mask as a 1-bit PNG (0 background, 1 object), atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a binary mask is (H, W), got shape {mask.shape}")
    image = Image.fromarray(np.ascontiguousarray(mask != 0))  # mode "1": an eighth of the bytes to compress
    return write_bytes_atomic(path, _encode_png(image), durable=durable)


def read_binary_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a one-object PNG as a (H, W) bool mask (nonzero is the object)."""
    path = Path(path)
    arr = _open_single_channel(path)
    if arr.dtype == np.uint8:
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))  # much faster than np.unique
    else:
        values = np.unique(arr)
    if values.size > 2:
        raise FormatError(
            f"{path}: {values.size} distinct values {values[:6].tolist()}...; a binary mask PNG "
            "holds one object (0 and one other value); is this a multi-object label map?"
        )
    return arr != 0
