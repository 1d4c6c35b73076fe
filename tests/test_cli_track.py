"""`masklet track` end to end on a small synthetic mp4, with a seeded checkpoint in the official layout."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch

from masklet.cli import main
from masklet.cli.video import TrackPrompt, merge_prompts, prompt_arg
from masklet.errors import PromptError
from masklet.io.formats.davis import read_davis_video
from masklet.io.formats.sav_eval import read_sav_eval_video
from masklet.io.frames import open_frame_source
from masklet.io.synthetic import make_synthetic_video, write_mp4

H, W, T = 96, 128, 8

# many small ops: on a busy 2-core runner, two intra-op threads are several times slower than one
pytestmark = pytest.mark.threads(1)


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(T, H, W, num_objects=2, seed=1)


@pytest.fixture(scope="module")
def clip(video, tmp_path_factory):
    return str(write_mp4(video.frames, tmp_path_factory.mktemp("video") / "clip.mp4", fps=12))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from seeded_weights import seeded_state_dict, shapes_of

    from masklet.build import build_sam2

    model = build_sam2("sam2.1_hiera_t", image_size=128)
    # seeded weights: masks react to the prompts, unlike the official random init
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": seeded_state_dict(shapes_of(model.state_dict()), seed=4)}, path)
    return str(path)


@pytest.fixture(scope="module")
def model_args(checkpoint):
    return ["--checkpoint", checkpoint, "--image-size", "128"]


def _point(video, frame: int, k: int, label: int | None = None) -> str:
    x, y = video.centers[frame, k]
    return f"frame={frame},obj={k + 1},point={x:.2f},{y:.2f}" + ("" if label is None else f",{label}")


def _box(video, frame: int, k: int) -> str:
    x0, y0, x1, y1 = video.boxes[frame, k].clip(0, [W, H, W, H])
    return f"frame={frame},obj={k + 1},box={x0:.2f},{y0:.2f},{x1:.2f},{y1:.2f}"


def test_png_masks_equal_a_direct_session_and_the_overlay_is_a_video(
    video, clip, checkpoint, model_args, tmp_path, capsys
):
    out, overlay = tmp_path / "masks", tmp_path / "over" / "tracked.mp4"
    prompts = [_point(video, 0, 0), _box(video, 0, 1), _point(video, 5, 0, label=0)]
    argv = ["track", clip, *[a for p in prompts for a in ("--prompt", p)], "--out", str(out),
            "--format", "png", "--overlay", str(overlay), *model_args]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "over 8 frames" in printed.out and "frames/s" in printed.out and "MiB" in printed.out
    assert "tracking" in printed.err  # the progress bar

    written = read_sav_eval_video(out, num_frames=T, size=(H, W))
    assert sorted(written) == [1, 2] and all(sorted(m) == list(range(T)) for m in written.values())

    from masklet.build import build_sam2
    from masklet.predict.video import VideoPredictor

    model = build_sam2("sam2.1_hiera_t", checkpoint, image_size=128)
    with VideoPredictor(model).start(clip) as session:
        session.add_prompt(0, 1, points=[video.centers[0, 0].round(2)], labels=[1])
        session.add_prompt(0, 2, box=video.boxes[0, 1].clip(0, [W, H, W, H]).round(2))
        session.add_prompt(5, 1, points=[video.centers[5, 0].round(2)], labels=[0])
        for frame, obj_ids, logits in session.propagate():
            for obj_id, mask in zip(obj_ids, (logits > 0).numpy(), strict=True):
                assert np.array_equal(written[obj_id][frame].decode(), mask), (frame, obj_id)
    assert 0.01 < written[1][3].decode().mean() < 0.99  # not a trivial all/nothing mask

    with open_frame_source(str(overlay)) as frames:
        assert (frames.num_frames, frames.height, frames.width) == (T, H, W)
        with open_frame_source(clip) as source:
            tinted = written[2][3].decode()
            shift = np.abs(frames.get(3).astype(int) - source.get(3).astype(int)).mean(axis=2)
            assert shift[tinted].mean() > 3 * shift[~tinted].mean()  # masks are drawn where they are


def test_davis_reverse_from_the_latest_prompt(video, clip, model_args, tmp_path):
    out = tmp_path / "davis"
    argv = ["track", clip, "--prompt", _point(video, 5, 0), "--prompt", _point(video, 3, 1),
            "--reverse", "--out", str(out), "--format", "davis", *model_args]  # fmt: skip
    assert main(argv) == 0
    written = read_davis_video(out, num_frames=T)
    assert written.frames == (0, 1, 2, 3, 4, 5) and written.size == (H, W)
    labels = written.labels(4)
    assert set(np.unique(labels)) <= {0, 1, 2} and (labels == 1).any()


def test_start_and_max_frames(video, clip, model_args, tmp_path):
    out = tmp_path / "part"
    out.mkdir()  # an existing empty folder is fine
    argv = ["track", clip, "--prompt", _point(video, 0, 0), "--start", "2", "--max-frames", "3",
            "--out", str(out), "--format", "davis", *model_args]  # fmt: skip
    assert main(argv) == 0
    assert read_davis_video(out).frames == (2, 3, 4)
    # a second run into the now non-empty folder needs --overwrite
    assert main(argv) == 2
    assert main([*argv, "--reverse", "--overwrite"]) == 0
    assert read_davis_video(out).frames == (0, 1, 2)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "comes before any key"),
        ("0,1,point=3,4", "comes before any key"),
        ("frame=0,obj=1", "no point= or box="),
        ("frame=0,point=3,4", "obj= missing"),
        ("frame=x,obj=1,point=3,4", "frame= needs one non-negative integer"),
        ("frame=-1,obj=1,point=3,4", "frame= needs one non-negative integer"),
        ("frame=0,obj=1,point=3", "point= needs 2 or 3 numbers"),
        ("frame=0,obj=1,point=3,4,2", "label is 1 (foreground) or 0"),
        ("frame=0,obj=1,box=1,2,3", "box= needs 4 numbers"),
        ("frame=0,obj=1,box=1,2,3,4,box=1,2,3,4", "box= is given twice"),
        ("frame=0,obj=1,frame=2,point=1,2", "frame= is given twice"),
        ("frame=0,obj=1,dot=3,4", "unknown key 'dot'"),
        ("frame=0,obj=1,point=a,b", "point= needs numbers"),
    ],
)
def test_malformed_prompts_say_what_was_expected(text, problem):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(problem)) as info:
        prompt_arg(text)
    assert "expected frame=F,obj=ID then point=X,Y[,LABEL]" in str(info.value)


def test_prompt_parsing_and_merging():
    assert prompt_arg("frame=3, obj=2, point=10.5,20, point=1,2,0, box=0,0,50,60") == TrackPrompt(
        3, 2, ((10.5, 20.0, 1), (1.0, 2.0, 0)), (0.0, 0.0, 50.0, 60.0)
    )
    merged = merge_prompts([prompt_arg("frame=0,obj=1,point=1,2"), prompt_arg("frame=4,obj=1,point=5,6"),
                            prompt_arg("frame=0,obj=1,point=3,4,0,box=0,0,9,9")])  # fmt: skip
    assert merged == [TrackPrompt(0, 1, ((1, 2, 1), (3, 4, 0)), (0, 0, 9, 9)),
                      TrackPrompt(4, 1, ((5, 6, 1),))]  # fmt: skip
    with pytest.raises(PromptError, match="two boxes"):
        merge_prompts([prompt_arg("frame=0,obj=1,box=0,0,9,9"), prompt_arg("frame=0,obj=1,box=1,1,9,9")])


def test_errors_exit_with_code_2(video, clip, model_args, tmp_path, capsys):
    out = str(tmp_path / "out")
    with pytest.raises(SystemExit) as info:
        main(["track", clip, "--prompt", "frame=0,obj=1", "--out", out])
    assert info.value.code == 2 and "no point= or box=" in capsys.readouterr().err

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    cases = [
        ([str(tmp_path / "missing.mp4"), "--prompt", "frame=0,obj=1,point=5,5"], "no such file"),
        ([str(corrupt), "--prompt", "frame=0,obj=1,point=5,5"], "cannot be opened as a video"),
        ([clip, "--prompt", "frame=8,obj=1,point=5,5"], "frame 8 is past the end; valid frames are 0..7"),
        ([clip, "--prompt", f"frame=0,obj=1,point={W + 5},5"], "outside the 128x96 frame"),
        ([clip, "--prompt", "frame=0,obj=0,point=5,5", "--format", "davis"], "holds object ids 1..254"),
        ([clip, "--prompt", "frame=0,obj=1,point=5,5", "--start", "8"], "--start 8 is past the end"),
        ([clip, "--prompt", "frame=0,obj=1,point=5,5", "--overlay", "x.gif"], "expected a video file name"),
    ]
    for args, message in cases:
        assert main(["track", *args, "--out", out, *model_args]) == 2, message
        err = capsys.readouterr().err
        assert "masklet track: error:" in err and message in err, err
    assert not (tmp_path / "out").exists()  # nothing written on failure


def test_fast_computes_in_bfloat16_where_the_cpu_has_it(video, clip, model_args, tmp_path, monkeypatch, caplog):
    from masklet.predict import precision

    prompts = ["--prompt", _point(video, 0, 0), "--prompt", _box(video, 0, 1)]
    exact, fast, fallback = tmp_path / "exact", tmp_path / "fast", tmp_path / "fallback"
    assert main(["track", clip, *prompts, "--out", str(exact), *model_args]) == 0
    monkeypatch.setattr(precision, "cpu_computes_bfloat16", lambda: False)
    assert main(["track", clip, *prompts, "--out", str(fallback), "--fast", *model_args]) == 0
    assert "computing in float32" in caplog.text
    monkeypatch.setattr(precision, "cpu_computes_bfloat16", lambda: True)
    assert main(["track", clip, *prompts, "--out", str(fast), "--fast", *model_args]) == 0

    def stack(folder):
        written = read_sav_eval_video(folder, num_frames=T, size=(H, W))
        assert sorted(written) == [1, 2] and all(sorted(m) == list(range(T)) for m in written.values())
        return np.stack([written[o][f].decode() for o in (1, 2) for f in range(T)])

    ours, ref, same = stack(fast), stack(exact), stack(fallback)
    assert np.array_equal(same, ref)  # no bfloat16 here: exact mode's masks
    agreement = (ours == ref).mean()
    assert 0.98 <= agreement < 1.0, agreement  # bfloat16: nearly, not exactly, the same masks
