"""Fast mode: what `fast=True` means on each device, and the bfloat16 path run on the CPU.

The bfloat16 path is the one a GPU takes (without the compile); forced on the CPU here, it must
compute the image encoder's and the memory attention's matmuls in bfloat16 (the heads
stay float32), hand out float32 logits of the same shapes, and track like
exact mode on nearly every pixel. Exact mode must not be touched by any of it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

from masklet.build import build_sam2
from masklet.io.synthetic import make_synthetic_video
from masklet.predict import precision
from masklet.predict.precision import FastMode
from masklet.predict.video import VideoPredictor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "parity"))
from seeded_weights import seeded_state_dict, shapes_of  # noqa: E402

pytestmark = pytest.mark.threads(1)
H, W, FRAMES = 96, 128, 8


@pytest.fixture(scope="module")
def model():
    m = build_sam2("sam2.1_hiera_t", image_size=128)
    m.load_state_dict(seeded_state_dict(shapes_of(m.state_dict()), seed=4))
    return m.eval()


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(FRAMES, H, W, num_objects=2, seed=1)


def _run(model, video, fast) -> tuple[list[torch.Tensor], dict[str, set[torch.dtype]]]:
    """Prompt two objects on frame 0, refine one, propagate; logits per frame and matmul input dtypes."""
    seen: dict[str, set[torch.dtype]] = {"image_encoder": set(), "memory_attention": set(), "sam_mask_decoder": set()}
    hooks = []
    for part in seen:
        for module in getattr(model, part).modules():
            if isinstance(module, torch.nn.Linear):
                # autocast casts inside the op: the dtype of a Linear's output is what it computed in
                hooks.append(module.register_forward_hook(lambda _m, _a, out, p=part: seen[p].add(out.dtype)))
    try:
        with VideoPredictor(model, fast=fast).start(video.frames) as session:
            centers = video.centers[0]
            session.add_prompt(frame=0, obj_id=1, points=[centers[0].tolist()], labels=[1])
            _, refined = session.add_prompt(frame=0, obj_id=1, points=[[5.0, 5.0]], labels=[0])
            session.add_prompt(frame=0, obj_id=2, box=video.boxes[0, 1].tolist())
            out = [refined] + [logits.clone() for _, _, logits in session.propagate()]
    finally:
        for h in hooks:
            h.remove()
    return out, seen


def test_bfloat16_path_computes_in_bfloat16_and_returns_float32(model, video):
    exact, exact_dtypes = _run(model, video, False)
    fast, fast_dtypes = _run(model, video, FastMode(dtype=torch.bfloat16))
    assert all(d == {torch.float32} for d in exact_dtypes.values()), exact_dtypes
    # the heads stay float32 (see model.tracking.sam_heads); the encoder and memory attention do not
    assert fast_dtypes == {"image_encoder": {torch.bfloat16}, "memory_attention": {torch.bfloat16},
                           "sam_mask_decoder": {torch.float32}}, fast_dtypes  # fmt: skip
    assert len(fast) == len(exact) == FRAMES + 1
    for f, e in zip(fast, exact, strict=True):
        assert f.dtype == torch.float32 and f.shape == e.shape
    masks_fast = torch.stack([f > 0 for f in fast[1:]])
    masks_exact = torch.stack([e > 0 for e in exact[1:]])
    agreement = (masks_fast == masks_exact).float().mean().item()
    # same masks on nearly every pixel, not bit for bit: bfloat16 keeps 8 bits of mantissa
    assert agreement >= 0.98, agreement
    assert 0.02 < masks_exact.float().mean().item() < 0.98  # non-trivial masks, or agreement means nothing
    assert not all(torch.equal(f, e) for f, e in zip(fast, exact, strict=True))


def test_fast_true_resolves_per_device(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_computes_bfloat16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="masklet.predict.precision"):
        assert FastMode.for_device(torch.device("cpu")) == FastMode()
    assert "no bfloat16 instructions" in caplog.text
    monkeypatch.setattr(precision, "cpu_computes_bfloat16", lambda: True)
    assert FastMode.for_device(torch.device("cpu")) == FastMode(dtype=torch.bfloat16)
    cuda = FastMode.for_device(torch.device("cuda"))
    assert cuda.dtype == torch.bfloat16 and cuda.compile_image_encoder
    assert precision.resolve_fast_mode(False, torch.device("cuda")).exact


def test_exact_mode_is_the_default_and_unchanged(model, video):
    assert VideoPredictor(model).fast.exact
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        FastMode(dtype=torch.float64)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fast_mode_compiles_the_encoder_and_tracks(video):  # pragma: no cover - GPU machines only
    gpu = build_sam2("sam2.1_hiera_t", image_size=128, device="cuda")
    gpu.load_state_dict(seeded_state_dict(shapes_of(gpu.state_dict()), seed=4))
    predictor = VideoPredictor(gpu.eval(), fast=True)
    assert predictor.fast.compile_image_encoder and predictor.fast.dtype == torch.bfloat16
    with predictor.start(video.frames) as session:
        session.add_prompt(frame=0, obj_id=1, points=[video.centers[0, 0].tolist()], labels=[1])
        logits = [lg for _, _, lg in session.propagate()]
    assert all(lg.dtype == torch.float32 and lg.device.type == "cuda" for lg in logits)
