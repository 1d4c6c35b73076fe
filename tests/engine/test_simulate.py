"""The simulated annotator in a project: Phase 1 on a random-weight model, and recording protocol runs."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.engine.effort import effort_table
from masklet.engine.simulate import AnnotatorModel, annotate_objects_phase1, record_run
from masklet.engine.store import Store
from masklet.eval.interactive import Click, ClickStep, CurvePoint, ObjectRun, TimeModel
from masklet.io.masks import RleMask, decode_rle
from masklet.io.synthetic import make_synthetic_video
from masklet.predict.image import ImagePredictor

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.threads(1),
]


@pytest.fixture
def sqlite_store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'sim.db'}") as store:
        yield store


def test_phase1_on_a_synthetic_video_reaches_the_truth_and_logs_its_effort(
    sqlite_store: Store, small_model
) -> None:
    store = sqlite_store
    video_data = make_synthetic_video(3, height=128, width=128, num_objects=2, seed=1)
    project = store.create_project("phase1")
    video = store.add_video(project.id, "synthetic.mp4", fps=24, width=128, height=128, frame_count=3,
                            content_hash="s")  # fmt: skip
    gt = {o: {t: video_data.mask(t, o) for t in range(3)} for o in video_data.obj_ids}
    model = AnnotatorModel(max_clicks=3, min_error_px=1, stroke_s=4.0)
    done = annotate_objects_phase1(
        store, video.id, gt, video_data.frames, ImagePredictor(small_model), model=model
    )
    assert [m.obj_id for m, _ in done] == [1, 2]
    work = [w for _, frames in done for w in frames]
    assert all(w.final_iou == 1.0 for w in work)  # the pixel tools fix what the random model gets wrong
    assert all(1 <= w.clicks <= 3 for w in work)
    for masklet, frames in done:
        for w in frames:
            saved = store.get_frame_mask(masklet.id, w.frame)
            np.testing.assert_array_equal(decode_rle(saved.rle), gt[masklet.obj_id][w.frame])
            assert saved.source == ("manual" if w.strokes else "click_model")
            assert len(store.list_prompts(masklet.id, frame=w.frame)) == w.clicks
            assert w.seconds == pytest.approx(1.0 + 1.5 * w.clicks + 4.0 * w.strokes)
    (phase,) = effort_table(store, project_id=project.id).phases
    assert (phase.phase, phase.masklets, phase.frames, phase.edited_frames) == (1, 2, 6, 6)
    assert phase.clicks == sum(w.clicks for w in work) and phase.clicked_frames == 6
    assert phase.seconds == pytest.approx(sum(w.seconds for w in work))


def test_record_run_writes_prompts_time_and_masks(sqlite_store: Store) -> None:
    store = sqlite_store
    project = store.create_project("phase3")
    video = store.add_video(project.id, "v.mp4", fps=24, width=8, height=6, frame_count=3, content_hash="v")
    masklet = store.create_masklet(video.id, by="sim", phase=3)
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:6] = True
    store.put_frame_mask(
        masklet.id, 1, RleMask.from_mask(~mask).to_dict(), source="manual", by="sim"
    )  # overwritten
    time = TimeModel(examine_s=30.0, examine_frames=300)
    steps = (ClickStep(1, 0, Click(3, 2, True)), ClickStep(1, 0, Click(5, 3, False)))
    seconds = 3 * 0.1 + 1.0 + 2 * 1.5  # watch 3 frames, locate, two clicks
    run = ObjectRun(
        obj_id=masklet.obj_id,
        curve=(CurvePoint(1, 2, seconds, 0.9, 0.9, 0.9), CurvePoint(2, 2, seconds, 0.9, 0.9, 0.9)),
        steps=steps,
        prompted=(0,),
        masks={f: RleMask.from_mask(mask) for f in range(3)},
    )
    record_run(store, masklet.id, run, phase=3, time=time)
    prompts = store.list_prompts(masklet.id)
    assert [(p.frame, dict(p.payload)) for p in prompts] == [
        (0, {"points": [[3, 2]], "labels": [1]}), (0, {"points": [[5, 3]], "labels": [0]})
    ]  # fmt: skip
    saved = store.get_frame_masks(masklet.id)
    assert [(m.frame, m.source, m.version) for m in saved] == [(0, "click_model", 1), (1, "propagated", 2),
                                                               (2, "propagated", 1)]  # fmt: skip
    (phase,) = effort_table(store, project_id=project.id).phases
    assert (phase.phase, phase.frames, phase.edited_frames, phase.clicks, phase.clicked_frames) == (
        3,
        3,
        1,
        2,
        1,
    )
    assert phase.seconds == pytest.approx(seconds)
    assert phase.time_per_frame_s == pytest.approx(seconds / 3)
