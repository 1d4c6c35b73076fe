"""A tracking session's RAM does not grow with the video, and spilling changes no bit.

The proof counts what matters instead of RSS: every tensor and array buffer the session
reaches (`memory_usage().ram_bytes`, a walk of all its state) and every tensor alive in the
process (a census through the garbage collector, which also sees a cache outside the session).
Both are taken at two frames of one propagation over a lazily decoded mp4; a bounded session
must hold the same bytes at both, and an unbounded one (nothing evicted, nothing spilled, the
official predictor's behaviour) is the control that shows the measurement can see the growth.

Every run here reads the same frames, so each frame is encoded once for the whole module (the
encoder is 2/3 of a step at this size and has its own parity tests); the cache's tensors are
left out of the process census.
"""

from __future__ import annotations

import gc
import hashlib
import warnings

import pytest
import torch

from masklet.build import build_sam2
from masklet.io.synthetic import make_synthetic_video, write_mp4
from masklet.model.sam2 import ImageFeatures
from masklet.predict.video import VideoPredictor

pytestmark = [pytest.mark.slow, pytest.mark.threads(1)]

IMAGE_SIZE, SIDE, NUM_FRAMES, OBJECTS = 128, 64, 64, 2
# the two frames where memory is measured: by EARLY the bank (16 tracked frames per object)
# and the results (64 logit maps, 32 frames of two objects) are full
EARLY, LATE = 36, NUM_FRAMES - 1
SPILL_FRAMES = 40
UNBOUNDED = {"max_memory_frames": 10**9, "max_results_in_memory": 10**9}


ENCODED: dict[str, ImageFeatures] = {}  # pixels digest -> features, for the whole module


@pytest.fixture(scope="module")
def model():
    from seeded_weights import seeded_state_dict, shapes_of

    m = build_sam2("sam2.1_hiera_t", image_size=IMAGE_SIZE)
    m.load_state_dict(seeded_state_dict(shapes_of(m.state_dict()), seed=4))
    encode = m.encode_image

    def encode_once(pixels: torch.Tensor) -> ImageFeatures:
        key = hashlib.sha256(pixels.numpy().tobytes()).hexdigest()
        if key not in ENCODED:
            ENCODED[key] = encode(pixels)
        cached = ENCODED[key]  # handed out as clones: the session owns what it keeps
        return ImageFeatures(
            backbone_fpn=tuple(t.clone() for t in cached.backbone_fpn),
            vision_pos_enc=tuple(t.clone() for t in cached.vision_pos_enc),
        )

    m.encode_image = encode_once
    yield m.eval()
    ENCODED.clear()


@pytest.fixture(scope="module")
def clip():
    return make_synthetic_video(NUM_FRAMES, SIDE, SIDE, num_objects=OBJECTS, seed=5)


@pytest.fixture(scope="module")
def mp4(clip, tmp_path_factory):
    path = tmp_path_factory.mktemp("memory") / "clip.mp4"
    write_mp4(clip.frames, path, fps=30)
    return path


def live_tensor_bytes() -> int:
    """Bytes of the distinct storages of every tensor alive in this process, but the test's cache."""
    gc.collect()
    cached = {
        t.untyped_storage().data_ptr() for f in ENCODED.values() for t in (*f.backbone_fpn, *f.vision_pos_enc)
    }
    storages = {}
    with warnings.catch_warnings():  # isinstance() on some of torch's deprecated aliases warns
        warnings.simplefilter("ignore")
        tensors = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    for tensor in tensors:
        if tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in cached:
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def measure(model, clip, mp4, tmp_path, **limits) -> dict[str, dict[int, int]]:
    """Session and process tensor bytes at EARLY and LATE of one propagation."""
    seen: dict[str, dict[int, int]] = {"session": {}, "process": {}}
    with VideoPredictor(model, spill_dir=tmp_path, **limits).start(str(mp4)) as session:
        for k in range(OBJECTS):
            session.add_prompt(0, k + 1, points=[clip.centers[0, k].tolist()], labels=[1])
        for frame, _, logits in session.propagate():
            if frame in (EARLY, LATE):
                del logits  # only the session's state, not this frame's answer
                seen["session"][frame] = session.memory_usage().ram_bytes
                seen["process"][frame] = live_tensor_bytes()
        assert session.num_frames == NUM_FRAMES
    return seen


def per_frame_state_bytes(model) -> int:
    """What an unbounded session adds per tracked frame: each object's memory, pointer, logits."""
    grid = IMAGE_SIZE // 16
    memory = model.config.memory_encoder.out_dim * grid * grid * 2  # bfloat16
    pointer = model.config.hidden_dim * 4
    logits = (4 * grid) ** 2 * 4
    return OBJECTS * (memory + pointer + logits)


def test_tensor_bytes_do_not_grow_with_the_video(model, clip, mp4, tmp_path) -> None:
    bounded = measure(model, clip, mp4, tmp_path)
    control = measure(model, clip, mp4, tmp_path, **UNBOUNDED)
    expected_growth = (LATE - EARLY) * per_frame_state_bytes(model)
    for scope in ("session", "process"):
        grown = control[scope][LATE] - control[scope][EARLY]
        # the control shows the measurement sees a session that keeps every frame
        assert grown >= expected_growth, f"{scope}: unbounded grew {grown} B, expected >= {expected_growth}"
        assert bounded[scope][LATE] == bounded[scope][EARLY], (
            f"{scope}: a bounded session held {bounded[scope][EARLY]} B at frame {EARLY} and "
            f"{bounded[scope][LATE]} B at frame {LATE} (unbounded: +{grown} B)"
        )


def test_spilling_changes_no_bit(model, clip, mp4, tmp_path) -> None:
    """Everything spilled at once (no tracked memory and one result in RAM) versus nothing
    spilled: forward, a correction on a tracked frame, propagating again, then reverse."""

    def run(**limits) -> list[torch.Tensor]:
        outputs = []
        with VideoPredictor(model, spill_dir=tmp_path, **limits).start(str(mp4)) as session:
            for k in range(OBJECTS):
                session.add_prompt(0, k + 1, points=[clip.centers[0, k].tolist()], labels=[1])
            outputs += [logits.clone() for _, _, logits in session.propagate(max_frames=SPILL_FRAMES)]
            # the correction reads the frame's earlier (spilled) logits, then the bank re-reads
            _, logits = session.add_prompt(30, 1, points=[clip.centers[30, 1].tolist()], labels=[0])
            outputs.append(logits.clone())
            outputs += [logits.clone() for _, _, logits in session.propagate(start=30, max_frames=10)]
            last = SPILL_FRAMES - 1
            outputs += [logits.clone() for _, _, logits in session.propagate(last, 20, reverse=True)]
            outputs += [session.logits(f)[1].clone() for f in (1, 10, 29, last)]
            spilled = session.memory_usage().spilled
        return outputs, spilled

    spilling, spilled = run(max_memory_frames=0, max_results_in_memory=1)
    keeping, kept_spilled = run(**UNBOUNDED)
    assert spilled > 4 * SPILL_FRAMES and kept_spilled == 0  # the runs differ in where state lives
    assert len(spilling) == len(keeping) == SPILL_FRAMES + 1 + 10 + 20 + 4
    for i, (a, b) in enumerate(zip(spilling, keeping, strict=True)):
        assert torch.equal(a, b), f"output {i} differs after spilling"
