"""The three annotation workflows (`engine/phases.py`) on a random-weight model and a synthetic video."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from masklet.engine.edits import Edit, apply_edits
from masklet.engine.phases import MaskletWorkflow, frame_stride
from masklet.engine.store import InvalidEditError, StaleWriteError, Store, Video
from masklet.errors import FormatError, FrameSourceError, PromptError, SessionError
from masklet.io.masks import decode_rle, encode_rle
from masklet.io.synthetic import SyntheticVideo, make_synthetic_video
from masklet.predict.image import ImagePredictor
from masklet.predict.video import VideoPredictor

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.threads(1),
]

T, H, W = 12, 96, 128  # 24 fps: every 4th frame is annotated (0, 4, 8)
KILLED = f"masklet-killed-{uuid.uuid4().hex[:8]}"  # the killed writer's application name on PostgreSQL


@pytest.fixture(scope="module")
def clip() -> SyntheticVideo:
    return make_synthetic_video(T, height=H, width=W, num_objects=2, seed=1)


@pytest.fixture
def video(store: Store) -> Video:
    project = store.create_project("phases")
    return store.add_video(project.id, "clip.mp4", fps=24, width=W, height=H, frame_count=T, content_hash="c")


def workflow(store: Store, video: Video, clip: SyntheticVideo, model, phase: int, **kw) -> MaskletWorkflow:
    masklet = store.create_masklet(video.id, by="ann", phase=phase)
    return MaskletWorkflow(store, masklet.id, phase=phase, by="ann", model=model, frames=clip.frames, **kw)


def sources(store: Store, masklet_id: int) -> list[tuple[int, str, int]]:
    return [(m.frame, m.source, m.version) for m in store.get_frame_masks(masklet_id)]


def saved_mask(store: Store, masklet_id: int, frame: int) -> np.ndarray:
    return decode_rle(store.get_frame_mask(masklet_id, frame).rle)


def test_frame_stride_is_about_six_fps() -> None:
    assert [frame_stride(fps) for fps in (24, 30, 25, 6, 2, 60)] == [4, 5, 4, 1, 1, 10]


# ------------------------------------------------------------------------------------------- phase 1
def test_phase1_clicks_go_to_the_image_predictor_then_pixel_edits(store, video, clip, small_model) -> None:
    with workflow(store, video, clip, small_model, 1) as work:
        assert list(work.annotated_frames) == [0, 4, 8]
        first = work.click(4, [[60, 40]], [1], seconds=1.5)
        second = work.click(4, [[20, 20]], [0], seconds=1.5)
        brush = Edit("brush", ((10.0, 10.0), (30.0, 12.0)), radius=3.0)
        edited = work.edit(4, [brush, {"tool": "eraser", "points": [[60, 40]], "radius": 4}], seconds=5.0)
        with pytest.raises(SessionError, match="Phase 1"):
            work.propagate()
        m = work.masklet.id

    # the same clicks on the image predictor directly: best of three, then refined with its logits
    predictor = ImagePredictor(small_model)
    predictor.set_image(clip.frames[4])
    masks, scores, low = predictor.predict(point_coords=np.array([[60, 40]], np.float32),
                                           point_labels=np.array([1], np.int32), multimask_output=True)  # fmt: skip
    best = int(np.argmax(scores))
    np.testing.assert_array_equal(first, masks[best])
    masks2, scores2, _ = predictor.predict(
        point_coords=np.array([[60, 40], [20, 20]], np.float32), point_labels=np.array([1, 0], np.int32),
        mask_input=low[best][None], multimask_output=False,
    )  # fmt: skip
    np.testing.assert_array_equal(second, masks2[0])
    expected = apply_edits(second, [brush, Edit("eraser", ((60.0, 40.0),), radius=4.0)])
    np.testing.assert_array_equal(edited, expected)
    np.testing.assert_array_equal(saved_mask(store, m, 4), expected)

    assert sources(store, m) == [(4, "manual", 3)]
    prompts = store.list_prompts(m)
    assert [(p.frame, p.kind, dict(p.payload)) for p in prompts] == [
        (4, "click", {"points": [[60.0, 40.0]], "labels": [1]}),
        (4, "click", {"points": [[20.0, 20.0]], "labels": [0]}),
    ]  # Phase 1 logs no mask prompts: its edits never reach a video model
    events = [e for e in store.list_events(masklet_id=m) if e.action != "masklet.create"]
    assert {e.phase for e in events} == {1}
    summary = [(e.action, e.payload.get("source"), e.duration_s) for e in events]
    assert summary == [
        ("prompt.add", None, 1.5), ("mask.put", "click_model", None),
        ("prompt.add", None, 1.5), ("mask.put", "click_model", None),
        ("mask.put", "manual", 5.0), ("mask.edit", None, None),
    ]  # fmt: skip
    assert events[-1].payload["edits"][1] == {"tool": "eraser", "points": [[60.0, 40.0]], "radius": 4.0}


def test_only_annotated_frames_inside_the_video_are_taken(store, video, clip, small_model) -> None:
    with workflow(store, video, clip, small_model, 1) as work:
        for frame, message in ((2, "not an annotated frame"), (12, "outside video"), (-4, "outside"),
                               (4.0, "outside"), (True, "outside")):  # fmt: skip
            with pytest.raises(InvalidEditError, match=message):
                work.set_mask(frame, np.ones((H, W), bool))
        with pytest.raises(PromptError):
            work.click(0, [[W + 5, 10]], [1])  # outside the frame: refused before anything is saved
        assert store.get_frame_masks(work.masklet.id) == [] and store.list_prompts(work.masklet.id) == []
    with workflow(store, video, clip, small_model, 1, stride=1) as every:
        every.set_mask(3, clip.mask(3, 1))
        assert sources(store, every.masklet.id) == [(3, "manual", 1)]


# ------------------------------------------------------------------------------------------- phase 2
def reference_run(
    model, frames, prompts: dict[int, np.ndarray], start: int, obj_id: int = 1
) -> dict[int, np.ndarray]:
    """Masks of a direct session with mask prompts {session frame: mask}, propagated from `start`."""
    with VideoPredictor(model).start(frames) as session:
        for frame, mask in prompts.items():
            session.add_prompt(frame=frame, obj_id=obj_id, mask=mask)
        return {f: (lg[0] > 0).numpy() for f, _, lg in session.propagate(start=start)}


def test_phase2_propagates_mask_prompts_and_reruns_from_a_redrawn_frame(
    store, video, clip, small_model
) -> None:
    annotated = clip.frames[::4]
    with workflow(store, video, clip, small_model, 2) as work:
        m = work.masklet.id
        work.set_mask(0, clip.mask(0, 1), seconds=20.0)
        saved = list(work.propagate())
        assert [(s.frame, s.source, s.version) for s in saved] == [(4, "propagated", 1), (8, "propagated", 1)]
        expected = reference_run(small_model, annotated, {0: clip.mask(0, 1)}, 0)
        for frame in (4, 8):
            np.testing.assert_array_equal(saved_mask(store, m, frame), expected[frame // 4])
        # the annotator redraws frame 4 (image tools) and propagation reruns from there
        work.click(4, [clip.centers[4, 0].tolist()], [1], seconds=1.5)
        redrawn = work.edit(4, [Edit("polygon", ((50.0, 30.0), (90.0, 30.0), (70.0, 60.0)))], seconds=5.0)
        rerun = list(work.propagate(start=4))
        assert [(s.frame, s.source, s.version) for s in rerun] == [(8, "propagated", 2)]
    expected = reference_run(small_model, annotated, {0: clip.mask(0, 1), 1: redrawn}, 1)
    np.testing.assert_array_equal(saved_mask(store, m, 8), expected[2])
    assert sources(store, m) == [(0, "manual", 1), (4, "manual", 3), (8, "propagated", 2)]
    kinds = [(p.frame, p.kind) for p in store.list_prompts(m)]
    assert kinds == [(0, "mask"), (4, "click"), (4, "mask")]  # the click went to the image predictor
    assert {e.phase for e in store.list_events(masklet_id=m)} == {2}


def test_phase2_resumes_from_a_phase1_first_frame(store, video, clip, small_model) -> None:
    with workflow(store, video, clip, small_model, 1) as first:
        first.set_mask(0, encode_rle(clip.mask(0, 1)))  # COCO RLE is taken too
        m = first.masklet.id
    with MaskletWorkflow(store, m, phase=2, by="ann", model=small_model, frames=clip.frames) as work:
        assert [s.frame for s in work.propagate()] == [4, 8]
    assert sources(store, m) == [(0, "manual", 1), (4, "propagated", 1), (8, "propagated", 1)]
    with pytest.raises(SessionError, match="no annotated frame"):
        with workflow(store, video, clip, small_model, 2) as empty:  # a second masklet, nothing drawn
            empty.propagate()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the model's part; phase 2's writes above
def test_track_all_frames_saves_only_the_annotated_ones(store, video, clip, small_model) -> None:
    with workflow(store, video, clip, small_model, 2, track_all_frames=True) as work:
        work.set_mask(0, clip.mask(0, 1))
        assert [s.frame for s in work.propagate()] == [4, 8]
        m = work.masklet.id
    expected = reference_run(small_model, clip.frames, {0: clip.mask(0, 1)}, 0)
    for frame in (4, 8):
        np.testing.assert_array_equal(saved_mask(store, m, frame), expected[frame])


# ------------------------------------------------------------------------------------------- phase 3
def test_phase3_clicks_boxes_and_refinement_go_to_the_session(store, video, clip, small_model) -> None:
    c0, c4 = clip.centers[0, 0].tolist(), clip.centers[4, 0].tolist()
    with workflow(store, video, clip, small_model, 3) as work:
        m = work.masklet.id
        first = work.click(0, [c0], [1], seconds=1.5)
        assert [s.frame for s in work.propagate()] == [4, 8]
        refined = work.click(4, [c4], [1], seconds=1.5)  # a refinement click on a tracked frame
        again = work.click(4, [[5.0, 5.0]], [0], seconds=1.5)  # adds to the frame's first click
        assert [(s.frame, s.version) for s in work.propagate(start=4)] == [(8, 2)]
        work.box(8, clip.boxes[8, 0].tolist(), seconds=3.0)
    assert sources(store, m) == [(0, "click_model", 1), (4, "click_model", 3), (8, "click_model", 3)]

    with VideoPredictor(small_model).start(clip.frames[::4]) as session:
        _, logits = session.add_prompt(frame=0, obj_id=1, points=[c0], labels=[1])
        np.testing.assert_array_equal(first, (logits[0] > 0).numpy())
        for _ in session.propagate():
            pass
        _, logits = session.add_prompt(frame=1, obj_id=1, points=[c4], labels=[1])
        np.testing.assert_array_equal(refined, (logits[0] > 0).numpy())
        _, logits = session.add_prompt(frame=1, obj_id=1, points=[c4, [5.0, 5.0]], labels=[1, 0], clear=True)
        np.testing.assert_array_equal(again, (logits[0] > 0).numpy())
    kinds = [(p.frame, p.kind) for p in store.list_prompts(m)]
    assert kinds == [(0, "click"), (4, "click"), (4, "click"), (8, "box")]
    clicks = [e.payload["clicks"] for e in store.list_events(masklet_id=m, action="prompt.add")]
    assert clicks == [1, 1, 1, 0]


def test_phase3_edit_becomes_a_mask_prompt(store, video, clip, small_model) -> None:
    with workflow(store, video, clip, small_model, 3) as work:
        m = work.masklet.id
        work.click(0, [clip.centers[0, 0].tolist()], [1])
        fixed = work.edit(0, [Edit("brush", ((20.0, 20.0),), radius=6.0)], seconds=5.0)
        list(work.propagate())
    expected = reference_run(small_model, clip.frames[::4], {0: fixed}, 0)
    np.testing.assert_array_equal(saved_mask(store, m, 4), expected[1])
    assert [(p.frame, p.kind) for p in store.list_prompts(m)] == [(0, "click"), (0, "mask")]


# ----------------------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_and_nothing_is_saved_half_way(store, video, clip, small_model) -> None:
    with workflow(store, video, clip, small_model, 3) as work:
        m = work.masklet.id
        with pytest.raises(FormatError, match="RLE size"):
            work.set_mask(0, encode_rle(np.ones((H, W + 2), bool)))
        with pytest.raises(InvalidEditError, match=r"\(96, 128\)"):
            work.set_mask(0, np.ones((H + 1, W), bool))
        with pytest.raises(InvalidEditError, match="outside video"):
            work.set_mask(T + 4, np.ones((H, W), bool))
        with pytest.raises(ValueError, match="edit"):
            work.edit(0, [{"tool": "spray", "points": [[1, 1]]}])
        assert store.get_frame_masks(m) == [] and store.list_prompts(m) == []
        # another writer changes frame 0: the click is refused and its prompt is not kept either
        work.click(0, [[60, 40]], [1])
        store.put_frame_mask(
            m, 0, encode_rle(np.ones((H, W), bool)), source="manual", by="other", expected_version=1
        )
        with pytest.raises(StaleWriteError):
            work.click(0, [[20, 20]], [0])
        assert len(store.list_prompts(m)) == 1 and sources(store, m) == [(0, "manual", 2)]
        work.refresh()  # re-read, then the same click lands
        work.click(0, [[20, 20]], [0])
        assert sources(store, m) == [(0, "click_model", 3)]
    with pytest.raises(FrameSourceError, match="pass the video's own frames"):
        MaskletWorkflow(store, m, phase=2, by="ann", model=small_model, frames=clip.frames[:5])
    with pytest.raises(InvalidEditError, match="phase"):
        MaskletWorkflow(store, m, phase=4, by="ann", model=small_model, frames=clip.frames)


# -------------------------------------------------------------------------------------- crash safety
CHILD = textwrap.dedent(
    """
    import sys
    import torch
    from masklet.build import build_sam2
    from masklet.engine.phases import MaskletWorkflow
    from masklet.engine.store import Store
    from masklet.io.synthetic import make_synthetic_video

    torch.set_num_threads(1)
    url, masklet_id, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.manual_seed(0)
    model = build_sam2("sam2.1_hiera_t", image_size=128)
    clip = make_synthetic_video(frames, height=96, width=128, num_objects=1, seed=3)
    with Store(url) as store, MaskletWorkflow(store, masklet_id, phase=2, by="child", model=model,
                                              frames=clip.frames) as work:
        print("ready", flush=True)
        for saved in work.propagate():  # each frame committed before it is reported
            print(saved.frame, flush=True)
    """
)


def writer_url(url: str) -> str:
    """`url` with an application name on PostgreSQL, so that the server's session of the writer can be found."""
    if make_url(url).get_backend_name() != "postgresql":
        return url
    return make_url(url).update_query_dict({"application_name": KILLED}).render_as_string(hide_password=False)


def killed_writer_sessions(store: Store) -> int:
    """The killed writer's server sessions still open after up to 30 s of waiting for them to end (0 on SQLite)."""
    if store.url.get_backend_name() != "postgresql":
        return 0
    deadline = time.monotonic() + 30
    with store._engine.connect() as conn:  # the kernel closed its socket; the server ends it soon after
        while True:
            count = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"), {"name": KILLED}
            ).scalar_one()
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


def test_killed_propagation_keeps_every_saved_frame_and_resumes(store_url: str, small_model) -> None:
    frames, url = 30, store_url  # on PostgreSQL the server outlives the writer: its transaction must go
    clip = make_synthetic_video(frames, height=H, width=W, num_objects=1, seed=3)
    with Store(url) as store:
        project = store.create_project("crash")
        video = store.add_video(
            project.id, "c.mp4", fps=6, width=W, height=H, frame_count=frames, content_hash="c"
        )
        m = store.create_masklet(video.id, by="ann", obj_id=1, phase=2)
        store.put_frame_mask(m.id, 0, encode_rle(clip.mask(0, 1)), source="manual", by="ann", phase=2)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, writer_url(url), str(m.id), str(frames)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    reported: list[int] = []
    deadline = time.monotonic() + 180
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready", child.stderr.read()
        while len(reported) < 3 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, f"the propagation ended early: {child.stderr.read()}"
            reported.append(int(line))
        os.kill(child.pid, signal.SIGKILL)  # mid-propagation
        child.wait(timeout=30)
        reported += [int(line) for line in child.stdout.read().split()]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL and reported[:3] == [1, 2, 3]

    with Store(url) as store:
        assert killed_writer_sessions(store) == 0  # the server ended the writer's session, and its locks
        saved = sources(store, m.id)
        assert saved[0] == (0, "manual", 1)
        propagated = [f for f, source, _ in saved if source == "propagated"]
        assert set(reported) <= set(propagated) and propagated == list(range(1, len(propagated) + 1))
        assert len(propagated) - len(reported) in (0, 1) and len(propagated) < frames - 1
        # nothing half-written: each saved frame is whole, has its one event, and the versions agree
        puts = store.list_events(masklet_id=m.id, action="mask.put")
        assert [(e.frame, e.payload["version"]) for e in puts] == [(f, v) for f, _, v in saved]
        assert store.get_masklet(m.id).version == 1 + len(saved)
        assert all(saved_mask(store, m.id, f).shape == (H, W) for f, _, _ in saved)
        # a new workflow picks the masklet up where it was left and finishes it
        with MaskletWorkflow(store, m.id, phase=2, by="ann", model=small_model, frames=clip.frames) as work:
            assert [s.frame for s in work.propagate()] == list(range(1, frames))
        assert [v for _, _, v in sources(store, m.id)[1:]] == [
            2 if f <= len(propagated) else 1 for f in range(1, frames)
        ]
