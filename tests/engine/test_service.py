"""engine.service: the rules behind each user action, the same for the CLI and the server."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.engine import service
from masklet.engine.schema import MASK_SOURCES, MASKLET_TYPES, STATUSES
from masklet.engine.store import Store
from masklet.engine.vocabulary import EventAction, MaskletStatus, MaskletType, MaskSource, ReviewAction
from masklet.errors import MaskletError, NotFoundError
from masklet.io.formats import write_sav_eval_video
from masklet.io.masks import encode_rle


@pytest.fixture
def two_projects(store: Store):
    """Project "demo" (video 1, masklet 1) and project "42" (video 2, masklet 2)."""
    demo = store.create_project("demo")
    other = store.create_project("42")
    videos = [
        store.add_video(p.id, f"clips/{p.name}.mp4", fps=24.0, width=8, height=6, frame_count=10,
                        content_hash=str(p.id) * 64)
        for p in (demo, other)
    ]  # fmt: skip
    masklets = [store.create_masklet(v.id, by="ann") for v in videos]
    return demo, other, videos, masklets


def test_find_project_by_name_then_id(store: Store, two_projects) -> None:
    demo, other, _, _ = two_projects
    assert service.find_project(store, "demo") == demo
    assert service.find_project(store, demo.id) == demo
    # a name made of digits is a name first; digits that name no project are an id
    assert service.find_project(store, "42") == other
    assert service.find_project(store, str(demo.id)) == demo
    with pytest.raises(NotFoundError):
        service.find_project(store, "nope")


def test_video_and_masklet_must_belong_to_the_project(store: Store, two_projects) -> None:
    demo, other, videos, masklets = two_projects
    assert service.video_of_project(store, demo, videos[0].id) == videos[0]
    with pytest.raises(NotFoundError, match=f"video {videos[1].id} is not in project 'demo'"):
        service.video_of_project(store, demo, videos[1].id)
    with pytest.raises(NotFoundError, match=f"masklet {masklets[1].id} is not in project 'demo'"):
        service.masklet_of_project(store, demo, masklets[1].id)
    with pytest.raises(NotFoundError, match=f"masklet {masklets[0].id} is not in project '42'"):
        service.decide_review(store, "42", masklets[0].id, ReviewAction.SUBMIT, by="ann")
    assert store.get_masklet(masklets[0].id).status == "draft"  # nothing changed
    with pytest.raises(NotFoundError):
        service.import_into_project(store, "42", "x.json", format="sav", by="ann", video_id=videos[0].id)


def test_review_actions(store: Store, two_projects) -> None:
    demo, _, _, masklets = two_projects
    m = masklets[0]
    done = service.decide_review(store, "demo", m.id, "submit", by="ann")
    assert done.status == MaskletStatus.IN_REVIEW and done.version == m.version + 1
    with pytest.raises(MaskletError, match="needs a reason"):
        service.decide_review(store, "demo", m.id, ReviewAction.REJECT, by="rev", reason="  ")
    with pytest.raises(MaskletError, match="review action must be one of submit, accept, reject"):
        service.decide_review(store, "demo", m.id, "approve", by="rev")
    project, queue = service.project_review_queue(store, "demo")
    assert project == demo and [i.masklet.id for i in queue] == [m.id]
    rejected = service.decide_review(store, "demo", m.id, ReviewAction.REJECT, by="rev", reason="loose")
    assert rejected.status == "rejected"
    summary = {s.project.name: s for s in service.project_summaries(store)}
    assert summary["demo"].by_status == {"draft": 0, "in_review": 0, "accepted": 0, "rejected": 1}
    assert summary["42"].videos == 1 and summary["42"].by_status["draft"] == 1


def test_ground_truth_must_fit_the_video(store: Store, two_projects, tmp_path) -> None:
    _, _, videos, _ = two_projects
    good = np.zeros((6, 8), bool)
    good[1:3, 2:5] = True
    folder = write_sav_eval_video(tmp_path / "gt", "v", {1: {0: good, 9: good}})
    gt = service.read_ground_truth(folder, videos[0])
    assert list(gt) == [1] and sorted(gt[1]) == [0, 9] and gt[1][0].area == 6
    late = write_sav_eval_video(tmp_path / "late", "v", {1: {10: good}})
    with pytest.raises(MaskletError, match="frame 10: a 6x8 .* does not fit video"):
        service.read_ground_truth(late, videos[0])
    wide = write_sav_eval_video(tmp_path / "wide", "v", {1: {0: np.zeros((6, 9), bool)}})
    with pytest.raises(MaskletError, match="6x9"):
        service.read_ground_truth(wide, videos[0])
    with pytest.raises(MaskletError, match="no such file or folder"):
        service.read_ground_truth(tmp_path / "missing", videos[0])
    with pytest.raises(MaskletError, match="status must be one of"):
        service.export_project_files(store, "demo", "sav", tmp_path / "out", status="done")


def test_vocabulary_is_stored_as_plain_text(store: Store, two_projects) -> None:
    """Enums equal their text: old rows compare equal, the CHECK constraints keep their words."""
    assert MASKLET_TYPES == ("manual", "auto") and STATUSES == ("draft", "in_review", "accepted", "rejected")
    assert MASK_SOURCES == ("manual", "click_model", "propagated", "auto")
    assert all(type(v) is str for v in (*MASKLET_TYPES, *STATUSES, *MASK_SOURCES))
    _, _, videos, _ = two_projects
    m = store.create_masklet(videos[0].id, by="ann", type=MaskletType.AUTO)
    store.put_frame_masks(m.id, {0: encode_rle(np.ones((6, 8), bool))}, source=MaskSource.AUTO, by="ann")
    again = store.get_masklet(m.id)
    assert type(again.type) is str and again.type == MaskletType.AUTO == "auto"
    [saved] = store.get_frame_masks(m.id)
    assert type(saved.source) is str and saved.source == "auto"
    events = store.list_events(masklet_id=m.id, action=EventAction.MASK_PUT)
    assert [type(e.action) for e in events] == [str] and events[0].payload["source"] == "auto"
    assert MaskSource.MANUAL.by_hand and MaskSource.CLICK_MODEL.by_hand
    assert not MaskSource.PROPAGATED.by_hand and not MaskSource.AUTO.by_hand
