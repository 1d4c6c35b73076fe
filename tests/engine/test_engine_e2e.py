"""The scripted data engine end to end through the `masklet` command: a synthetic video with known
masks is worked by the simulated annotator in phases 1, 2 and 3 (random-weight model), then
`masklet effort` prints the per-phase table the events give; `masklet auto-masklets` adds auto
masklets for review. Each test runs on SQLite and on PostgreSQL (see conftest.py); the commands
get the tests' shared model (the one `--image-size 128` names), so the second backend reuses the
first one's frame encodings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from masklet.cli import annotate as annotate_commands
from masklet.cli import main
from masklet.engine.store import Store
from masklet.io.formats import write_sav_eval_video
from masklet.io.formats.sav import SavVideoAnnotation, write_sav_json
from masklet.io.synthetic import make_synthetic_video, write_frame_folder

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.threads(1),
]

T, H, W = 12, 96, 128  # 24 fps: annotated frames 0, 4, 8
MODEL = ["--image-size", "128"]  # sam2.1 tiny, random weights: the `small_model` fixture (see `engine`)


@pytest.fixture
def engine(tmp_path: Path, capsys, monkeypatch, store_url: str, small_model):
    """A project with the synthetic video (a PNG folder at 24 fps) and its masks in the SA-V eval layout."""

    def build_model(args) -> object:
        assert (args.model, args.checkpoint, args.image_size) == ("sam2.1_hiera_t", None, 128)
        return small_model

    monkeypatch.setattr(annotate_commands, "build_model_from_args", build_model)
    clip = make_synthetic_video(T, height=H, width=W, num_objects=2, seed=1)
    write_frame_folder(clip.frames, tmp_path / "clip", suffix=".png")
    gt = {o: {t: clip.mask(t, o) for t in range(T)} for o in clip.obj_ids}
    gt_dir = write_sav_eval_video(tmp_path / "gt", "clip", gt)
    db = ["--db", store_url, "--by", "sim"]

    def run(*argv: str) -> str:
        assert main([*argv, *db]) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    run("project", "create", "e2e")
    assert run("project", "add-video", "e2e", str(tmp_path / "clip"), "--fps", "24").startswith("video 1 ")
    return run, gt_dir, db, clip


def test_three_phases_then_the_effort_table(engine) -> None:
    run, gt_dir, db, _ = engine
    common = ["e2e", "1", "--gt", str(gt_dir), "--max-clicks", "3", "--min-error-px", "4", "--json", *MODEL]
    reports = {
        1: json.loads(run("annotate", "--phase", "1", *common)),
        2: json.loads(run("annotate", "--phase", "2", *common, "--realign")),
        3: json.loads(run("annotate", "--phase", "3", *common, "--submit")),
    }
    assert {p: [r["phase"] for r in rs] for p, rs in reports.items()} == {1: [1, 1], 2: [2, 2], 3: [3, 3]}
    assert [r["obj_id"] for r in reports[1]] == [1, 2]  # gt ids kept while free, then the next ones

    table = json.loads(run("effort", "e2e", "--json"))
    phases = {p["phase"]: p for p in table["phases"]}
    assert sorted(phases) == [1, 2, 3]

    # the table from the events, recomputed here: frames with a saved mask, time, clicks, edits
    with Store(db[1]) as store:
        checks = {m.id for m in store.list_masklets(project_id=1) if "realigned_from" in m.meta}
        assert len(checks) == 2
        for phase, row in phases.items():
            events = [e for e in store.list_events(project_id=1, phase=phase) if e.masklet_id not in checks]
            puts = [e for e in events if e.action == "mask.put"]
            frames = {(e.masklet_id, e.frame) for e in puts}
            edited = {
                (e.masklet_id, e.frame) for e in puts if e.payload["source"] in ("manual", "click_model")
            }
            edited |= {(e.masklet_id, e.frame) for e in events if e.action == "prompt.add"} & frames
            clicks = sum(e.payload["clicks"] for e in events if e.action == "prompt.add")
            assert row["frames"] == len(frames) == 6  # 2 objects x 3 annotated frames, every phase
            assert row["edited_frames"] == len(edited) and row["clicks"] == clicks
            assert row["seconds"] == pytest.approx(sum(e.duration_s or 0.0 for e in events))
            # ... and from what the annotator reported doing
            assert row["seconds"] == pytest.approx(sum(r["seconds"] for r in reports[phase]))
            assert row["clicks"] == sum(r["clicks"] for r in reports[phase])
            assert 1.0 <= row["clicks_per_clicked_frame"] <= 3.0 and row["time_per_frame_s"] > 1.0
        statuses = {m.obj_id: m.status for m in store.list_masklets(project_id=1)}
    assert phases[1]["edited_share"] == 1.0  # Phase 1 works every annotated frame
    assert phases[1]["clicked_frames"] == 6 and phases[1]["checked"] == 0
    assert phases[2]["checked"] == 2 and phases[2]["alignment"] is not None
    # phases 2 and 3 watch the propagated masklets (Phase 1 has nothing to watch)
    with Store(db[1]) as store:
        watched = {p: [e.duration_s for e in store.list_events(project_id=1, phase=p, action="time.examine")]
                   for p in (1, 2, 3)}  # fmt: skip
    assert watched[1] == [] and all(watched[p] and min(watched[p]) > 0 for p in (2, 3))
    assert list(statuses.values()).count("in_review") == 2  # the Phase-3 masklets were submitted

    lines = run("effort", "e2e").splitlines()
    assert lines[0].split() == ["Phase", "1", "Phase", "2", "Phase", "3"]
    rows = {" ".join(line.split()[:-3]): line.split()[-3:] for line in lines[1:]}
    assert rows["annotated frames"] == ["6", "6", "6"]
    assert rows["edited frames (%)"][0] == "100%"
    assert rows["time per frame (s)"] == [f"{phases[p]['time_per_frame_s']:.1f}" for p in (1, 2, 3)]
    assert rows["Phase-1 alignment, IoU > 0.75 (%)"][0] == "-"


def test_annotate_reads_sav_json_and_refuses_ground_truth_that_does_not_fit(engine, tmp_path, capsys) -> None:
    run, gt_dir, db, clip = engine
    annotation = SavVideoAnnotation.from_masks(
        [[clip.mask(t, 2) for t in range(0, T, 4)]], video_id="clip", video_frame_count=T, height=H, width=W,
        masklet_ids=[7],
    )  # fmt: skip
    path = write_sav_json(tmp_path / "clip_manual.json", annotation)
    out = run("annotate", "e2e", "1", "--phase", "2", "--gt", str(path), *MODEL)
    assert out.splitlines()[1].split()[:3] == ["1", "7", "2"]  # masklet 1, object 7, phase 2

    small = {1: {0: clip.mask(0, 1)[:, :-2]}}
    bad_dir = write_sav_eval_video(tmp_path / "bad", "clip", small)
    for gt, message in ((bad_dir, "does not fit video 1"), (tmp_path / "missing", "no such file")):
        assert main(["annotate", "e2e", "1", "--phase", "1", "--gt", str(gt), *MODEL, *db]) == 2
        assert message in capsys.readouterr().err
    assert (
        main(["annotate", "e2e", "1", "--phase", "1", "--gt", str(gt_dir), "--objects", "5", *MODEL, *db])
        == 2
    )
    assert "objects [5] are not in" in capsys.readouterr().err
    with Store(db[1]) as store:
        assert len(store.list_masklets(project_id=1)) == 1  # only the SA-V run's masklet


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the model's part: test_auto.py writes
def test_auto_masklets_command(engine) -> None:
    run, gt_dir, db, _ = engine
    run("annotate", "e2e", "1", "--phase", "1", "--gt", str(gt_dir), "--objects", "1", *MODEL)
    loose = ["--grids", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--box-nms-thresh", "1",
             "--min-region-area", "20", "--min-stability", "0", "--min-size", "50"]  # fmt: skip
    out = run("auto-masklets", "e2e", "1", *loose, *MODEL).splitlines()
    assert out[0].startswith("video 1: ") and "auto masklets sent to review" in out[0]
    with Store(db[1]) as store:
        auto = store.list_masklets(project_id=1, type="auto")
        assert auto and all(m.status == "in_review" for m in auto)
        assert len(out) == 1 + len(auto) and out[1].startswith(f"masklet {auto[0].id} object ")
        (event,) = store.list_events(project_id=1, action="auto.run")
        assert event.payload["kept"] == len(auto)


# ------------------------------------------------------------------------------ the simulated annotator
def _project(url: str) -> tuple[Store, int]:
    store = Store(url)
    project = store.create_project("sim")
    return store, store.add_video(project.id, "c.mp4", fps=24, width=W, height=H, frame_count=T,
                                  content_hash="s").id  # fmt: skip


def test_phase2_annotator_stops_when_the_tracked_frames_are_good(store_url: str, small_model) -> None:
    from masklet.engine.effort import effort_table
    from masklet.engine.phases import MaskletWorkflow
    from masklet.engine.simulate import AnnotatorModel, simulate_masklet
    from masklet.predict.video import VideoPredictor

    clip = make_synthetic_video(T, height=H, width=W, num_objects=1, seed=4)
    # ground truth the tracker gets exactly right from a perfect first frame: nothing to fix after it
    with VideoPredictor(small_model).start(clip.frames[::4]) as session:
        session.add_prompt(frame=0, obj_id=1, mask=clip.mask(0, 1))
        gt = {4 * f: (logits[0] > 0).numpy() for f, _, logits in session.propagate()}
    gt[0] = clip.mask(0, 1)
    store, video_id = _project(store_url)
    with store:
        masklet = store.create_masklet(video_id, by="sim", phase=2)
        with MaskletWorkflow(
            store, masklet.id, phase=2, by="sim", model=small_model, frames=clip.frames
        ) as work:
            done = simulate_masklet(work, gt, model=AnnotatorModel(max_clicks=2, min_error_px=1))
        assert [w.frame for w in done.frames] == [0] and done.frames[0].final_iou == 1.0
        assert done.examine_s == pytest.approx(30.0 * T / 300)  # one pass, watched to the end
        saved = store.get_frame_masks(masklet.id)
        assert [(m.frame, m.source) for m in saved] == [(0, "manual"), (4, "propagated"), (8, "propagated")]
        (phase,) = effort_table(store, video_id=video_id).phases
        assert (phase.frames, phase.edited_frames) == (3, 1)
        assert phase.seconds == pytest.approx(done.seconds)


def test_phase3_annotator_starts_where_the_object_appears(store_url: str, small_model) -> None:
    from masklet.engine.phases import MaskletWorkflow
    from masklet.engine.simulate import AnnotatorModel, simulate_masklet

    clip = make_synthetic_video(T, height=H, width=W, num_objects=1, seed=4)
    gt = {f: clip.mask(f, 1) if f >= 4 else np.zeros((H, W), bool) for f in range(T)}
    store, video_id = _project(store_url)
    with store:
        masklet = store.create_masklet(video_id, by="sim", phase=3)
        model = AnnotatorModel(max_clicks=2, refine_clicks=1, min_error_px=1, max_fixed_frames=2)
        with MaskletWorkflow(
            store, masklet.id, phase=3, by="sim", model=small_model, frames=clip.frames
        ) as work:
            done = simulate_masklet(work, gt, model=model)
        assert [w.frame for w in done.frames][:1] == [4] and len(done.frames) <= 2
        assert all(w.final_iou == 1.0 and w.clicks <= (2 if i == 0 else 1) for i, w in enumerate(done.frames))
        saved = {m.frame: m.source for m in store.get_frame_masks(masklet.id)}
        assert saved[0] == "propagated" and saved[4] == "manual"  # frame 0 from the backward pass
        prompts = store.list_prompts(masklet.id)
        assert {p.kind for p in prompts} <= {"click", "mask"} and prompts[0].frame == 4
        assert len(store.list_events(masklet_id=masklet.id, action="time.locate")) == len(done.frames)
