"""The annotation store against SQLite and PostgreSQL (see conftest.py for the databases)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from masklet.engine.schema import Base
from masklet.engine.store import (
    MIGRATIONS_DIR,
    DuplicateError,
    InvalidEditError,
    StaleWriteError,
    Store,
    Video,
)
from masklet.errors import FormatError, MaskletError, NotFoundError, PromptError

H, W = 6, 8  # the `video` fixture's frame size
# pycocotools' decode trips numpy 2's __array__(copy=...) deprecation; not ours to fix here
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def box_mask(y0: int, x0: int, y1: int, x1: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ------------------------------------------------------------------------------------------- schema
def test_schema_comes_from_migrations_and_equals_the_models(store: Store, store_url: str) -> None:
    engine = create_engine(store_url, poolclass=NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert context.get_current_revision() == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    Store(store_url).close()  # opening again is a no-op upgrade


def test_migrations_run_down_and_up_outside_the_store(store_url: str, monkeypatch) -> None:
    monkeypatch.delenv("MASKLET_DB_URL", raising=False)
    config = Config()  # as the alembic command line would, minus the ini's logging setup
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", store_url.replace("%", "%%"))
    engine = create_engine(store_url, poolclass=NullPool)
    command.upgrade(config, "head")
    assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    command.downgrade(config, "base")
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()
    with Store(store_url) as store:  # opening upgrades it again
        assert store.create_project("again").id == 1


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path) -> None:
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            with pytest.raises(Exception, match="FOREIGN KEY"):
                conn.exec_driver_sql(
                    "INSERT INTO videos (project_id, path, fps, width, height, frame_count, content_hash,"
                    " created_at) VALUES (999, 'x', 1, 1, 1, 1, 'h', '2024-01-01')"
                )


def test_no_engine_at_import_and_postgresql_url_gets_psycopg3() -> None:
    import masklet.engine.store as module

    assert not any(isinstance(v, Store) for v in vars(module).values())
    assert module._normalise_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"


def test_newer_schema_is_refused_clearly(store: Store, store_url: str) -> None:
    with store._engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_from_the_future'"))
    with pytest.raises(MaskletError, match="newer masklet"):
        Store(store_url)


# ---------------------------------------------------------------------------------------- round trip
def test_round_trip_returns_frozen_domain_rows(store: Store, video: Video) -> None:
    assert store.list_projects()[0].name == "demo"
    assert store.get_project_by_name("demo").id == video.project_id
    assert store.get_video(video.id) == video
    assert (video.width, video.height, video.frame_count, video.fps) == (W, H, 10, 24.0)
    m = store.create_masklet(video.id, by="ann", category="dog", meta={"stability": 0.93})
    assert (m.obj_id, m.status, m.type, m.version, m.meta["stability"]) == (0, "draft", "manual", 1, 0.93)

    masks = {f: box_mask(f % H, 1, f % H + 1, 7) for f in range(3)}
    saved = store.put_frame_masks(
        m.id, {f: rle_of(k) for f, k in masks.items()}, source="propagated", by="ann"
    )
    assert [s.frame for s in saved] == [0, 1, 2] and all(s.version == 1 for s in saved)
    for fm in store.get_frame_masks(m.id):
        assert fm.size == (H, W) and fm.source == "propagated"
        np.testing.assert_array_equal(mask_utils.decode(fm.rle).astype(bool), masks[fm.frame])
    assert store.get_masklet(m.id).version == 2  # one batch, one content change
    # numpy frame indices (as propagation loops produce them) are plain ints to the store
    store.put_frame_mask(m.id, np.int64(5), rle_of(masks[0]), source="click_model", by="ann")
    assert [f.frame for f in store.get_frame_masks(m.id, frames=np.array([0, 5]))] == [0, 5]

    with pytest.raises(dataclasses.FrozenInstanceError):
        m.status = "accepted"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.meta["stability"] = 0.0  # type: ignore[index]
    assert store.get_masklet(m.id).status == "draft"


def test_lists_filter_and_object_ids_count_up(store: Store, video: Video) -> None:
    other_project = store.create_project("other")
    other = store.add_video(
        other_project.id, "b.mp4", fps=6, width=W, height=H, frame_count=3, content_hash="b"
    )
    a = store.create_masklet(video.id, by="ann")
    b = store.create_masklet(video.id, by="ann", type="auto")
    c = store.create_masklet(other.id, by="ann", obj_id=7)
    assert (a.obj_id, b.obj_id, c.obj_id) == (0, 1, 7)
    assert store.create_masklet(other.id, by="ann").obj_id == 8
    store.set_masklet_status(a.id, "in_review", expected_version=1, by="ann")
    assert [m.id for m in store.list_masklets(status="in_review")] == [a.id]
    assert [m.id for m in store.list_masklets(type="auto")] == [b.id]
    assert [m.id for m in store.list_masklets(video_id=video.id)] == [a.id, b.id]
    assert len(store.list_masklets(project_id=other_project.id)) == 2
    assert [v.id for v in store.list_videos(video.project_id)] == [video.id]
    assert store.list_videos(content_hash="b") == [other]


def test_duplicates_are_refused(store: Store, video: Video) -> None:
    with pytest.raises(DuplicateError, match=f"as video {video.id}"):
        store.add_video(
            video.project_id, "copy.mp4", fps=24, width=W, height=H, frame_count=10, content_hash="a" * 64
        )
    store.create_masklet(video.id, by="ann", obj_id=3)
    with pytest.raises(DuplicateError, match="object id 3"):
        store.create_masklet(video.id, by="ann", obj_id=3)
    with pytest.raises(DuplicateError):
        store.create_project("demo")


def test_unknown_ids_raise_not_found(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    calls = [
        lambda: store.get_project(404),
        lambda: store.get_project_by_name("nope"),
        lambda: store.get_video(404),
        lambda: store.get_masklet(404),
        lambda: store.add_video(404, "x.mp4", fps=1, width=1, height=1, frame_count=1, content_hash="x"),
        lambda: store.create_masklet(404, by="ann"),
        lambda: store.put_frame_mask(404, 0, rle_of(box_mask(0, 0, 1, 1)), source="manual", by="ann"),
        lambda: store.get_frame_masks(404),
        lambda: store.get_frame_mask(m.id, 5),
        lambda: store.set_masklet_status(404, "in_review", expected_version=1, by="ann"),
        lambda: store.add_prompt(404, 0, "box", {"box": [0, 0, 1, 1]}, by="ann"),
        lambda: store.log_event("click", by="ann", masklet_id=404),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()


# ------------------------------------------------------------------------------------ refused edits
def _nothing_saved(store: Store, masklet_id: int, events_before: int) -> None:
    assert store.get_frame_masks(masklet_id) == []
    assert store.get_masklet(masklet_id).version == 1
    assert len(store.list_events()) == events_before


def test_frame_past_the_end_is_refused_and_nothing_is_saved(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    before = len(store.list_events())
    good = rle_of(box_mask(0, 0, 2, 2))
    with pytest.raises(InvalidEditError, match=r"frame 10 is outside video .* frames 0\.\.9"):
        store.put_frame_masks(m.id, {0: good, 1: good, 10: good}, source="propagated", by="ann")
    with pytest.raises(InvalidEditError, match="outside"):
        store.put_frame_mask(m.id, -1, good, source="manual", by="ann")
    with pytest.raises(InvalidEditError, match="outside"):
        store.add_prompt(m.id, 10, "box", {"box": [0, 0, 1, 1]}, by="ann")
    _nothing_saved(store, m.id, before)


def test_bad_rle_is_refused_and_nothing_is_saved(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    before = len(store.list_events())
    good = rle_of(box_mask(0, 0, 2, 2))
    transposed = rle_of(np.zeros((W, H), dtype=bool))
    with pytest.raises(FormatError, match=f"RLE size {W}x{H} .* does not match the video's {H}x{W}"):
        store.put_frame_masks(m.id, {0: good, 1: transposed}, source="propagated", by="ann")
    bad = [
        {"size": [H, W]},
        {"size": [H], "counts": good["counts"]},
        {"size": [H, W], "counts": [0, H * W]},  # uncompressed
        {"size": [H, W], "counts": "~~~"},
        "not an rle",
    ]
    for rle in bad:
        with pytest.raises(FormatError):
            store.put_frame_mask(m.id, 0, rle, source="manual", by="ann")  # type: ignore[arg-type]
    with pytest.raises(InvalidEditError, match="mask source"):
        store.put_frame_mask(m.id, 0, good, source="magic", by="ann")
    _nothing_saved(store, m.id, before)


def test_status_moves_only_along_the_workflow(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    with pytest.raises(InvalidEditError, match="draft; it can move to in_review, not accepted"):
        store.set_masklet_status(m.id, "accepted", expected_version=1, by="rev")
    m = store.set_masklet_status(m.id, "in_review", expected_version=1, by="ann", phase=3)
    m = store.set_masklet_status(m.id, "rejected", expected_version=m.version, by="rev", reason="leaks")
    m = store.set_masklet_status(m.id, "draft", expected_version=m.version, by="ann")
    assert (m.status, m.version) == ("draft", 4)
    history = store.list_events(masklet_id=m.id, action="masklet.status")
    assert [(e.payload["from"], e.payload["to"], e.by) for e in history] == [
        ("draft", "in_review", "ann"),
        ("in_review", "rejected", "rev"),
        ("rejected", "draft", "ann"),
    ]
    assert history[1].payload["reason"] == "leaks" and history[0].phase == 3
    with pytest.raises(InvalidEditError, match="masklet status"):
        store.set_masklet_status(m.id, "done", expected_version=m.version, by="rev")


# ------------------------------------------------------------------------------- optimistic locking
def test_stale_frame_mask_write_fails(store: Store, store_url: str, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    store.put_frame_mask(m.id, 4, rle_of(box_mask(0, 0, 2, 2)), source="click_model", by="ann")
    with Store(store_url) as alice, Store(store_url) as bob:
        read_a = alice.get_frame_mask(m.id, 4)  # both read version 1
        read_b = bob.get_frame_mask(m.id, 4)
        mask_a, mask_b = box_mask(0, 0, 3, 3), box_mask(2, 2, 6, 8)
        saved = alice.put_frame_mask(
            m.id, 4, rle_of(mask_a), source="manual", by="alice", expected_version=read_a.version
        )
        assert saved.version == 2
        with pytest.raises(
            StaleWriteError, match="frame 4 of masklet .* has version 2 .* based on version 1"
        ):
            bob.put_frame_mask(
                m.id, 4, rle_of(mask_b), source="manual", by="bob", expected_version=read_b.version
            )
        # A write that believes the frame is empty is stale too, and so is a delete of an old version.
        with pytest.raises(StaleWriteError, match="based on no mask"):
            bob.put_frame_mask(m.id, 4, rle_of(mask_b), source="manual", by="bob")
        with pytest.raises(StaleWriteError):
            bob.delete_frame_mask(m.id, 4, expected_version=1, by="bob")
    kept = store.get_frame_mask(m.id, 4)
    assert (kept.version, kept.source) == (2, "manual")
    np.testing.assert_array_equal(mask_utils.decode(kept.rle).astype(bool), mask_a)
    assert [e.by for e in store.list_events(masklet_id=m.id, action="mask.put")] == ["ann", "alice"]


def test_stale_status_write_fails_also_after_a_mask_edit(store: Store, store_url: str, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    m = store.set_masklet_status(m.id, "in_review", expected_version=1, by="ann")
    with Store(store_url) as rev1, Store(store_url) as rev2:
        seen1, seen2 = rev1.get_masklet(m.id), rev2.get_masklet(m.id)
        rev1.set_masklet_status(m.id, "accepted", expected_version=seen1.version, by="rev1")
        with pytest.raises(StaleWriteError, match=f"masklet {m.id} has version 3"):
            rev2.set_masklet_status(m.id, "rejected", expected_version=seen2.version, by="rev2", reason="no")
    assert store.get_masklet(m.id).status == "accepted"

    # A reviewer who saw the masks before an annotator changed one cannot accept the new ones unseen.
    n = store.set_masklet_status(
        store.create_masklet(video.id, by="ann").id, "in_review", expected_version=1, by="ann"
    )
    store.put_frame_mask(n.id, 0, rle_of(box_mask(0, 0, 1, 1)), source="manual", by="ann")
    with pytest.raises(StaleWriteError):
        store.set_masklet_status(n.id, "accepted", expected_version=n.version, by="rev")


def test_delete_with_the_current_version(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    fm = store.put_frame_mask(m.id, 2, rle_of(box_mask(0, 0, 1, 1)), source="manual", by="ann")
    fm = store.put_frame_mask(
        m.id, 2, rle_of(box_mask(0, 0, 2, 2)), source="manual", by="ann", expected_version=1
    )
    store.delete_frame_mask(m.id, 2, expected_version=fm.version, by="ann", phase=1)
    assert store.get_frame_masks(m.id) == []
    assert store.list_events(action="mask.delete")[0].frame == 2
    again = store.put_frame_mask(m.id, 2, rle_of(box_mask(0, 0, 1, 1)), source="manual", by="ann")
    assert again.version == 1


def test_concurrent_writers_of_one_masklet_all_land(store: Store, store_url: str, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    rle = rle_of(box_mask(0, 0, 2, 2))
    errors: list[BaseException] = []

    def write(target: Store, frames: range, who: str) -> None:
        try:
            for f in frames:
                target.put_frame_mask(m.id, f, rle, source="manual", by=who)
                target.get_masklet(m.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with Store(store_url) as other:
        threads = [
            threading.Thread(target=write, args=(store, range(0, 6, 2), "a")),  # one Store, two threads
            threading.Thread(target=write, args=(store, range(1, 6, 2), "b")),
            threading.Thread(target=write, args=(other, range(6, 10), "c")),  # and a second client
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert [f.frame for f in store.get_frame_masks(m.id)] == list(range(10))
    assert store.get_masklet(m.id).version == 11


# ----------------------------------------------------------------------------------- transactions
def test_transaction_commits_all_or_nothing(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    rle = rle_of(box_mask(0, 0, 1, 1))
    with pytest.raises(RuntimeError, match="annotator quit"):
        with store.transaction():
            store.put_frame_mask(m.id, 0, rle, source="manual", by="ann")
            store.log_event("frame.done", by="ann", masklet_id=m.id, frame=0, phase=1, duration_s=12.5)
            raise RuntimeError("annotator quit")
    assert store.get_frame_masks(m.id) == [] and store.list_events(action="frame.done") == []

    with store.transaction():
        store.put_frame_mask(m.id, 0, rle, source="manual", by="ann")
        with pytest.raises(InvalidEditError):  # a refused edit inside undoes only itself
            store.put_frame_mask(m.id, 99, rle, source="manual", by="ann")
        assert [f.frame for f in store.get_frame_masks(m.id)] == [0]  # reads see the open transaction
        store.put_frame_mask(m.id, 1, rle, source="manual", by="ann")
    assert [f.frame for f in store.get_frame_masks(m.id)] == [0, 1]


# ------------------------------------------------------------------------------- prompts and events
def test_prompts_are_checked_and_logged_with_clicks(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    click = store.add_prompt(
        m.id, 3, "click", {"points": [[1, 2], [5, 4]], "labels": [1, 0]}, by="ann", phase=3
    )
    store.add_prompt(m.id, 3, "box", {"box": [0, 0, 4, 5]}, by="ann", phase=3)
    store.add_prompt(m.id, 5, "mask", {"rle": rle_of(box_mask(0, 0, 2, 2))}, by="ann", phase=2)
    assert [p.kind for p in store.list_prompts(m.id, frame=3)] == ["click", "box"]
    assert click.payload["labels"] == [1, 0]
    events = store.list_events(masklet_id=m.id, action="prompt.add")
    assert [(e.frame, e.phase, e.payload["clicks"]) for e in events] == [(3, 3, 2), (3, 3, 0), (5, 2, 0)]
    bad = [
        ("click", {"points": [[1, 2]], "labels": [1, 1]}),
        ("click", {"points": [[1, 2]], "labels": [2]}),
        ("click", {"points": [[W + 1, 1]], "labels": [1]}),  # outside the frame
        ("click", {"points": [["a", 1]], "labels": [1]}),
        ("box", {"box": [5, 0, 1, 1]}),
        ("box", {"box": [0, 0, 4, H + 1]}),
        ("mask", {"rle": rle_of(np.zeros((3, 3), dtype=bool))}),
    ]
    for kind, payload in bad:
        with pytest.raises(PromptError):
            store.add_prompt(m.id, 0, kind, payload, by="ann")
    assert len(store.list_prompts(m.id)) == 3


def test_event_log_fills_references_and_filters(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    e = store.log_event("frame.done", by="ann", masklet_id=m.id, frame=9, phase=1, duration_s=37.8,
                        payload={"clicks": 5, "edited": True})  # fmt: skip
    assert (e.project_id, e.video_id, e.masklet_id, e.frame, e.duration_s) == (
        video.project_id,
        video.id,
        m.id,
        9,
        37.8,
    )
    assert e.at.tzinfo is not None and e.payload["clicks"] == 5
    store.log_event("frame.done", by="bob", video_id=video.id, frame=0, phase=2, duration_s=7.4)
    assert [x.by for x in store.list_events(project_id=video.project_id, action="frame.done")] == [
        "ann",
        "bob",
    ]
    assert [x.by for x in store.list_events(phase=2)] == ["bob"]
    assert store.list_events(masklet_id=m.id, action="frame.done") == [e]
    with pytest.raises(InvalidEditError, match="contradicts"):
        store.log_event("x", by="ann", masklet_id=m.id, video_id=video.id + 1)
    with pytest.raises(InvalidEditError, match="outside"):
        store.log_event("x", by="ann", video_id=video.id, frame=10)
    with pytest.raises(InvalidEditError, match="`by`"):
        store.log_event("x", by="", video_id=video.id)
    with pytest.raises(InvalidEditError, match="duration_s"):
        store.log_event("x", by="ann", duration_s=-1.0)


def test_annotator_time_rides_on_prompt_and_mask_events(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    store.add_prompt(m.id, 2, "click", {"points": [[1, 2]], "labels": [1]}, by="ann", phase=1,
                     duration_s=np.float32(2.5))  # fmt: skip
    store.add_prompt(m.id, 2, "box", {"box": [0, 0, 4, 5]}, by="ann", phase=1)
    store.put_frame_mask(m.id, 2, rle_of(box_mask(0, 0, 2, 2)), source="click_model", by="ann", duration_s=4)
    # a batch's time is logged once, on its first (lowest) frame
    masks = {f: rle_of(box_mask(0, 0, 3, 3)) for f in (7, 5, 6)}
    store.put_frame_masks(m.id, masks, source="propagated", by="ann", duration_s=1.25)
    prompts = store.list_events(masklet_id=m.id, action="prompt.add")
    assert [(e.frame, e.duration_s, e.payload["clicks"]) for e in prompts] == [(2, 2.5, 1), (2, None, 0)]
    puts = store.list_events(masklet_id=m.id, action="mask.put")
    assert [(e.frame, e.duration_s) for e in puts] == [(2, 4.0), (5, 1.25), (6, None), (7, None)]
    assert isinstance(puts[0].duration_s, float)
    for bad in (-1.0, float("nan"), float("inf"), True, "3"):
        with pytest.raises(InvalidEditError, match="duration_s"):
            store.add_prompt(m.id, 0, "box", {"box": [0, 0, 1, 1]}, by="ann", duration_s=bad)
        with pytest.raises(InvalidEditError, match="duration_s"):
            store.put_frame_masks(m.id, {0: rle_of(box_mask(0, 0, 1, 1))}, source="manual", by="ann",
                                  duration_s=bad)  # fmt: skip
    assert len(store.list_prompts(m.id)) == 2 and len(store.get_frame_masks(m.id)) == 4


# ----------------------------------------------------------------------------------- crash safety
CHILD = textwrap.dedent(
    """
    import sys
    from masklet.engine.store import Store

    url, masklet_id, counts = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = Store(url)
    print("ready", flush=True)
    frame = 0
    while True:  # a "propagation": one transaction per frame, reported only after its commit
        store.put_frame_mask(masklet_id, frame, {"size": [6, 8], "counts": counts},
                             source="propagated", by="propagator", phase=2)
        print(frame, flush=True)
        frame += 1
    """
)


def test_killed_propagation_keeps_every_saved_frame(store: Store, store_url: str) -> None:
    project = store.create_project("crash")
    long_video = store.add_video(project.id, "long.mp4", fps=24, width=W, height=H, frame_count=100_000,
                                 content_hash="c")  # fmt: skip
    m = store.create_masklet(long_video.id, by="ann")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store_url, str(m.id), rle_of(box_mask(1, 2, 4, 6))["counts"]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    reported: list[int] = []
    deadline = time.monotonic() + 120
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready", child.stderr.read()
        while len(reported) < 25 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, f"the writer died early: {child.stderr.read()}"
            reported.append(int(line))
        os.kill(child.pid, signal.SIGKILL)  # mid-propagation: it is writing the next frames
        child.wait(timeout=30)
        reported += [int(line) for line in child.stdout.read().split()]  # reported before the kill
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL and len(reported) >= 25

    with Store(store_url) as after:
        saved = [f.frame for f in after.get_frame_masks(m.id)]
        assert set(reported) <= set(saved)
        assert saved == list(range(len(saved))) and len(saved) - len(reported) in (0, 1)
        assert after.get_masklet(m.id).version == 1 + len(saved)
        assert len(after.list_events(masklet_id=m.id, action="mask.put")) == len(saved)
        np.testing.assert_array_equal(
            mask_utils.decode(after.get_frame_mask(m.id, 0).rle), box_mask(1, 2, 4, 6)
        )
        after.put_frame_mask(m.id, len(saved), rle_of(box_mask(0, 0, 1, 1)), source="manual", by="ann")
        with after._engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
