"""Project workflows: adding probed videos, importing annotation files in one transaction each."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from masklet.engine.projects import add_video, content_hash, import_annotations
from masklet.engine.store import DuplicateError, InvalidEditError, Store
from masklet.errors import FormatError, MaskletError
from masklet.io.formats import write_davis_video
from masklet.io.masks import decode_rle, encode_rle
from masklet.io.synthetic import make_synthetic_video, write_frame_folder

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def saved_nothing(store: Store, project_id: int) -> bool:
    events = store.list_events(project_id=project_id)
    return (
        not store.list_videos(project_id)
        and not store.list_masklets(project_id=project_id)
        and [e.action for e in events] == ["project.create"]
    )


def test_add_video_probes_a_file_and_a_folder(store: Store, data_dir: Path, tmp_path: Path) -> None:
    project = store.create_project("p")
    clip = data_dir / "videos" / "bedroom_1s.mp4"
    video = add_video(store, project.id, clip, by="me")
    assert (video.frame_count, video.fps, video.width, video.height) == (30, 30.0, 480, 270)
    assert video.content_hash == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert Path(video.path).is_absolute()
    with pytest.raises(DuplicateError):
        add_video(store, project.id, clip)
    synthetic = make_synthetic_video(3, height=32, width=48)
    folder = tmp_path / "frames"
    write_frame_folder(synthetic.frames, folder, suffix=".png")
    with pytest.raises(MaskletError, match="frame rate is unknown"):
        add_video(store, project.id, folder)
    frames = add_video(store, project.id, folder, fps=6.0)
    assert (frames.width, frames.height, frames.frame_count, frames.fps) == (48, 32, 3, 6.0)
    (folder / "00001.png").write_bytes((folder / "00000.png").read_bytes())  # content changes, hash follows
    assert content_hash(folder) != frames.content_hash


def sav_file(data_dir: Path, tmp_path: Path, edit) -> Path:
    obj = json.loads((data_dir / "sav" / "sav_000001_manual.json").read_text())
    edit(obj)
    path = tmp_path / "sav_000001_manual.json"
    path.write_text(json.dumps(obj))
    return path


def test_malformed_sav_files_save_nothing(store: Store, data_dir: Path, tmp_path: Path) -> None:
    project = store.create_project("p")

    def bad_rle(obj):  # one RLE of the wrong size, deep inside the file
        obj["masklet"][60][2] = encode_rle(np.zeros((10, 10), bool))

    with pytest.raises(FormatError, match=r"masklet\[60\]\[2\]"):
        import_annotations(store, project.id, sav_file(data_dir, tmp_path, bad_rle), format="sav")
    assert saved_nothing(store, project.id)

    def bad_type(obj):  # refused after the video row was created: the transaction takes it back
        obj["masklet_type"][-1] = "robot"

    with pytest.raises(FormatError, match="robot"):
        import_annotations(store, project.id, sav_file(data_dir, tmp_path, bad_type), format="sav")
    assert saved_nothing(store, project.id)


def test_a_failure_half_way_through_the_masks_saves_nothing(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = store.create_project("p")
    real, calls = store.put_frame_masks, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise InvalidEditError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "put_frame_masks", failing)
    with pytest.raises(InvalidEditError, match="simulated"):
        import_annotations(store, project.id, data_dir / "sav" / "sav_000001_manual.json", format="sav")
    assert len(calls) == 3 and saved_nothing(store, project.id)


def test_import_into_a_given_video_must_fit_it(store: Store, data_dir: Path) -> None:
    project = store.create_project("p")
    small = store.add_video(
        project.id, "x.mp4", fps=24, width=480, height=848, frame_count=100, content_hash="x"
    )
    path = data_dir / "sav" / "sav_000001_manual.json"
    with pytest.raises(FormatError, match="past the end of video"):
        import_annotations(store, project.id, path, format="sav", video_id=small.id)
    other = store.add_video(
        project.id, "y.mp4", fps=24, width=64, height=64, frame_count=483, content_hash="y"
    )
    with pytest.raises(FormatError, match="848x480"):
        import_annotations(store, project.id, path, format="sav", video_id=other.id)
    assert store.list_masklets(project_id=project.id) == []
    with pytest.raises(MaskletError, match="format must be one of"):
        import_annotations(store, project.id, path, format="mot")


def test_sav_import_lands_on_the_video_of_that_name(store: Store, data_dir: Path) -> None:
    project = store.create_project("p")
    video = store.add_video(
        project.id, "/data/sav_000001.mp4", fps=24, width=480, height=848, frame_count=483, content_hash="z"
    )
    (result,) = import_annotations(
        store, project.id, data_dir / "sav" / "sav_000001_manual.json", format="sav"
    )
    assert result.video.id == video.id and result.masks == 5 * 121
    # the file's video-level fields land in the video's meta (the import event names the file only)
    sav = store.get_video(video.id).meta["sav"]
    assert sav["video_id"] == "sav_000001" and sav["video_environment"] == "Indoor"
    assert sav["video_duration"] == 20.125
    assert sav["num_annotated_frames"] == 121 and result.video.meta["sav"] == sav
    (event,) = store.list_events(video_id=video.id, action="import.sav")
    assert "sav" not in event.payload and event.payload["masks"] == 5 * 121
    assert [m.obj_id for m in result.masklets] == [0, 1, 2, 3, 4]
    assert result.masklets[0].meta["sav"]["edited_frame_count"] == 41
    (auto,) = import_annotations(store, project.id, data_dir / "sav" / "sav_000001_auto.json", format="sav")
    # the auto file's ids 0..8 are taken: they move after the manual ones, the file's id stays in meta
    assert [m.obj_id for m in auto.masklets] == list(range(5, 14))
    assert [m.meta["source_id"] for m in auto.masklets] == list(range(9))
    assert {m.type for m in auto.masklets} == {"auto"}
    assert {fm.source for fm in store.get_frame_masks(auto.masklets[0].id)} == {"auto"}


def test_davis_folder_import_and_a_broken_one(store: Store, tmp_path: Path) -> None:
    project = store.create_project("p")
    synthetic = make_synthetic_video(4, height=24, width=32, num_objects=2)
    masks = {o: {t: synthetic.mask(t, o) for t in range(4)} for o in synthetic.obj_ids}
    folder = write_davis_video(tmp_path / "bouncing", masks, size=(24, 32))
    (result,) = import_annotations(store, project.id, folder, format="davis", fps=30.0)
    assert (result.video.path, result.video.frame_count, result.video.fps) == ("bouncing", 4, 30.0)
    assert [m.obj_id for m in result.masklets] == [1, 2]
    saved = store.get_frame_masks(result.masklets[1].id)
    assert [fm.frame for fm in saved] == [0, 1, 2, 3]
    np.testing.assert_array_equal(decode_rle(saved[2].rle), masks[2][2])
    broken = write_davis_video(tmp_path / "broken", masks, size=(24, 32))
    (broken / "00002.png").write_bytes(b"not a png")
    other = store.create_project("q")
    with pytest.raises(FormatError, match="00002.png"):
        import_annotations(store, other.id, broken, format="davis")
    assert saved_nothing(store, other.id)


def test_coco_without_track_ids_gives_one_masklet_per_annotation(store: Store, tmp_path: Path) -> None:
    mask = np.zeros((8, 10), bool)
    mask[2:5, 3:7] = True
    data = {
        "images": [{"id": 7, "file_name": "a.jpg", "height": 8, "width": 10},
                   {"id": 9, "file_name": "b.jpg", "height": 8, "width": 10}],
        "annotations": [{"id": 3, "image_id": 9, "category_id": 1, "segmentation": encode_rle(mask)},
                        {"id": 4, "image_id": 7, "category_id": 2, "segmentation": [[0, 0, 4, 0, 4, 4]]}],
        "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "plate"}],
    }  # fmt: skip
    path = tmp_path / "kitchen.json"
    path.write_text(json.dumps(data))
    project = store.create_project("p")
    (result,) = import_annotations(store, project.id, path, format="coco")
    assert [(m.obj_id, m.category) for m in result.masklets] == [(3, "cup"), (4, "plate")]
    assert [fm.frame for fm in store.get_frame_masks(result.masklets[0].id)] == [1]  # image 9 is frame 1
    data["images"][1]["height"] = 9  # images of one video must share a size
    path.write_text(json.dumps(data))
    other = store.create_project("q")
    with pytest.raises(FormatError):
        import_annotations(store, other.id, path, format="coco")
    assert saved_nothing(store, other.id)
