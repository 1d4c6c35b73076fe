"""`Store` methods for projects and the videos registered in them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from masklet.engine.records import Project, Video, as_project, as_video
from masklet.engine.schema import ProjectRow, VideoRow, utc_now
from masklet.engine.store_base import StoreMethods, add_event, add_row, get_row, where_given
from masklet.engine.store_checks import DuplicateError, InvalidEditError, check_text, json_text
from masklet.engine.vocabulary import EventAction
from masklet.errors import NotFoundError


class ProjectMethods(StoreMethods):
    def create_project(self, name: str, *, by: str = "system") -> Project:
        check_text(name, "project name")
        with self._write() as s:
            if s.scalar(select(ProjectRow.id).where(ProjectRow.name == name)) is not None:
                raise DuplicateError(f"a project named {name!r} already exists; pick another name")
            row = ProjectRow(name=name, created_at=utc_now())
            add_row(s, row, f"project {name!r}")
            add_event(s, EventAction.PROJECT_CREATE, {"name": name}, by=by, project_id=row.id)
            return as_project(row)

    def get_project(self, project_id: int) -> Project:
        with self._read() as s:
            return as_project(get_row(s, ProjectRow, project_id))

    def get_project_by_name(self, name: str) -> Project:
        with self._read() as s:
            row = s.scalars(select(ProjectRow).where(ProjectRow.name == name)).one_or_none()
            if row is None:
                raise NotFoundError(f"no project named {name!r}; create it with Store.create_project")
            return as_project(row)

    def list_projects(self) -> list[Project]:
        with self._read() as s:
            return [as_project(r) for r in s.scalars(select(ProjectRow).order_by(ProjectRow.id))]

    def add_video(
        self,
        project_id: int,
        path: str | Path,
        *,
        fps: float,
        width: int,
        height: int,
        frame_count: int,
        content_hash: str,
        meta: Mapping[str, Any] | None = None,
        by: str = "system",
    ) -> Video:
        """Register a video file; `content_hash` (e.g. sha256 of the file) is unique within a project.

        `meta` is a JSON object kept with the video (e.g. the SA-V fields under "sav"); None is `{}`.
        """
        for name, value in (("width", width), ("height", height), ("frame_count", frame_count)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidEditError(f"video {name} must be a positive integer, got {value!r}")
        if not isinstance(fps, int | float) or not fps > 0:
            raise InvalidEditError(f"video fps must be a positive number, got {fps!r}")
        check_text(content_hash, "content_hash", 128)
        meta_text = json_text(meta, "video meta")
        with self._write() as s:
            get_row(s, ProjectRow, project_id)
            same = select(VideoRow.id).where(
                VideoRow.project_id == project_id, VideoRow.content_hash == content_hash
            )
            if (existing := s.scalar(same)) is not None:
                raise DuplicateError(
                    f"project {project_id} already holds this video (hash {content_hash[:16]}) as video {existing}"
                )
            row = VideoRow(
                project_id=project_id,
                path=str(path),
                fps=float(fps),
                width=width,
                height=height,
                frame_count=frame_count,
                content_hash=content_hash,
                meta=meta_text,
                created_at=utc_now(),
            )
            add_row(s, row, f"video {content_hash[:16]} in project {project_id}")
            payload = {"path": str(path), **({"meta": dict(meta)} if meta else {})}
            add_event(s, EventAction.VIDEO_ADD, payload, by=by, video=row)
            return as_video(row)

    def set_video_meta(
        self, video_id: int, meta: Mapping[str, Any], *, by: str, merge: bool = False
    ) -> Video:
        """Replace a video's meta with `meta`, or with `merge`, set only its top-level keys.

        The row is locked while it changes, so concurrent merges of different keys all land.
        Logs `video.meta` {meta, merge} (the edit as given).
        """
        given = json.loads(json_text(meta, "video meta"))  # as stored: keys become strings
        with self._write() as s:
            row = get_row(s, VideoRow, video_id, lock=True)
            row.meta = json_text({**json.loads(row.meta), **given} if merge else given, "video meta")
            add_event(s, EventAction.VIDEO_META, {"meta": given, "merge": merge}, by=by, video=row)
            s.flush()
            return as_video(row)

    def get_video(self, video_id: int) -> Video:
        with self._read() as s:
            return as_video(get_row(s, VideoRow, video_id))

    def list_videos(self, project_id: int | None = None, *, content_hash: str | None = None) -> list[Video]:
        stmt = where_given(
            select(VideoRow).order_by(VideoRow.id),
            (VideoRow.project_id, project_id),
            (VideoRow.content_hash, content_hash),
        )
        with self._read() as s:
            return [as_video(r) for r in s.scalars(stmt)]
