"""Review: status transitions with versions, history kept through rejection, queues, reviewer stats."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.engine import review
from masklet.engine.store import InvalidEditError, StaleWriteError, Store, Video
from masklet.io.masks import encode_rle


def _mask_rle(video: Video, fill: bool) -> dict:
    return encode_rle(np.full((video.height, video.width), fill, dtype=bool))


def test_accept_and_reject_follow_the_reviewed_version(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    m = review.submit(store, m.id, expected_version=m.version, by="ann")
    assert m.status == "in_review"
    # the annotator edits after submission: the reviewer's version is stale
    store.put_frame_mask(m.id, 0, _mask_rle(video, True), source="manual", by="ann")
    with pytest.raises(StaleWriteError):
        review.accept(store, m.id, expected_version=m.version, by="rev")
    fresh = store.get_masklet(m.id)
    accepted = review.accept(store, m.id, expected_version=fresh.version, by="rev", reason="looks right")
    assert accepted.status == "accepted" and accepted.version == fresh.version + 1
    with pytest.raises(InvalidEditError, match="not in review"):
        review.reject(store, m.id, expected_version=accepted.version, by="rev", reason="late")


def test_reject_needs_a_reason_and_keeps_the_history(store: Store, video: Video) -> None:
    m = store.create_masklet(video.id, by="ann")
    m = review.submit(store, m.id, expected_version=m.version, by="ann")
    with pytest.raises(InvalidEditError, match="reason"):
        review.reject(store, m.id, expected_version=m.version, by="rev", reason="  ")
    m = review.reject(store, m.id, expected_version=m.version, by="rev", reason="leaks into the table")
    assert m.status == "rejected"
    queue = review.annotation_queue(store, video_id=video.id)
    assert [(i.masklet.id, i.rejections, i.last_reason) for i in queue] == [(m.id, 1, "leaks into the table")]
    m = review.submit(store, m.id, expected_version=m.version, by="ann")  # reworked, resubmitted
    m = review.accept(store, m.id, expected_version=m.version, by="rev2")
    steps = [(d.from_status, d.to_status, d.by, d.reason) for d in review.history(store, m.id)]
    assert steps == [
        ("draft", "in_review", "ann", None),
        ("in_review", "rejected", "rev", "leaks into the table"),
        ("rejected", "in_review", "ann", None),
        ("in_review", "accepted", "rev2", None),
    ]


def test_queues_order_and_reviewer_stats(store: Store, video: Video) -> None:
    ids = [store.create_masklet(video.id, by="ann").id for _ in range(4)]
    # submit in the order 2, 0, 3; masklet 1 stays a draft
    for i in (2, 0, 3):
        m = store.get_masklet(ids[i])
        review.submit(store, m.id, expected_version=m.version, by="ann")
    assert [i.masklet.id for i in review.review_queue(store, project_id=video.project_id)] == [
        ids[2],
        ids[0],
        ids[3],
    ]
    m = store.get_masklet(ids[2])
    review.reject(store, m.id, expected_version=m.version, by="bo", reason="misses the handle")
    m = store.get_masklet(ids[0])
    review.accept(store, m.id, expected_version=m.version, by="al")
    m = store.get_masklet(ids[3])
    review.accept(store, m.id, expected_version=m.version, by="bo")
    assert [i.masklet.id for i in review.review_queue(store)] == []
    work = review.annotation_queue(store, project_id=video.project_id)
    assert [(i.masklet.id, i.masklet.status) for i in work] == [(ids[2], "rejected"), (ids[1], "draft")]
    stats = {s.by: s for s in review.reviewer_stats(store, project_id=video.project_id)}
    assert sorted(stats) == ["al", "bo"]
    assert (stats["al"].accepted, stats["al"].rejected) == (1, 0)
    assert (stats["bo"].accepted, stats["bo"].rejected, stats["bo"].reviewed) == (1, 1, 2)
    assert stats["bo"].reject_rate == 0.5
    assert stats["bo"].median_wait_s is not None and stats["bo"].median_wait_s >= 0
