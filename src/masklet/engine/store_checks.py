"""What the store refuses, and why: its error classes and the checks of edit arguments and payloads."""

from __future__ import annotations

import json
import math
import numbers
import operator
import re
from collections.abc import Mapping
from typing import Any

from masklet.engine.schema import VideoRow
from masklet.errors import FormatError, MaskletError, PromptError

_COCO_COUNTS = re.compile(r"[0-o]+")  # the compressed-RLE alphabet, '0'..'o'


class StaleWriteError(MaskletError):
    """A write based on a version that another writer has replaced; re-read and retry."""


class InvalidEditError(MaskletError, ValueError):
    """An edit the store refuses: a frame past the video's end, a bad status change or value."""


class DuplicateError(InvalidEditError):
    """A second video with the same content hash in a project, or a second masklet with one object id."""


def check_version(actual: int | None, expected: int | None, what: str) -> None:
    if actual != expected:

        def say(v: int | None) -> str:
            return "no mask" if v is None else f"version {v}"

        raise StaleWriteError(
            f"{what} has {say(actual)} but this write was based on {say(expected)}: another writer changed it "
            "since it was read; re-read it, reapply the edit and retry"
        )


def same_id(given: int | None, actual: int, name: str, owner: str) -> int:
    """`actual`, after checking that a `given` id (if any) agrees with it."""
    if given is not None and given != actual:
        raise InvalidEditError(f"{name}={given} contradicts {owner}, which belongs to {name}={actual}")
    return actual


def json_text(value: Mapping[str, Any] | None, what: str) -> str:
    """A JSON object as compact text (None gives `{}`)."""
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise InvalidEditError(f"{what} must be a JSON object (a mapping), got {type(value).__name__}")
    try:
        return json.dumps(dict(value), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEditError(f"{what} must be JSON-serialisable: {exc}") from exc


def check_duration(duration_s: float | None) -> float | None:
    """An annotator time in seconds (a finite number >= 0) as a float; None stays None."""
    if duration_s is None:
        return None
    real = isinstance(duration_s, numbers.Real) and not isinstance(duration_s, bool)
    if not real or not 0 <= duration_s < math.inf:
        raise InvalidEditError(f"duration_s must be a non-negative number of seconds, got {duration_s!r}")
    return float(duration_s)


def one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidEditError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_text(value: str, what: str, max_len: int = 200) -> str:
    if not isinstance(value, str) or not 0 < len(value.strip()) <= max_len:
        raise InvalidEditError(
            f"{what} must be a non-empty string of at most {max_len} characters, got {value!r:.80}"
        )
    return value


def check_frame(video: VideoRow, frame: int) -> int:
    try:
        index = operator.index(frame)  # numpy integers welcome; floats and strings not
    except TypeError:
        index = -1
    if isinstance(frame, bool) or not 0 <= index < video.frame_count:
        raise InvalidEditError(
            f"frame {frame!r} is outside video {video.id}, which has frames 0..{video.frame_count - 1}; "
            "check the frame index (or the frame count the video was added with)"
        )
    return index


def rle_json(rle: Mapping[str, Any], *, height: int, width: int) -> str:
    """Check a compressed COCO RLE against an (H, W) frame and return its canonical JSON text.

    Reads `size` and the counts' alphabet only; it does not decode the mask.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise FormatError(f"expected a COCO RLE mapping {{'size': [h, w], 'counts': str}}, got {rle!r:.80}")
    size, counts = rle["size"], rle["counts"]
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise FormatError(f"RLE 'size' must be [height, width] as two integers, got {size!r:.80}")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str):
        raise FormatError(
            f"RLE 'counts' must be a compressed string, got {type(counts).__name__}; "
            "compress uncompressed RLE with pycocotools.mask.frPyObjects first"
        )
    if not _COCO_COUNTS.fullmatch(counts):
        raise FormatError("RLE 'counts' is empty or has characters outside the COCO alphabet ('0'..'o')")
    if (size[0], size[1]) != (height, width):
        raise FormatError(
            f"RLE size {size[0]}x{size[1]} (h x w) does not match the video's {height}x{width}; "
            "encode the mask at the video's resolution"
        )
    return json.dumps({"size": [size[0], size[1]], "counts": counts}, separators=(",", ":"))


def check_prompt(kind: str, payload: Mapping[str, Any], video: VideoRow) -> None:
    """Shape and range checks of a prompt payload in video pixels (see `Store.add_prompt`)."""

    def inside(x: Any, y: Any) -> bool:
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        return numbers and 0 <= x <= video.width and 0 <= y <= video.height

    if kind == "click":
        points, labels = payload.get("points"), payload.get("labels")
        ok = isinstance(points, list) and isinstance(labels, list) and len(points) == len(labels) > 0
        if not ok or not all(isinstance(p, list | tuple) and len(p) == 2 and inside(*p) for p in points):
            raise PromptError(
                'a click prompt needs {"points": [[x, y], ...], "labels": [1 or 0, ...]} of equal length, '
                f"points inside the {video.width}x{video.height} (w x h) frame; got {dict(payload)!r:.120}"
            )
        if any(label not in (0, 1) for label in labels):
            raise PromptError(f"click labels must be 1 (foreground) or 0 (background), got {labels!r:.80}")
    elif kind == "box":
        box = payload.get("box")
        ok = isinstance(box, list | tuple) and len(box) == 4 and inside(*box[:2]) and inside(*box[2:])
        if not ok or not (box[0] <= box[2] and box[1] <= box[3]):
            raise PromptError(
                f'a box prompt needs {{"box": [x0, y0, x1, y1]}}, x0 <= x1 and y0 <= y1, inside the '
                f"{video.width}x{video.height} (w x h) frame; got {box!r:.80}"
            )
    else:
        try:
            rle_json(payload.get("rle"), height=video.height, width=video.width)  # type: ignore[arg-type]
        except FormatError as exc:
            raise PromptError(f'a mask prompt needs {{"rle": COCO RLE}} of the video size: {exc}') from exc
