"""What a server instance is given: its database, its folders, its limits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerSettings"]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything `create_app` needs; nothing is read from the environment behind its back.

    database_url: SQLAlchemy URL (SQLite file by default, PostgreSQL by URL).
    data_dir: the server's own files (frame cache, uploads).
    media_roots: folders whose videos may be registered by path; nothing outside them is read.
    secure_cookies: mark the session cookie Secure (behind HTTPS).
    model, checkpoint, image_size, device: the one model of the process; fast: its tracking
    sessions in fast mode (`VideoPredictor(fast=True)`). Without a checkpoint
    model assistance is off (manual tools only) unless `random_weights` (demos and tests: the
    real architecture with random weights, which segments nothing meaningful).
    max_upload_mib: the largest video upload accepted.
    """

    database_url: str = "sqlite:///masklet.db"
    data_dir: Path = Path("masklet-data")
    media_roots: tuple[Path, ...] = ()
    secure_cookies: bool = False
    frame_jpeg_quality: int = 90
    session_cookie: str = "masklet_session"
    model: str = "sam2.1_hiera_t"
    checkpoint: str | None = None
    random_weights: bool = False
    image_size: int | None = None
    device: str = "cpu"
    fast: bool = False  # the tracking sessions in fast mode (predict.precision)
    max_open_workflows: int = 8
    # image-encoder outputs shared by all annotators (100 MiB a frame at 1024 px)
    embedding_cache_mib: int = 1024
    job_stale_after_s: float = 30.0  # a job without a heartbeat this long has lost its server
    max_upload_mib: int = 2048  # a video upload larger than this is refused (413)

    @property
    def model_assistance(self) -> bool:
        return self.checkpoint is not None or self.random_weights

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "media_roots", tuple(Path(os.path.realpath(p)) for p in self.media_roots))
