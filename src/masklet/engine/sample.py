"""The sample project a new server starts with, so that a first user sees the tool working.

A short clip of moving textured shapes (masklet's synthetic video, made on the spot: nothing
downloaded, nothing bundled) is written into the server's data folder and registered in a
project named `sample`, its one video ready for a first click.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from masklet.engine.projects import add_video
from masklet.engine.records import Project, Video
from masklet.engine.store import Store
from masklet.errors import MaskletError

__all__ = ["SAMPLE_PROJECT", "SampleProject", "add_sample_project"]

SAMPLE_PROJECT = "sample"
SAMPLE_FRAMES, SAMPLE_HEIGHT, SAMPLE_WIDTH, SAMPLE_OBJECTS, SAMPLE_FPS = 48, 360, 640, 3, 12.0


@dataclass(frozen=True, slots=True)
class SampleProject:
    project: Project
    video: Video


def add_sample_project(
    store: Store, data_dir: str | os.PathLike[str], *, by: str = "first run"
) -> SampleProject:
    """Write the sample clip under `data_dir/sample/` and register it in the project `sample`.

    Refuses when a project of that name exists (the caller decides on first run only).
    """
    from masklet.io.synthetic import make_synthetic_video, write_mp4

    if any(p.name == SAMPLE_PROJECT for p in store.list_projects()):
        raise MaskletError(f"a project named {SAMPLE_PROJECT!r} exists already")
    folder = Path(data_dir) / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    clip = make_synthetic_video(SAMPLE_FRAMES, SAMPLE_HEIGHT, SAMPLE_WIDTH, SAMPLE_OBJECTS, seed=0)
    path = write_mp4(clip.frames, folder / "shapes.mp4", fps=SAMPLE_FPS)
    project = store.create_project(SAMPLE_PROJECT, by=by)
    return SampleProject(project, add_video(store, project.id, path, by=by))
