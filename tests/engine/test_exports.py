"""Exports: SA-V import -> store -> export gives the original file back; other formats round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from masklet.engine.exports import export_project, sav_annotation
from masklet.engine.projects import import_annotations
from masklet.engine.store import MIGRATIONS_DIR, Store
from masklet.errors import MaskletError
from masklet.io.formats import read_davis_video, read_sav_eval_video, read_sav_json, read_ytvis_json
from masklet.io.masks import decode_rle, encode_rle
from masklet.io.synthetic import make_synthetic_video

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_sav_round_trip_gives_the_release_files_back(store: Store, data_dir: Path, tmp_path: Path) -> None:
    project = store.create_project("sav")
    for kind in ("manual", "auto"):
        import_annotations(store, project.id, data_dir / "sav" / f"sav_000001_{kind}.json", format="sav")
    written = export_project(store, project.id, "sav", tmp_path / "out")
    assert sorted(p.name for p in written) == ["sav_000001_auto.json", "sav_000001_manual.json"]
    for kind in ("manual", "auto"):
        original = json.loads((data_dir / "sav" / f"sav_000001_{kind}.json").read_text())
        exported = json.loads((tmp_path / "out" / f"sav_000001_{kind}.json").read_text())
        assert list(exported) == list(original)  # every field, in the release's order
        for key in original:
            assert exported[key] == original[key], key  # every value, every RLE string
        # and the masks decode the same (not only the strings)
        ours, theirs = (
            read_sav_json(tmp_path / "out" / f"sav_000001_{kind}.json"),
            read_sav_json(data_dir / "sav" / f"sav_000001_{kind}.json"),
        )
        for t in (0, 60, 120):
            np.testing.assert_array_equal(ours.frame_masks(t), theirs.frame_masks(t))


def test_sav_round_trip_from_a_database_written_before_video_meta(
    store: Store, store_url: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = data_dir / "sav" / "sav_000001_manual.json"
    project = store.create_project("sav")
    (result,) = import_annotations(store, project.id, original, format="sav")
    # what revision 0001's import wrote: the video fields in the import event, no meta column
    payload = dict(store.list_events(action="import.sav")[0].payload, sav=dict(result.video.meta["sav"]))
    with store._engine.begin() as conn:
        conn.execute(
            text("UPDATE events SET payload = :p WHERE action = 'import.sav'"), {"p": json.dumps(payload)}
        )
    store.close()
    monkeypatch.delenv("MASKLET_DB_URL", raising=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", store_url.replace("%", "%%"))
    command.downgrade(config, "0001")
    with Store(store_url) as migrated:  # opening upgrades it, moving the fields into the video's meta
        (path,) = export_project(migrated, project.id, "sav", tmp_path / "out")
    assert path.name == original.name
    assert json.loads(path.read_text()) == json.loads(original.read_text())


def test_sav_video_fields_come_from_the_video_meta(store: Store, data_dir: Path, tmp_path: Path) -> None:
    project = store.create_project("sav")
    (result,) = import_annotations(
        store, project.id, data_dir / "sav" / "sav_000001_manual.json", format="sav"
    )
    sav = dict(result.video.meta["sav"], video_split="val", video_id="renamed")
    store.set_video_meta(result.video.id, {"sav": sav, "note": "kept apart"}, by="ann")
    (path,) = export_project(store, project.id, "sav", tmp_path / "out")
    assert path.name == "renamed_manual.json"  # the export name follows the meta too
    exported = read_sav_json(path)
    assert exported.video_id == "renamed" and exported.video_split == "val"
    assert exported.video_environment == "Indoor"
    assert exported.masklets == read_sav_json(data_dir / "sav" / "sav_000001_manual.json").masklets
    # without SA-V fields in the meta, they are derived from the video row
    store.set_video_meta(result.video.id, {}, by="ann")
    derived = sav_annotation(store, result.video.id)
    assert derived.video_id == "sav_000001" and derived.video_split == "train"
    assert derived.num_annotated_frames == 121
    assert derived.video_duration == pytest.approx(483 / 24)


def test_sav_export_follows_edits(store: Store, data_dir: Path, tmp_path: Path) -> None:
    project = store.create_project("sav")
    (result,) = import_annotations(
        store, project.id, data_dir / "sav" / "sav_000001_manual.json", format="sav"
    )
    first = result.masklets[0]
    old = store.get_frame_mask(first.id, 8)
    mask = decode_rle(old.rle)
    mask[:100, :100] = True  # an annotator paints a block on annotated frame 2 (video frame 8)
    store.put_frame_mask(
        first.id, 8, encode_rle(mask), source="manual", by="ann", expected_version=old.version
    )
    store.put_frame_mask(first.id, 9, encode_rle(mask), source="manual", by="ann")  # not an annotated frame
    before = read_sav_json(data_dir / "sav" / "sav_000001_manual.json").masklets[0]
    after = sav_annotation(store, result.video.id).masklets[0]
    assert after.edited_frame_count == before.edited_frame_count + 1
    assert after.size_abs != before.size_abs and after.size_abs == pytest.approx(
        (before.size_abs * 120 - before.rles[2].area + int(mask.sum())) / 120
    )  # fmt: skip
    assert after.visibility_changes == before.visibility_changes  # still agrees: written as read
    assert (
        sav_annotation(store, result.video.id).masklets[1]
        == read_sav_json(data_dir / "sav" / "sav_000001_manual.json").masklets[1]
    )
    path = export_project(store, project.id, "sav", tmp_path / "one.json")[0]
    assert read_sav_json(path).masklets[0] == after


def synthetic_project(store: Store, name: str = "synthetic"):
    video_data = make_synthetic_video(5, height=24, width=32, num_objects=2, seed=3)
    project = store.create_project(name)
    video = store.add_video(project.id, "/videos/bounce.mp4", fps=10, width=32, height=24, frame_count=5,
                            content_hash=name)  # fmt: skip
    for obj_id, category in zip(video_data.obj_ids, ("ball", "box"), strict=True):
        m = store.create_masklet(video.id, by="ann", obj_id=obj_id, category=category)
        masks = {t: encode_rle(video_data.mask(t, obj_id)) for t in (0, 1, 3)}  # frames 2, 4 unannotated
        store.put_frame_masks(m.id, masks, source="manual", by="ann")
    return project, video, video_data


def stored(store: Store, project_id: int) -> dict[tuple[int, int], np.ndarray]:
    """{(obj_id, frame): mask} of every non-empty saved mask of a project."""
    out = {}
    for m in store.list_masklets(project_id=project_id):
        for fm in store.get_frame_masks(m.id):
            mask = decode_rle(fm.rle)
            if mask.any():
                out[(m.obj_id, fm.frame)] = mask
    return out


def same_masks(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=str(key))


@pytest.mark.parametrize("fmt", ["coco", "ytvis", "davis"])
def test_round_trip_through_other_formats(store: Store, tmp_path: Path, fmt: str) -> None:
    project, video, _ = synthetic_project(store)
    out = tmp_path / ("out.json" if fmt != "davis" else "davis")
    (written,) = export_project(store, project.id, fmt, out)
    again = store.create_project("again")
    (result,) = import_annotations(store, again.id, written, format=fmt, fps=10)
    assert result.video.path.startswith("bounce")
    same_masks(stored(store, project.id), stored(store, again.id))
    if fmt != "davis":  # categories travel in COCO and YouTube-VIS
        assert [(m.obj_id, m.category) for m in result.masklets] == [(1, "ball"), (2, "box")]
    if fmt == "ytvis":
        assert read_ytvis_json(written).videos[0].length == 5
    if fmt == "davis":
        assert read_davis_video(written).frames == (0, 1, 3)


def test_sav_eval_layout_and_davis_labels(store: Store, tmp_path: Path) -> None:
    project, video, video_data = synthetic_project(store)
    (folder,) = export_project(store, project.id, "sav-eval", tmp_path / "eval")
    assert folder == tmp_path / "eval" / "bounce"
    masks = read_sav_eval_video(folder)
    assert sorted(masks) == [1, 2] and sorted(masks[2]) == [0, 1, 3]
    np.testing.assert_array_equal(masks[2][3].decode(), video_data.mask(3, 2))
    # an object id 0 (SA-V numbering) cannot be a DAVIS label: labels become 1, 2, ... in id order
    m = store.create_masklet(video.id, by="ann", obj_id=0)
    store.put_frame_mask(m.id, 4, encode_rle(np.ones((24, 32), bool)), source="manual", by="ann")
    (folder,) = export_project(store, project.id, "davis", tmp_path / "davis")
    seq = read_davis_video(folder)
    assert seq.obj_ids == (1, 2, 3) and seq.frames == (0, 1, 3, 4)
    assert seq.masks[1][4].decode().all()  # object 0 became label 1 (and covers everything on frame 4)


def test_export_targets_and_errors(store: Store, tmp_path: Path) -> None:
    project, video, _ = synthetic_project(store)
    empty = store.create_project("empty")
    with pytest.raises(MaskletError, match="no videos"):
        export_project(store, empty.id, "sav", tmp_path / "x.json")
    with pytest.raises(MaskletError, match="export format"):
        export_project(store, project.id, "mot", tmp_path / "x")
    with pytest.raises(MaskletError, match="folder"):
        export_project(store, project.id, "davis", tmp_path / "x.json")
    # status filter: nothing accepted yet, so the SA-V file has no masklets
    (path,) = export_project(store, project.id, "sav", tmp_path / "s.json", status="accepted")
    assert read_sav_json(path).masklets == ()
    (path,) = export_project(store, project.id, "sav", tmp_path / "all.json")
    sav = read_sav_json(path)
    assert sav.video_id == "bounce" and sav.num_annotated_frames == 2  # frames 0 and 4 of 5
    assert [m.masklet_id for m in sav.masklets] == [1, 2]
    assert [m.edited_frame_count for m in sav.masklets] == [1, 1]  # frame 0 was drawn by hand, 4 is absent
