"""The training loop on the real sam2.1_hiera_t architecture at 128 px: it learns, resumes
exactly, runs under torchrun with the same result, and writes checkpoints both packages load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from masklet.build import build_sam2, expected_shapes
from masklet.cli import main as cli_main
from masklet.errors import CheckpointError
from masklet.train.data import load_training_videos, sample_clip
from masklet.train.loop import TrainSettings, train
from masklet.train.optim import OptimSettings
from masklet.train.prompts import PromptSettings

SIZE = 128  # as in conftest.py

pytestmark = pytest.mark.threads(1)

SMALL = dict(image_size=SIZE, clip_frames=3, max_objects=2)


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_a_fixed_clip_is_overfit(one_clip_folder, tmp_path):
    """One clip, one box prompt: the loss falls more than 20-fold in 25 steps (dice 2.9 -> < 0.2)."""
    videos = load_training_videos(one_clip_folder)
    settings = TrainSettings(
        **SMALL, steps=25, seed=0,
        prompts=PromptSettings(prob_mask=0.0, prob_box=1.0, box_noise=0.0, corrections_per_frame=0,
                               max_init_cond_frames=1),
        optim=OptimSettings(lr=1e-3, encoder_lr=1e-3, weight_decay=0.0, grad_clip=1.0),
    )  # fmt: skip
    result = train(settings, videos, tmp_path, progress=False)
    history = json.loads(result.metrics.read_text())["history"]
    first, last = history[0], history[-1]
    assert last["total"] < first["total"] / 20, [round(h["total"], 3) for h in history]
    assert last["dice"] < 0.2 < 2.0 < first["dice"]
    assert result.loss_curve is not None and result.loss_curve.stat().st_size > 10_000


def test_a_killed_run_resumes_to_the_same_weights(sav_folder, tmp_path, monkeypatch):
    """A run writing its files every 2 steps dies in step 4; resuming it ends where an
    uninterrupted run ends (weights, optimizer, schedule and history)."""
    import masklet.train.loop as loop

    videos = load_training_videos(sav_folder)
    settings = TrainSettings(**SMALL, steps=4, seed=2, checkpoint_every=2,
                             prompts=PromptSettings(corrections_per_frame=1),
                             optim=OptimSettings(lr=1e-4, encoder_lr=1e-4))  # fmt: skip
    straight = train(settings, videos, tmp_path / "straight", progress=False, plot=False)

    real = loop._step_clips

    def dies_in_step_4(data, settings, step, proc, size):
        if step == 3:
            raise KeyboardInterrupt
        return real(data, settings, step, proc, size)

    monkeypatch.setattr(loop, "_step_clips", dies_in_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(settings, videos, tmp_path / "killed", progress=False, plot=False)
    monkeypatch.setattr(loop, "_step_clips", real)
    resumed = train(settings, videos, tmp_path / "killed", resume=True, progress=False, plot=False)
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads(resumed.metrics.read_text())["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    def losses(h):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in h]

    assert losses(history) == losses(json.loads(straight.metrics.read_text())["history"])
    with pytest.raises(CheckpointError, match="other settings"):
        train(TrainSettings(**{**SMALL, "steps": 4, "seed": 3}), videos, tmp_path / "killed", resume=True,
              progress=False)  # fmt: skip


def test_two_gloo_processes_equal_one(sav_folder, tmp_path):
    """torchrun with 2 CPU processes and a global batch of 2 clips: the weights after 2 steps
    equal one process's on the same batch (each clip's draws, dropout included, come from
    (seed, step, clip), and the loss is normalised by the global object count)."""
    args = ["--data", str(sav_folder), "--image-size", str(SIZE), "--steps", "2", "--batch-size", "2",
            "--clip-frames", "3", "--max-objects", "2", "--corrections", "1", "--lr", "1e-4",
            "--encoder-lr", "1e-4", "--seed", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "masklet.train",
         *args, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 process(es)" in two.stdout
    one = subprocess.run([sys.executable, "-m", "masklet.train", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = _weights(tmp_path / "one" / "checkpoint.pt"), _weights(tmp_path / "two" / "checkpoint.pt")
    start = build_sam2("sam2.1_hiera_t", image_size=SIZE).state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it trained
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6, worst


def test_checkpoints_are_in_the_official_layout(sav_folder, tmp_path):
    """{"model": state_dict} with exactly the official names and shapes; loads strictly; a frozen
    image encoder is written back unchanged."""
    videos = load_training_videos(sav_folder)
    result = train(TrainSettings(**SMALL, steps=1, seed=0, optim=OptimSettings(freeze="image_encoder")),
                   videos, tmp_path, progress=False, plot=False)  # fmt: skip
    saved = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert list(saved) == ["model"]
    assert {k: tuple(v.shape) for k, v in saved["model"].items()} == expected_shapes("sam2.1_hiera_t")
    loaded = build_sam2("sam2.1_hiera_t", checkpoint=result.checkpoint, image_size=SIZE)  # strict
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saved["model"].items())
    torch.manual_seed(0)  # the loop's initialisation
    start = build_sam2("sam2.1_hiera_t", image_size=SIZE).state_dict()
    moved = {k for k, v in saved["model"].items() if not torch.equal(v, start[k])}
    assert moved and not any(k.startswith("image_encoder.") for k in moved)
    assert "sam_mask_decoder.iou_prediction_head.layers.0.weight" in moved


def test_a_clip_with_nothing_to_learn_is_a_zero_step(sav_folder, tmp_path):
    """One-frame clips prompted by their mask (the mask is the output: no loss) train without
    error: the step's loss is 0 and, without weight decay, the weights stay where they were."""
    videos = load_training_videos(sav_folder)
    settings = TrainSettings(image_size=SIZE, clip_frames=1, max_objects=2, steps=2, seed=0,
                             prompts=PromptSettings(prob_mask=1.0),
                             optim=OptimSettings(lr=1e-3, weight_decay=0.0))  # fmt: skip
    result = train(settings, videos, tmp_path, progress=False, plot=False)
    assert [h["total"] for h in json.loads(result.metrics.read_text())["history"]] == [0.0, 0.0]
    torch.manual_seed(0)  # the loop's initialisation
    start = build_sam2("sam2.1_hiera_t", image_size=SIZE).state_dict()
    assert all(torch.equal(v, start[k]) for k, v in _weights(result.checkpoint).items())


def test_clips_take_visible_objects_and_consecutive_annotated_frames(sav_folder):
    import numpy as np

    video = load_training_videos(sav_folder)[0]
    clip = sample_clip(video, np.random.default_rng(0), num_frames=3, max_objects=1)
    assert clip.images.shape == (3, SIZE, SIZE, 3) and clip.masks.shape == (1, 3, SIZE, SIZE)
    assert clip.frames in ((0, 4, 8), (4, 8, 12)) and clip.masks[0, 0].any()


def test_single_frame_samples_mix_in_from_the_image_set(sav_folder, four_object_folder):
    """image_fraction 0.5: about half the samples are single frames of the image set with up to
    image_max_objects objects, the rest clips of the videos; which is which does not depend on
    the process layout."""
    from masklet.train.loop import TrainingData, _Process, _step_clips, is_image_sample

    videos, images = load_training_videos(sav_folder), load_training_videos(four_object_folder)
    settings = TrainSettings(image_size=SIZE, clip_frames=3, max_objects=1, batch_size=2, image_fraction=0.5,
                             image_max_objects=4)  # fmt: skip
    data, cpu = TrainingData(videos, images), torch.device("cpu")
    shapes = {True: set(), False: set()}
    for step in range(12):
        clips = _step_clips(data, settings, step, _Process(0, 1, cpu, False), SIZE)
        for b, clip in enumerate(clips):
            shapes[is_image_sample(settings, step, b)].add(tuple(clip.targets.shape[:2]))
        second = _step_clips(data, settings, step, _Process(1, 2, cpu, False), SIZE)
        assert len(second) == 1 and torch.equal(second[0].targets, clips[1].targets)
    assert shapes[False] == {(1, 3)}  # one object, three frames
    assert {t for _, t in shapes[True]} == {1} and max(n for n, _ in shapes[True]) > 2
    drawn = [is_image_sample(settings, s, b) for s in range(200) for b in range(2)]
    assert 0.4 < sum(drawn) / len(drawn) < 0.6
    assert not any(is_image_sample(TrainSettings(), s, 0) for s in range(50))


def test_the_command_trains_and_reports(sav_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["train", "--data", str(sav_folder), "--out", str(out), "--image-size", str(SIZE),
                     "--steps", "2", "--clip-frames", "2", "--corrections", "1"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "trained 2 steps on 1 process(es)" in printed and str(out / "checkpoint.pt") in printed
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "resume.pt", "metrics.json", "loss_curve.png"}
    missing = cli_main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(out)])
    assert missing == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["train", "--data", str(empty), "--out", str(out)]) == 2
    assert "no SA-V annotation files" in capsys.readouterr().err
    unused = cli_main(["train", "--data", str(sav_folder), "--image-data", str(sav_folder), "--out", str(out)])
    assert unused == 2
    assert "image data given, but image_fraction is 0" in capsys.readouterr().err


def test_bfloat16_autocast_trains_float32_weights(sav_folder, tmp_path, monkeypatch):
    """precision=bfloat16 computes the matmuls in bfloat16 (as on a GPU or an AVX-512 BF16 CPU)
    and keeps float32 weights and optimizer state; auto on a CPU without bf16 stays float32."""
    import masklet.train.loop as loop

    seen = []
    real = torch.nn.functional.linear

    def spy(x, w, b=None):
        out = real(x, w, b)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    videos = load_training_videos(sav_folder)
    result = train(TrainSettings(**SMALL, steps=1, precision="bfloat16"), videos, tmp_path / "bf16",
                   progress=False, plot=False)  # fmt: skip
    # the image encoder's and memory attention's linears in bfloat16; the SAM heads' (most of the
    # calls, little of the arithmetic) stay float32 under autocast (model.tracking.sam_heads)
    assert torch.bfloat16 in seen and seen.count(torch.bfloat16) > len(seen) / 3
    assert all(v.dtype == torch.float32 for v in _weights(result.checkpoint).values() if v.is_floating_point())
    assert json.loads(result.metrics.read_text())["compute_dtype"] == "torch.bfloat16"
    monkeypatch.setattr(loop, "cpu_computes_bfloat16", lambda: False)
    assert loop._compute_dtype("auto", torch.device("cpu")) is None
    assert loop._compute_dtype("auto", torch.device("cuda")) == torch.bfloat16
