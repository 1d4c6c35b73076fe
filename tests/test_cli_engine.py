"""The data-engine subcommands end to end, through the `masklet` parser's handlers, on a tmp SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from masklet.cli import build_parser
from masklet.engine.effort import log_time
from masklet.engine.store import DuplicateError, Store
from masklet.errors import MaskletError
from masklet.io.formats import write_sav_eval_video
from masklet.io.masks import encode_rle
from masklet.io.synthetic import make_synthetic_video

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


@pytest.fixture
def db(tmp_path: Path) -> list[str]:
    return ["--db", f"sqlite:///{tmp_path / 'cli.db'}", "--by", "tester"]


def test_projects_videos_and_the_default_database(
    db: list[str], data_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    assert run(["project", "create", "demo", *db], capsys).strip() == "project 1 demo"
    out = run(["project", "add-video", "demo", str(data_dir / "videos" / "bedroom_1s.mp4"), *db], capsys)
    assert out.strip() == "video 1 in demo: 480x270, 30 frames at 30 fps"
    with pytest.raises(DuplicateError):
        run(["project", "add-video", "1", str(data_dir / "videos" / "bedroom_1s.mp4"), *db], capsys)  # by id
    lines = run(["project", "list", *db], capsys).splitlines()
    assert lines[0].split() == [
        "id",
        "name",
        "videos",
        "masklets",
        "draft",
        "in_review",
        "accepted",
        "rejected",
    ]
    assert lines[1].split() == ["1", "demo", "1", "0", "0", "0", "0", "0"]
    # no --db: $MASKLET_DB, else masklet.db in the working folder
    monkeypatch.chdir(tmp_path)
    run(["project", "create", "here"], capsys)
    assert (tmp_path / "masklet.db").exists()
    monkeypatch.setenv("MASKLET_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert "no projects" in run(["project", "list"], capsys)


def test_import_review_export_round_trip(db: list[str], data_dir: Path, tmp_path: Path, capsys) -> None:
    sav = data_dir / "sav" / "sav_000001_manual.json"
    run(["project", "create", "sav", *db], capsys)
    out = run(["import", "sav", str(sav), "--format", "sav", *db], capsys)
    assert out.strip() == "video 1 (sav_000001.mp4): 5 masklets, 605 masks"
    assert "nothing to review" in run(["review", "sav", *db], capsys)
    for masklet_id in (1, 2):
        assert (
            run(["review", "sav", "--submit", str(masklet_id), *db], capsys)
            .strip()
            .endswith("in_review (version 3)")
        )
    queue = run(["review", "sav", "--queue", *db], capsys).splitlines()
    assert [line.split()[0] for line in queue[1:]] == ["1", "2"]
    assert "accepted" in run(["review", "sav", "--accept", "1", *db], capsys)
    with pytest.raises(MaskletError, match="needs a reason"):
        run(["review", "sav", "--reject", "2", *db], capsys)
    assert "rejected" in run(["review", "sav", "--reject", "2", "--reason", "too loose", *db], capsys)
    with pytest.raises(MaskletError, match="stale|version"):
        run(["review", "sav", "--submit", "3", "--version", "7", *db], capsys)
    out_file = tmp_path / "export.json"
    assert run(["export", "sav", "--format", "sav", "--out", str(out_file), *db], capsys).strip() == str(
        out_file
    )
    assert json.loads(out_file.read_text()) == json.loads(sav.read_text())
    accepted = tmp_path / "accepted.json"
    run(["export", "sav", "--format", "sav", "--out", str(accepted), "--status", "accepted", *db], capsys)
    assert json.loads(accepted.read_text())["masklet_id"] == [0]


def test_eval_scores_folders(tmp_path: Path, capsys) -> None:
    video = make_synthetic_video(4, height=32, width=32, num_objects=2, seed=2)
    gt = {o: {t: video.mask(t, o) for t in range(4)} for o in video.obj_ids}
    pred = {1: gt[1], 2: {t: np.roll(m, 2, axis=1) for t, m in gt[2].items()}}  # object 2 shifted 2 px
    write_sav_eval_video(tmp_path / "gt", "v1", gt)
    write_sav_eval_video(tmp_path / "pred", "v1", pred)
    lines = run(["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")], capsys).splitlines()
    assert lines[0] == "protocol sav, 1 videos"
    assert lines[2].split() == ["v1", "1", "100.0", "100.0", "100.0"]
    assert float(lines[3].split()[-1]) < 100.0
    data = json.loads(run(["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--json",
                           "--all-frames"], capsys))  # fmt: skip
    (v1,) = data["videos"]
    assert v1["objects"][0]["jf"] == 1.0 and 0 < v1["objects"][1]["j"] < 1
    assert data["jf"] == pytest.approx((1.0 + v1["objects"][1]["jf"]) / 2)
    with pytest.raises(MaskletError, match="not a folder"):
        run(["eval", "--gt", str(tmp_path / "nope"), "--pred", str(tmp_path / "pred")], capsys)


def test_effort_table_and_json(db: list[str], tmp_path: Path, capsys) -> None:
    run(["project", "create", "work", *db], capsys)
    assert "no annotation events" in run(["effort", "work", *db], capsys)
    with Store(db[1]) as store:
        video = store.add_video(1, "v.mp4", fps=24, width=8, height=6, frame_count=4, content_hash="h")
        m = store.create_masklet(video.id, by="ann", phase=1)
        for frame in (0, 1):
            store.add_prompt(
                m.id, frame, "click", {"points": [[1, 1], [2, 2]], "labels": [1, 0]}, by="ann", phase=1
            )
            store.put_frame_mask(
                m.id, frame, encode_rle(np.ones((6, 8), bool)), source="manual", by="ann", phase=1
            )
            log_time(store, "time.edit", 20.0, by="ann", phase=1, masklet_id=m.id, frame=frame)
    lines = run(["effort", "work", *db], capsys).splitlines()
    assert lines[0].split() == ["Phase", "1"]
    assert lines[3].split()[-1] == "20.0" and lines[5].split()[-1] == "2.00"
    data = json.loads(run(["effort", "work", "--json", *db], capsys))
    assert data["phases"][0]["time_per_frame_s"] == 20.0 and data["phases"][0]["clicks"] == 4
