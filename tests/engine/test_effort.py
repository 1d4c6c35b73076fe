"""The effort table on a hand-built event log with known numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from masklet.engine.effort import effort_table, log_time, masklet_iou
from masklet.engine.store import Store, Video
from masklet.errors import MaskletError
from masklet.io.masks import encode_rle

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def rows(video: Video, y0: int, y1: int) -> dict:
    mask = np.zeros((video.height, video.width), dtype=bool)
    mask[y0:y1] = True
    return encode_rle(mask)


def click(store: Store, masklet_id: int, frame: int, n: int, phase: int) -> None:
    payload = {"points": [[1, 1]] * n, "labels": [1] * n}
    store.add_prompt(masklet_id, frame, "click", payload, by="ann", phase=phase)


def build_log(store: Store, video: Video) -> dict[str, int]:
    # Phase 1, masklet A: frames 0 and 1; 2 clicks, then a pixel edit, on each; 1 + 3 + 10 s a frame
    a = store.create_masklet(video.id, by="ann", phase=1)
    for frame in (0, 1):
        click(store, a.id, frame, 2, phase=1)
        store.put_frame_mask(a.id, frame, rows(video, 0, 2), source="click_model", by="ann", phase=1)
        store.put_frame_mask(
            a.id, frame, rows(video, 0, 3), source="manual", by="ann", phase=1, expected_version=1
        )
        log_time(store, "time.locate", 1.0, by="ann", phase=1, masklet_id=a.id, frame=frame)
        log_time(store, "time.click", 3.0, by="ann", phase=1, masklet_id=a.id, frame=frame)
        log_time(
            store, "time.edit", 10.0, by="ann", phase=1, masklet_id=a.id, frame=frame, payload={"strokes": 2}
        )
    # Phase 3, masklet B: 3 clicks on frame 0, propagated to 1..3, 1 refinement click on frame 2
    b = store.create_masklet(video.id, by="ann", phase=3)
    click(store, b.id, 0, 3, phase=3)
    store.put_frame_mask(b.id, 0, rows(video, 0, 4), source="click_model", by="ann", phase=3)
    masks = {f: rows(video, 0, 4) for f in (1, 2, 3)}
    store.put_frame_masks(b.id, masks, source="propagated", by="ann", phase=3)
    click(store, b.id, 2, 1, phase=3)
    store.put_frame_mask(
        b.id, 2, rows(video, 0, 4), source="click_model", by="ann", phase=3, expected_version=1
    )
    log_time(store, "time.examine", 2.0, by="ann", phase=3, video_id=video.id)  # no masklet: still counted
    log_time(store, "time.locate", 2.0, by="ann", phase=3, masklet_id=b.id)
    log_time(store, "time.click", 6.0, by="ann", phase=3, masklet_id=b.id)
    # Phase-1 re-annotations: C of B (IoU 56/64 = 0.875), D of A (disjoint: IoU 0); their time is left out
    c = store.create_masklet(video.id, by="qa", phase=1, meta={"realigned_from": b.id})
    store.put_frame_masks(
        c.id, {0: rows(video, 0, 3), 1: rows(video, 0, 4)}, source="manual", by="qa", phase=1
    )
    log_time(store, "time.edit", 100.0, by="qa", phase=1, masklet_id=c.id)
    click(store, c.id, 0, 5, phase=1)
    d = store.create_masklet(video.id, by="qa", phase=1, meta={"realigned_from": a.id})
    store.put_frame_masks(d.id, {0: rows(video, 4, 6)}, source="manual", by="qa", phase=1)
    return {"a": a.id, "b": b.id, "c": c.id, "d": d.id}


def test_effort_table_from_a_known_log(store: Store, video: Video) -> None:
    ids = build_log(store, video)
    assert masklet_iou(store, ids["b"], ids["c"]) == pytest.approx(56 / 64)
    assert masklet_iou(store, ids["a"], ids["d"]) == 0.0
    table = effort_table(store, project_id=video.project_id)
    one, three = table.phases
    assert (one.phase, one.masklets, one.frames, one.edited_frames, one.clicked_frames, one.clicks) == (
        1,
        1,
        2,
        2,
        2,
        4,
    )
    assert one.seconds == pytest.approx(28.0) and one.time_per_frame_s == pytest.approx(14.0)
    assert one.edited_share == 1.0 and one.clicks_per_clicked_frame == 2.0
    assert (one.checked, one.aligned, one.alignment) == (1, 0, 0.0)
    assert (three.masklets, three.frames, three.edited_frames, three.clicked_frames, three.clicks) == (
        1,
        4,
        2,
        2,
        4,
    )
    assert three.time_per_frame_s == pytest.approx(10.0 / 4)
    assert three.edited_share == 0.5 and three.clicks_per_clicked_frame == 2.0
    assert (three.checked, three.aligned, three.alignment) == (1, 1, 1.0)
    # a stricter threshold: B's 0.875 no longer counts
    assert effort_table(store, video_id=video.id, alignment_iou=0.9).phases[1].aligned == 0
    data = json.loads(json.dumps(table.to_json()))
    assert data["phases"][1]["time_per_frame_s"] == 2.5 and data["phases"][0]["alignment"] == 0.0
    text = table.render().splitlines()
    assert text[0].split() == ["Phase", "1", "Phase", "3"]
    assert text[3].split()[-2:] == ["14.0", "2.5"]
    assert text[4].split()[-2:] == ["100%", "50%"]
    assert text[5].split()[-2:] == ["2.00", "2.00"]
    assert text[6].split()[-2:] == ["0.0%", "100.0%"]


def test_empty_log_and_undefined_ratios(store: Store, video: Video) -> None:
    assert effort_table(store, project_id=video.project_id).phases == ()
    m = store.create_masklet(video.id, by="ann", phase=2)
    store.put_frame_mask(m.id, 0, rows(video, 0, 1), source="propagated", by="ann", phase=2)
    (two,) = effort_table(store).phases
    assert two.clicks_per_clicked_frame is None and two.alignment is None and two.time_per_frame_s == 0.0
    rendered = effort_table(store).render().splitlines()
    assert rendered[5].split()[-1] == "-" and rendered[6].split()[-1] == "-"  # clicks, alignment
    with pytest.raises(MaskletError, match="time is logged as one of"):
        log_time(store, "coffee", 5.0, by="ann", phase=2)


def test_time_logged_on_the_edits_themselves_counts_once(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann", phase=2)
    store.add_prompt(m.id, 0, "click", {"points": [[1, 1]], "labels": [1]}, by="ann", phase=2, duration_s=1.5)
    store.put_frame_mask(m.id, 0, rows(video, 0, 2), source="click_model", by="ann", phase=2, duration_s=2.0)
    masks = {f: rows(video, 0, 2) for f in (1, 2, 3)}
    store.put_frame_masks(m.id, masks, source="propagated", by="ann", phase=2, duration_s=4.5)
    (two,) = effort_table(store, video_id=video.id).phases
    assert two.seconds == pytest.approx(8.0) and two.time_per_frame_s == pytest.approx(8.0 / 4)


def test_a_deleted_masklet_leaves_the_effort_table(store: Store, video: Video) -> None:
    ids = build_log(store, video)
    for name in ("c", "b"):  # B's re-annotation C (a check, its time left out) goes first
        m = store.get_masklet(ids[name])
        store.delete_masklet(m.id, expected_version=m.version, by="qa")
    one, three = effort_table(store, project_id=video.project_id).phases
    assert (one.frames, one.seconds, one.checked) == (2, pytest.approx(28.0), 1)  # A untouched; D checks A
    # Phase 3 keeps only the examining time logged on the video, on no masklet
    assert (three.masklets, three.frames, three.edited_frames, three.clicks) == (0, 0, 0, 0)
    assert three.seconds == pytest.approx(2.0)
    history = store.list_events(project_id=video.project_id)
    assert sum(e.payload.get("deleted_masklet") == ids["b"] for e in history) >= 5
    assert [e.payload["frames"] for e in history if e.action == "masklet.delete"] == [2, 4]
