"""Video frames as JPEG, decoded on demand (PyAV through `open_frame_source`) and cached on disk.

Cache layout: DATA_DIR/frames/<video id>/<frame:06d>.q<quality>.jpg, written to a temporary
name and renamed, so that a reader never sees half a file. Open sources are kept in a small
LRU (a seek in an open mp4 is much cheaper than opening it again).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from masklet.engine.records import Video
from masklet.errors import FrameSourceError
from masklet.io.frames import FrameSource, open_frame_source


class FrameCache:
    def __init__(self, data_dir: Path, *, quality: int = 90, open_sources: int = 4) -> None:
        self.root = Path(data_dir) / "frames"
        self.quality = quality
        self._sources: OrderedDict[int, FrameSource] = OrderedDict()
        self._max_sources = open_sources
        self._lock = threading.Lock()

    def path(self, video: Video, frame: int) -> Path:
        return self.root / str(video.id) / f"{frame:06d}.q{self.quality}.jpg"

    def jpeg(self, video: Video, frame: int) -> Path:
        """The cached JPEG of one frame, decoding and writing it first if needed."""
        if not 0 <= frame < video.frame_count:
            raise FrameSourceError(
                f"frame {frame} is past the end of video {video.id} (frames 0..{video.frame_count - 1})"
            )
        target = self.path(video, frame)
        if target.exists():
            return target
        with self._lock:  # decoders are not thread-safe; one decode at a time per process
            pixels = self._source(video).get(frame)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=self.quality)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(buffer.getvalue())
        os.replace(tmp, target)
        return target

    def _source(self, video: Video) -> FrameSource:
        source = self._sources.pop(video.id, None)
        if source is None:
            source = open_frame_source(video.path, fps=video.fps)
        self._sources[video.id] = source
        while len(self._sources) > self._max_sources:
            _, oldest = self._sources.popitem(last=False)
            oldest.close()
        return source

    def close(self) -> None:
        with self._lock:
            for source in self._sources.values():
                source.close()
            self._sources.clear()
