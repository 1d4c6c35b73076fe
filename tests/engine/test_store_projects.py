"""Store methods for videos: the meta JSON object, given at registration and edited later."""

from __future__ import annotations

import threading

import pytest

from masklet.engine.store import InvalidEditError, Store, Video
from masklet.errors import NotFoundError


def test_video_meta_defaults_to_empty_and_is_read_only(store: Store, video: Video) -> None:
    assert dict(video.meta) == {} and store.get_video(video.id) == video
    with pytest.raises(TypeError):
        video.meta["x"] = 1  # type: ignore[index]
    tagged = store.add_video(video.project_id, "b.mp4", fps=30, width=8, height=6, frame_count=2,
                             content_hash="b", meta={"sav": {"video_split": "val"}}, by="me")  # fmt: skip
    assert store.get_video(tagged.id).meta["sav"] == {"video_split": "val"}
    (added,) = store.list_events(video_id=tagged.id, action="video.add")
    assert added.payload == {"path": "b.mp4", "meta": {"sav": {"video_split": "val"}}}
    with pytest.raises(InvalidEditError, match="video meta"):
        store.add_video(video.project_id, "c.mp4", fps=30, width=8, height=6, frame_count=2,
                        content_hash="c", meta={"bad": {1, 2}})  # fmt: skip
    assert [v.path for v in store.list_videos(video.project_id)] == ["clips/demo.mp4", "b.mp4"]


def test_set_video_meta_replaces_or_merges_and_logs_the_edit(store: Store, video: Video) -> None:
    first = store.set_video_meta(video.id, {"sav": {"video_id": "x"}, "note": "dark"}, by="ann")
    assert dict(first.meta) == {"sav": {"video_id": "x"}, "note": "dark"}
    merged = store.set_video_meta(video.id, {"note": "bright", 7: True}, by="bob", merge=True)
    # keys come back as JSON stores them
    assert dict(merged.meta) == {"sav": {"video_id": "x"}, "note": "bright", "7": True}
    replaced = store.set_video_meta(video.id, {"only": 1}, by="ann")
    assert dict(store.get_video(video.id).meta) == dict(replaced.meta) == {"only": 1}
    # only meta moves
    assert (replaced.path, replaced.fps, replaced.created_at) == (video.path, video.fps, video.created_at)
    events = store.list_events(video_id=video.id, action="video.meta")
    assert [(e.by, e.project_id, e.payload["merge"]) for e in events] == [
        ("ann", video.project_id, False),
        ("bob", video.project_id, True),
        ("ann", video.project_id, False),
    ]
    assert events[1].payload["meta"] == {"note": "bright", "7": True}


def test_set_video_meta_refuses_bad_values_and_unknown_videos(store: Store, video: Video) -> None:
    store.set_video_meta(video.id, {"keep": 1}, by="ann")
    for bad in ([1, 2], {"nan": float("nan")}, {"obj": object()}):
        with pytest.raises(InvalidEditError, match="video meta"):
            store.set_video_meta(video.id, bad, by="ann")  # type: ignore[arg-type]
    with pytest.raises(InvalidEditError, match="`by`"):
        store.set_video_meta(video.id, {"x": 1}, by="")
    with pytest.raises(NotFoundError, match="no video with id 999"):
        store.set_video_meta(999, {"x": 1}, by="ann")
    assert dict(store.get_video(video.id).meta) == {"keep": 1}
    assert len(store.list_events(action="video.meta")) == 1


def test_set_video_meta_in_a_failed_transaction_is_undone(store: Store, video: Video) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.set_video_meta(video.id, {"x": 1}, by="ann")
        raise RuntimeError("later step failed")
    assert dict(store.get_video(video.id).meta) == {} and store.list_events(action="video.meta") == []


def test_concurrent_merges_of_different_keys_all_land(store: Store, store_url: str, video: Video) -> None:
    errors: list[BaseException] = []

    def writer(key: str) -> None:
        try:
            with Store(store_url) as own:
                for i in range(5):
                    own.set_video_meta(video.id, {f"{key}{i}": i}, by=key, merge=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dict(store.get_video(video.id).meta) == {f"{k}{i}": i for k in "ab" for i in range(5)}
