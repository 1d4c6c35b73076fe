"""The image commands end to end, with a random-weight checkpoint in the official layout."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.cli import main

IMAGE_SIZE = ["--image-size", "256"]  # the checkpoint is full-size; a smaller input keeps the test fast


@pytest.fixture(scope="module")
def truck(tmp_path_factory, data_dir) -> Path:
    # a 300x200 copy of the truck picture keeps decoding and upsampling cheap
    path = tmp_path_factory.mktemp("img") / "truck.jpg"
    Image.open(data_dir / "images" / "truck.jpg").convert("RGB").resize((300, 200)).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from masklet.build import build_sam2

    torch.manual_seed(3)
    model = build_sam2("sam2.1_hiera_t")
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


def test_segment_writes_mask_and_overlay(tmp_path, truck, tiny_checkpoint, capsys):
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    code = main(["segment", str(truck), "--point", "150,120", "--point", "40,40,0", "--box", "100,80,220,180",
                 "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--overlay", str(overlay), *IMAGE_SIZE])
    assert code == 0
    mask = np.asarray(Image.open(out))
    assert mask.shape == (200, 300) and set(np.unique(mask)) <= {0, 255}
    assert Image.open(overlay).size == (300, 200)
    assert "predicted IoU" in capsys.readouterr().out


def test_auto_writes_rle_json(tmp_path, truck, tiny_checkpoint):
    out = tmp_path / "masks.json"
    code = main(["auto", str(truck), "--out", str(out), "--points-per-side", "4", "--pred-iou-thresh", "0",
                 "--stability-score-thresh", "0", "--checkpoint", str(tiny_checkpoint), *IMAGE_SIZE])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["height"] == 200 and payload["masks"]
    first = payload["masks"][0]
    assert first["segmentation"]["size"] == [200, 300] and isinstance(first["segmentation"]["counts"], str)


def test_models_lists_all_eight(capsys, tmp_path):
    assert main(["models", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("dl.fbaipublicfiles.com") == 8 and "sam2.1_hiera_b+" in out


def _run_error(args: list[str], capsys) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--point", "900,10"], "outside the 300x200 image"),
        (["--box", "100,100,100,150"], "empty or inverted"),
        (["--box", "200,100,100,150"], "empty or inverted"),
    ],
)
def test_bad_prompts_fail_clearly(tmp_path, truck, extra, message, capsys):
    err = _run_error(["segment", str(truck), *extra, "--out", str(tmp_path / "m.png"), *IMAGE_SIZE], capsys)
    assert message in err
    assert not (tmp_path / "m.png").exists()


def test_no_prompt_fails(tmp_path, truck, capsys):
    assert "at least one --point" in _run_error(["segment", str(truck), "--out", str(tmp_path / "m.png")], capsys)


def test_missing_and_corrupt_images(tmp_path, capsys):
    err = _run_error(["segment", str(tmp_path / "nope.jpg"), "--point", "1,1", "--out", str(tmp_path / "m.png")], capsys)
    assert "does not exist" in err
    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    err = _run_error(["segment", str(corrupt), "--point", "1,1", "--out", str(tmp_path / "m.png")], capsys)
    assert "cannot read image" in err and "bad.jpg" in err


def test_checkpoint_of_another_size(tmp_path, truck, tiny_checkpoint, capsys):
    err = _run_error(["segment", str(truck), "--point", "10,10", "--model", "sam2.1_hiera_s",
                      "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "m.png"), *IMAGE_SIZE], capsys)
    assert "does not fit sam2.1_hiera_s" in err and "sam2.1_hiera_t" in err


def test_truncated_checkpoint(tmp_path, truck, tiny_checkpoint, capsys):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_checkpoint.read_bytes()[: 1_000_000])
    err = _run_error(["segment", str(truck), "--point", "10,10", "--checkpoint", str(cut),
                      "--out", str(tmp_path / "m.png"), *IMAGE_SIZE], capsys)
    assert "cut.pt" in err


def test_download_without_network(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    err = _run_error(["download", "sam2.1_hiera_t", "--cache-dir", str(tmp_path)], capsys)
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt" in err
    assert str(tmp_path / "sam2.1_hiera_tiny.pt") in err
    assert not list(tmp_path.iterdir())  # nothing that looks like a checkpoint is left behind


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["segment", "x.jpg", "--point", "1,2,3,4", "--out", "m.png"])
    assert exc.value.code == 2
    assert "--point needs 2 or 3 numbers" in capsys.readouterr().err


def test_synth_video_writes_video_and_ground_truth(tmp_path):
    from masklet.io.formats.sav_eval import read_sav_eval_video
    from masklet.io.frames import open_frame_source

    out = tmp_path / "shapes.mp4"
    assert main(["synth-video", str(out), "--gt", str(tmp_path / "gt"), "--frames", "5", "--height", "64",
                 "--width", "96", "--objects", "2"]) == 0
    with open_frame_source(out) as source:
        assert source.num_frames == 5 and (source.height, source.width) == (64, 96)
    gt = read_sav_eval_video(tmp_path / "gt" / "shapes")
    assert gt is not None


def test_synth_video_refuses_odd_sizes(tmp_path, capsys):
    assert main(["synth-video", str(tmp_path / "x.mp4"), "--gt", str(tmp_path / "gt"), "--height", "63"]) == 2
    assert "even" in capsys.readouterr().err


def test_synth_video_writes_a_training_set(tmp_path, capsys):
    from masklet.io.synthetic_dataset import TexturedScene
    from masklet.train.data import load_training_videos

    out = tmp_path / "set"
    assert main(["synth-video", str(out), "--videos", "3", "--frames", "9", "--height", "64", "--width", "80",
                 "--objects", "1-3", "--seed", "4"]) == 0
    assert "3 videos of 9 frames 80x64, 1-3 objects each" in capsys.readouterr().out
    videos = load_training_videos(out)
    assert [v.name for v in videos] == ["synth_0000", "synth_0001", "synth_0002"]
    for i, video in enumerate(videos):
        assert video.frames == (0, 4, 8) and 1 <= len(video.obj_ids) <= 3
        scene = TexturedScene.random(height=64, width=80, num_objects=len(video.obj_ids), seed=4 * 100_003 + i)
        _, masks = scene.render(8)
        for k, obj in enumerate(video.obj_ids):  # exact masks, as rendered
            assert np.array_equal(video.masks[obj][2].decode(), masks[k])
    assert main(["synth-video", str(tmp_path / "one.mp4"), "--objects", "2-3", "--gt", str(tmp_path / "g")]) == 2
    assert "range of object counts is for --videos" in capsys.readouterr().err
    assert main(["synth-video", str(tmp_path / "one.mp4")]) == 2
    assert "--gt FOLDER is required" in capsys.readouterr().err
