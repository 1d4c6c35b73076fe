"""Native TrackingSession at full size against the official sam2 1.1.0 video predictor.

Fixtures: tools/parity/video_fixtures.py (tools/parity/README.md, "Video fixtures"): the first
16 frames of bedroom.mp4 as JPEGs, sam2.1_hiera_t with seeded weights, the official predictor
with GPU hole filling and bf16 memory promoted to float32. Each recorded session is replayed call
by call on one TrackingSession and every returned frame is compared (issue 3):

- binary masks identical on >= 99.98 % of the pixels, per object;
- >= 99.9 % of the stored logits within 2e-3 absolute (a hole flipped by float noise moves a
  few pixels, by up to ~1.9), and per object a mean abs error <= 2e-3;
- the mean and spread of each object's logits within 1e-3;
- object presence (the -1024 constant of an absent object) identical;
- where two objects are present on a frame, the difference between their logits matches the
  official one (correlation >= 0.99, mean abs error <= 1e-3): their logits differ by only
  0.02-0.15 on average, so a swap of their memories could hide inside a looser bound;
- the object score behind each output within 1e-4 (a presence flip starts there).

Past the bank's chain of 32 frames takes looser noise bounds (``bounds_for``, measured there).
These bounds are what README.md ("How we know it is SAM 2") states. Worst measured (torch 2.13,
two threads): full size, masks 99.9990 %, logits 4.1e-4, mean error 1.4e-4, difference 4.4e-5;
past the bank (256 px, 32 frames, the reverse pass), masks 99.991 %, logits 1.02e-3, mean error
3.8e-4, difference 4.0e-4, object scores 7.5e-5 (more on an AMD EPYC: see ``BOUNDS_OF``). A
spatial memory taken from the wrong frame or object moves logits by 0.02-0.15; a pointer from the
wrong frame by ~3e-3 over many pixels and object scores by over 1e-4.

The native session makes corrections conditioning frames: it is compared with the recorded run
under ``add_all_frames_to_correct_as_cond=true``. The official-default runs go through compat,
recorded at 256-px input on the 320x180 clip (tools/parity/README.md says why).
The shared ``encoded_frames`` fixture lets each frame be encoded once for both files.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from masklet.build import build_sam2
from masklet.model.sam2 import ImageFeatures
from masklet.predict.video import VideoPredictor

# tools/parity/video_fixtures.py ran the official predictor with two intra-op threads; the thread
# count changes how reductions split and round, and hole filling turns a sign flip of one low-res
# logit into a jump of the upsampled logits (one thread: a 0.03 jump on one pixel of one frame)
FIXTURE_THREADS = 2
pytestmark = [pytest.mark.slow, pytest.mark.threads(FIXTURE_THREADS)]

MASK_AGREEMENT, LOGIT_ATOL, LOGIT_MAE, MEAN_ATOL, SCORE_ATOL = 0.9998, 2e-3, 2e-3, 1e-3, 1e-4
# two objects' logit difference carries the noise of both: up to 7.6e-4 since the decoder's
# upscaling runs channels last (the same sums in another order); objects mixed up would be off
# by the reference difference itself, 0.08 or more in these sessions
DIFF_CORR, DIFF_MAE = 0.99, 1e-3
LOGIT_CLOSE = 0.999
NO_OBJ_SCORE = -1024.0


@dataclass(frozen=True)
class NoiseBounds:
    """The float-noise bounds that depend on how long a session's memory chain is."""

    logit_atol: float = LOGIT_ATOL  # LOGIT_CLOSE of the stored logits within this
    mean_atol: float = MEAN_ATOL  # each object's mean and spread of the logits
    diff_mae: float = DIFF_MAE  # two present objects' logit difference, mean abs error


# Past the bank's frames 26-31 sit at the end of a chain of bf16-stored memories, where a rounding
# flip of one memory value shifts a frame's logits by ~1e-3 as a whole. Measured there (two threads,
# the worst frame): masklet on an AMD EPYC against the fixture (recorded on an Intel CPU) 2.11e-3
# (logits), 1.11e-3 (mean), 1.15e-3 (two objects' difference); the official code on that AMD CPU
# against its own Intel run 1.13e-3, 5.3e-4, 6.2e-4; masklet against the official code on the same
# AMD CPU 2.90e-3, 1.51e-3, 1.67e-3. Swapped memories would move the difference by 0.138. The weakest
# defects measured there move many logits by more: a spilled frame handing out its neighbour's
# object pointer leaves 63 % of a frame's logits within 3e-3, a pointer window of 15 instead of 16
# leaves 6 %, pointer distances normalised by 16 instead of 15 58 %.
SHORT_CHAIN = NoiseBounds()
BOUNDS_OF = {"video_past_the_bank_official.npz": NoiseBounds(logit_atol=3e-3, mean_atol=2e-3, diff_mae=2e-3)}


def bounds_for(fname: str) -> NoiseBounds:
    """The noise bounds a fixture file is compared under."""
    return BOUNDS_OF.get(fname, SHORT_CHAIN)


# The native session's own semantics (corrections stick), scenarios a, d, f of issue 3, at full
# size. The other recorded sessions never prompt a tracked frame, so both semantics give the same
# run; tests/test_compat_video_parity.py replays them (at 256 px) through compat, which drives
# this same TrackingSession.
NATIVE = ["video_click_correct_add_correct_as_cond.npz"]


@pytest.fixture(scope="module")
def manifest(data_dir) -> dict:
    return json.loads((data_dir / "parity" / "video_manifest.json").read_text())


@pytest.fixture(scope="module")
def frames_dir(data_dir, manifest):
    folder = data_dir.parent.parent / manifest["frames"]["dir"]
    for name, sha in manifest["frames"]["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, f"{name} changed"
    return folder


@pytest.fixture(scope="module")
def model(manifest, encoded_frames):
    from seeded_weights import seeded_state_dict, shapes_of, state_dict_digest

    net = build_sam2(manifest["model"])
    weights = seeded_state_dict(shapes_of(net.state_dict()), manifest["seed"])
    digest = state_dict_digest(weights)
    assert {f["weights_sha256"] for f in manifest["fixtures"].values()} == {digest}, (
        "seeded weight rule changed: regenerate the fixtures"
    )
    net.load_state_dict(weights, strict=True)
    reuse_frame_encodings(net, digest, encoded_frames)
    return net.eval()


def reuse_frame_encodings(net, weights_digest: str, cache: dict) -> None:
    """Let `net.encode_image` return earlier features for the same pixels (a test speed-up only).

    The encoder is deterministic for a thread count (part of the key: a fixture recorded with
    one thread is replayed with one-thread encodings) and has its own parity tests; the cached
    tensors are handed out as clones so that nothing downstream can change them.
    """
    encode = net.encode_image

    def encode_once(pixels: torch.Tensor) -> ImageFeatures:
        digest = hashlib.sha256(pixels.detach().cpu().numpy().tobytes()).hexdigest()
        key = (weights_digest, torch.get_num_threads(), digest)
        if key not in cache:
            cache[key] = encode(pixels)
        features = cache[key]
        return ImageFeatures(
            backbone_fpn=tuple(t.clone() for t in features.backbone_fpn),
            vision_pos_enc=tuple(t.clone() for t in features.vision_pos_enc),
        )

    net.encode_image = encode_once


@contextlib.contextmanager
def fixture_threads(fixture: dict) -> Iterator[None]:
    """Run with the intra-op thread count the fixture was recorded with (manifest "threads";
    FIXTURE_THREADS for the fixtures recorded before the key existed)."""
    before = torch.get_num_threads()
    torch.set_num_threads(fixture.get("threads", FIXTURE_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rect_mask(rect: list[int], height: int, width: int) -> np.ndarray:
    x0, y0, x1, y1 = rect
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _replay(session, call: dict, ref_frames: list[int]):
    """Run one recorded call; yields (frame, obj_ids, logits (N, H, W) tensor) as the official call returned."""
    kind = call["call"]
    if kind == "add":
        # clear=True: the official add_new_points_or_box default (clear_old_points=True)
        obj_ids, logits = session.add_prompt(
            frame=call["frame"],
            obj_id=call["obj_id"],
            points=call.get("points"),
            labels=call.get("labels"),
            box=call.get("box"),
            clear=True,
        )
        yield call["frame"], obj_ids, logits
    elif kind == "mask":
        mask = rect_mask(call["rect"], session.height, session.width)
        obj_ids, logits = session.add_prompt(frame=call["frame"], obj_id=call["obj_id"], mask=mask)
        yield call["frame"], obj_ids, logits
    elif kind == "propagate":
        limit = call.get("max_frame_num_to_track")  # official: that many frames after the start
        max_frames = None if limit is None else limit + 1
        yield from session.propagate(start=call.get("start"), max_frames=max_frames, reverse=call["reverse"])
    elif kind == "remove":
        assert session.remove_object(call["obj_id"]) == call["obj_ids_after"]
        for frame in ref_frames:  # the official call returns the frames where the object had prompts
            obj_ids, logits = session.logits(frame)
            yield frame, obj_ids, logits
    else:
        raise AssertionError(f"unknown call {kind!r}")


def compare_call(z, prefix: str, stride: int, outputs, session, *, bounds: NoiseBounds) -> None:
    """Compare every (frame, obj_ids, logits (N, H, W)) a replayed call gave with the official call's."""
    ref_frames = z[f"{prefix}.frames"].tolist()
    seen = 0
    for i, (frame, obj_ids, logits) in enumerate(outputs):
        assert i < len(ref_frames), f"{prefix}: more frames than the official call returned"
        _compare_frame(z, prefix, i, stride, session, frame, list(obj_ids), logits, bounds)
        seen += 1
    assert seen == len(ref_frames), f"{prefix}: {seen} frames, official {len(ref_frames)}"


def _compare_frame(
    z,
    prefix: str,
    i: int,
    stride: int,
    session,
    frame: int,
    obj_ids: list[int],
    logits: torch.Tensor,
    bounds: NoiseBounds,
) -> None:
    ref_ids = z[f"{prefix}.obj_ids"].tolist()
    assert frame == int(z[f"{prefix}.frames"][i]), f"{prefix}: frame order"
    assert obj_ids == ref_ids, f"{prefix} frame {frame}: object ids"
    ours = logits.detach().float().cpu().numpy()  # (N, H, W)
    height, width = ours.shape[-2:]
    where = f"{prefix} frame {frame}"

    absent = (ours == NO_OBJ_SCORE).all(axis=(1, 2))
    np.testing.assert_array_equal(absent, z[f"{prefix}.absent"][i], err_msg=f"{where}: object presence")
    masks = ours > 0
    ref_masks = np.unpackbits(z[f"{prefix}.masks_packed"][i], axis=-1)[..., :width].astype(bool)
    agreement = (masks == ref_masks).mean(axis=(1, 2))
    assert (agreement >= MASK_AGREEMENT).all(), f"{where}: mask agreement {agreement}"

    sub = ours[:, ::stride, ::stride]
    ref_sub = z[f"{prefix}.logits_sub"][i]
    # hole filling turns a low-res logit within float noise of 0 into a jump of ~0.03 at a few
    # upsampled pixels (up to ~1.9 seen): nearly all logits within bounds.logit_atol
    close = (np.abs(sub - ref_sub) <= bounds.logit_atol).mean(axis=(1, 2))
    assert (close >= LOGIT_CLOSE).all(), f"{where}: logits within {bounds.logit_atol}: {close}"

    mae = np.abs(sub - ref_sub).mean(axis=(1, 2))
    assert (mae <= LOGIT_MAE).all(), f"{where}: mean abs logit error per object {mae}"
    mean, std, atol = z[f"{prefix}.mean"][i], z[f"{prefix}.std"][i], bounds.mean_atol
    np.testing.assert_allclose(
        ours.mean(axis=(1, 2)), mean, atol=atol, rtol=0, err_msg=f"{where}: mean logit"
    )
    np.testing.assert_allclose(ours.std(axis=(1, 2)), std, atol=atol, rtol=0, err_msg=f"{where}: logit std")

    present = np.flatnonzero(~absent)
    for a, b in itertools.pairwise(present):  # neighbouring present objects: their difference
        diff, ref_diff = sub[b] - sub[a], ref_sub[b] - ref_sub[a]
        corr = np.corrcoef(diff.ravel(), ref_diff.ravel())[0, 1]
        mae = np.abs(diff - ref_diff).mean()
        assert corr >= DIFF_CORR and mae <= bounds.diff_mae, (
            f"{where}: objects {obj_ids[a]} - {obj_ids[b]}: correlation {corr:.4f}, mean abs error {mae:.2e} "
            f"(reference mean |difference| {np.abs(ref_diff).mean():.3f})"
        )

    for n, obj_id in enumerate(obj_ids):
        ref_score = float(z[f"{prefix}.object_score"][i][n])
        result = session.result(frame, obj_id)
        if np.isnan(ref_score) or result is None:
            assert np.isnan(ref_score) and result is None, (
                f"{where}: object {obj_id} has an output on one side only"
            )
            continue
        assert abs(result.obj_score_logit - ref_score) <= SCORE_ATOL, (
            f"{where}: object {obj_id} score {result.obj_score_logit:.5f}, official {ref_score:.5f}"
        )


def clip_dir(data_dir, manifest, clip: str):
    """A fixture clip's frame folder, checked against the digests the fixtures were made from."""
    info = manifest["clips"][clip]
    folder = data_dir.parent.parent / info["dir"]
    for name, sha in info["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, f"{clip}/{name} changed"
    return folder


@pytest.fixture(scope="module")
def small_model(manifest, encoded_frames):
    """The fixtures' seeded weights at the past-the-bank clip's model input size."""
    from seeded_weights import seeded_state_dict, shapes_of, state_dict_digest

    net = build_sam2(manifest["model"], image_size=manifest["clips"]["bedroom_small"]["image_size"])
    weights = seeded_state_dict(shapes_of(net.state_dict()), manifest["seed"])
    net.load_state_dict(weights, strict=True)
    reuse_frame_encodings(net, state_dict_digest(weights), encoded_frames)
    return net.eval()


def test_past_the_bank_matches_official(small_model, manifest, data_dir):
    """32 frames with every memory and pointer spilled to disk at once and one result in RAM (the
    strictest limits) against the official predictor, which keeps everything: eviction, spill, the
    pointer and memory windows, an object added on frame 20, a correction, a reverse pass. With the
    official semantics (the correction on tracked frame 26 is overwritten by the next propagation);
    the corrections-stick semantics are compared on the 16-frame clip above."""
    fname = "video_past_the_bank_official.npz"
    fixture = manifest["fixtures"][fname]
    folder = clip_dir(data_dir, manifest, fixture["clip"])
    z = np.load(data_dir / "parity" / fname)
    predictor = VideoPredictor(
        small_model,
        add_all_frames_to_correct_as_cond=False,
        fill_hole_area=fixture["fill_hole_area"],
        max_memory_frames=0,
        max_results_in_memory=1,
    )
    with predictor.start(str(folder)) as session:
        assert session.num_frames == 32
        stride = manifest["clips"][fixture["clip"]]["logits_stride"]
        for k, call in enumerate(fixture["calls"]):
            outputs = _replay(session, call, z[f"call{k}.frames"].tolist())
            compare_call(z, f"call{k}", stride, outputs, session, bounds=bounds_for(fname))
        assert session.memory_usage().spilled > 2 * 2 * 16  # two objects' memories and pointers


@pytest.mark.parametrize("fname", NATIVE)
def test_session_matches_official(model, manifest, frames_dir, data_dir, fname):
    fixture = manifest["fixtures"][fname]
    assert fixture["semantics"] == "correct_as_cond" or not any(
        c.get("frame_was_tracked") for c in fixture["calls"]
    )
    z = np.load(data_dir / "parity" / fname)
    with VideoPredictor(model).start(str(frames_dir)) as session:  # native: corrections stick
        assert (session.num_frames, session.height, session.width) == (16, 540, 960)
        for k, call in enumerate(fixture["calls"]):
            outputs = _replay(session, call, z[f"call{k}.frames"].tolist())
            compare_call(z, f"call{k}", manifest["logits_stride"], outputs, session, bounds=bounds_for(fname))


def test_fixtures_cover_both_branches(manifest, data_dir):
    """The reference itself is informative: masks neither empty nor full, both presence branches."""
    absent, cover = [], []
    for fname in manifest["fixtures"]:
        z = np.load(data_dir / "parity" / fname)
        for key in z.files:
            if key.endswith(".absent"):
                absent.append(z[key].ravel())
                cover.append(z[key.replace(".absent", ".cover")].ravel())
    absent, cover = np.concatenate(absent), np.concatenate(cover)
    assert absent.any() and (~absent).any()
    present_cover = cover[~absent]
    assert np.mean((present_cover > 0.01) & (present_cover < 0.99)) >= 0.9
