"""The per-frame tracking step: memory tokens, SAM heads, mask-as-output, memory encoding, batching."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from masklet.build import build_sam2
from masklet.model.memory_conditioning import (
    MemoryInputs,
    condition_on_memory,
    pointer_tokens,
    sine_encoding_1d,
    spatial_tokens,
)
from masklet.model.tracking import (
    NO_OBJ_SCORE,
    encode_memory,
    mask_as_output,
    sam_heads,
    track_step,
    use_multimask,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "parity"))
from seeded_weights import seeded_state_dict, shapes_of  # noqa: E402

SIZE = 128  # 8 x 8 embedding grid, 32 x 32 low-res masks

# many small ops: on a busy 2-core runner, two intra-op threads are several times slower than one
pytestmark = pytest.mark.threads(1)


@pytest.fixture(scope="module", params=["sam2.1_hiera_t", "sam2_hiera_t"])
def model(request):
    m = build_sam2(request.param, image_size=SIZE)
    # seeded weights give prompt-dependent outputs (the default init barely reacts to prompts)
    m.load_state_dict(seeded_state_dict(shapes_of(m.state_dict()), seed=4))
    return m.eval()


@pytest.fixture(scope="module")
def features(model):
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        return model.encode_image(torch.randn(1, 3, SIZE, SIZE, generator=g))


def _memory(model, n: int, t: int, p: int, seed: int = 1) -> MemoryInputs:
    g = torch.Generator().manual_seed(seed)
    side = SIZE // 16
    return MemoryInputs(
        features=torch.randn(n, t, model.config.mem_dim, side, side, generator=g).to(torch.bfloat16),
        tpos=torch.tensor([0, 6, 5, 4, 3, 2, 1][:t]).repeat(n, 1),  # a conditioning frame, then recent ones
        obj_ptrs=torch.randn(n, p, model.config.hidden_dim, generator=g),
        ptr_offsets=torch.arange(1, p + 1)[None] * torch.arange(1, n + 1)[:, None],  # differs per object
        ptr_norm=15,
    )


def test_sine_encoding_1d() -> None:
    pe = sine_encoding_1d(torch.tensor([0.0, 1.0]), 8)
    assert torch.equal(pe[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    dim_t = 10000 ** (2 * (torch.arange(4.0) // 2) / 4)
    assert torch.allclose(pe[1], torch.cat([(1 / dim_t).sin(), (1 / dim_t).cos()]))


@torch.inference_mode()
def test_memory_tokens(model) -> None:
    mem = _memory(model, n=1, t=2, p=3)
    tokens, pos = spatial_tokens(model, mem)
    cm = model.config.mem_dim
    assert tokens.shape == (1, 2 * 64, cm) and tokens.dtype == torch.float32
    # frame 1's first token is its memory's top-left pixel; a conditioning frame gets the last tpos row
    assert torch.equal(tokens[0, 64], mem.features[0, 1, :, 0, 0].float())
    grid = model.memory_encoder.position_encoding.grid(8, 8)[:, 0, 0]
    assert torch.allclose(pos[0, 0], grid + model.maskmem_tpos_enc[6, 0, 0])
    assert torch.allclose(pos[0, 64], grid + model.maskmem_tpos_enc[6 - int(mem.tpos[0, 1]), 0, 0])

    ptrs, ptrs_pos = pointer_tokens(model, model.config.tracking, mem)
    split = model.config.hidden_dim // cm
    assert ptrs.shape == (1, 3 * split, cm)
    assert torch.equal(ptrs[0, :split].reshape(-1), mem.obj_ptrs[0, 0])
    assert torch.equal(ptrs_pos[0, 0], ptrs_pos[0, split - 1])  # each pointer's tokens share one encoding
    if not model.config.tracking.add_tpos_enc_to_obj_ptrs:
        assert not ptrs_pos.any()  # SAM 2.0: no temporal encoding of pointers
    else:
        assert not torch.equal(ptrs_pos[0, 0], ptrs_pos[0, split])


@torch.inference_mode()
def test_initial_frame_adds_no_memory_embedding(model, features) -> None:
    cfg = model.config.tracking
    out = condition_on_memory(model, cfg, features, None, num_objects=2)
    assert out.shape == (2, 256, 8, 8)
    assert torch.equal(out[1], features.vision_features[0] + model.no_mem_embed.reshape(-1, 1, 1))


@torch.inference_mode()
def test_objects_in_one_batch_equal_one_by_one(model, features) -> None:
    cfg = model.config.tracking
    mem = _memory(model, n=2, t=3, p=4)
    both = track_step(model, cfg, features, memory=mem, num_objects=2)
    assert both.low_res_logits.shape == (2, 1, 32, 32) and both.high_res_logits.shape == (2, 1, SIZE, SIZE)
    for i in range(2):
        one = MemoryInputs(
            mem.features[i : i + 1],
            mem.tpos[i : i + 1],
            mem.obj_ptrs[i : i + 1],
            mem.ptr_offsets[i : i + 1],
            mem.ptr_norm,
        )
        alone = track_step(model, cfg, features, memory=one, num_objects=1)
        torch.testing.assert_close(both.low_res_logits[i], alone.low_res_logits[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(both.obj_ptr[i], alone.obj_ptr[0], atol=1e-4, rtol=0)
    # the two objects' memories differ, and so do their outputs
    assert not torch.allclose(both.low_res_logits[0], both.low_res_logits[1], atol=1e-3)
    memories = encode_memory(
        model, cfg, features, both.high_res_logits, both.obj_score_logits, from_points=False
    )
    alone = encode_memory(
        model, cfg, features, both.high_res_logits[1:], both.obj_score_logits[1:], from_points=False
    )
    assert memories.dtype == torch.bfloat16 and memories.shape == (2, model.config.mem_dim, 8, 8)
    torch.testing.assert_close(memories[1].float(), alone[0].float(), atol=2e-2, rtol=1e-2)


@torch.inference_mode()
def test_absent_object_gets_the_no_object_constant(model, features) -> None:
    cfg = model.config.tracking
    outs = [
        track_step(model, cfg, features, memory=_memory(model, 1, 2, 3, seed=s), num_objects=1)
        for s in range(8)
    ]
    outs.append(
        track_step(
            model,
            cfg,
            features,
            memory=None,
            point_coords=torch.tensor([[[60.0, 60.0]]]),
            point_labels=torch.tensor([[1]]),
        )
    )
    for out in outs:
        absent = out.obj_score_logits[0, 0] <= 0
        assert bool((out.low_res_logits == NO_OBJ_SCORE).all()) == bool(absent)
        # the high-res map is the bilinear upsampling of the low-res one
        assert torch.allclose(out.high_res_logits[0, 0, ::4, ::4].mean(), out.low_res_logits.mean(), atol=1.0)


def test_multimask_rules(model) -> None:
    cfg = model.config.tracking  # SAM 2 / 2.1: multimask in SAM and tracking, 0..1 points
    assert use_multimask(cfg, is_init_cond_frame=True, num_points=1)
    assert use_multimask(cfg, is_init_cond_frame=False, num_points=0)
    assert not use_multimask(cfg, is_init_cond_frame=True, num_points=2)  # a box counts as two points
    no_tracking = dataclasses.replace(cfg, multimask_output_for_tracking=False)
    assert not use_multimask(no_tracking, is_init_cond_frame=False, num_points=0)
    assert use_multimask(no_tracking, is_init_cond_frame=True, num_points=0)
    assert not use_multimask(
        dataclasses.replace(cfg, multimask_output_in_sam=False), is_init_cond_frame=True, num_points=1
    )


@torch.inference_mode()
def test_multimask_changes_the_pointer(model, features) -> None:
    cfg = model.config.tracking
    mem = _memory(model, 1, 2, 3)
    multi = track_step(model, cfg, features, memory=mem)
    single = track_step(
        model, dataclasses.replace(cfg, multimask_output_for_tracking=False), features, memory=mem
    )
    assert not torch.allclose(multi.obj_ptr, single.obj_ptr)


@torch.inference_mode()
def test_mask_as_output(model, features) -> None:
    cfg = model.config.tracking
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[0, 0, 32:96, 16:64] = 1  # object 1 present, object 2 empty
    out = track_step(model, cfg, features, memory=None, num_objects=2, mask=mask)
    assert torch.equal(out.high_res_logits, mask * 20 - 10)
    assert out.low_res_logits.shape == (2, 1, 32, 32)
    assert out.low_res_logits[0, 0, 16, 8].item() == pytest.approx(10, abs=1e-5)
    assert out.low_res_logits[0, 0, 0, 0].item() == pytest.approx(-10, abs=1e-5)
    assert out.obj_score_logits.flatten().tolist() == [10.0, -10.0]
    # fixed_no_obj_ptr: an empty mask's pointer is exactly the learned no-object pointer
    assert torch.equal(out.obj_ptr[1], model.no_obj_ptr[0])
    direct = mask_as_output(model, cfg, features, mask)
    assert torch.equal(direct.obj_ptr, out.obj_ptr)
    # without the shortcut the mask is a prompt to the SAM heads instead
    via_sam = track_step(
        model,
        dataclasses.replace(cfg, use_mask_input_as_output_without_sam=False),
        features,
        memory=None,
        num_objects=2,
        mask=mask,
    )
    assert not torch.equal(via_sam.low_res_logits, out.low_res_logits)


@torch.inference_mode()
def test_memory_encoding_switches(model, features) -> None:
    cfg = model.config.tracking
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 1, SIZE, SIZE, generator=g) * 3
    present, absent = torch.tensor([[1.0]]), torch.tensor([[-1.0]])
    soft = encode_memory(model, cfg, features, logits, present, from_points=False)
    hard = encode_memory(model, cfg, features, logits, present, from_points=True)
    assert not torch.equal(soft, hard)
    binary = encode_memory(model, cfg, features, (logits > 0).float() * 40 - 20, present, from_points=False)
    torch.testing.assert_close(hard.float(), binary.float(), atol=0.05, rtol=0.02)  # sigmoid(+-20) ~ 0 / 1
    plain = dataclasses.replace(cfg, binarize_mask_from_pts_for_mem_enc=False)
    assert torch.equal(encode_memory(model, plain, features, logits, present, from_points=True), soft)
    gone = encode_memory(model, cfg, features, logits, absent, from_points=False)
    if cfg.no_obj_embed_spatial:
        added = (gone.float() - soft.float()).mean(dim=(2, 3))[0]
        torch.testing.assert_close(added, model.no_obj_embed_spatial[0], atol=0.05, rtol=0.05)
    else:
        assert torch.equal(gone, soft)


@torch.inference_mode()
def test_several_memory_layouts_share_the_heads(model, features) -> None:
    cfg = model.config.tracking
    a, b = _memory(model, n=1, t=2, p=3, seed=1), _memory(model, n=2, t=3, p=0, seed=2)
    both = track_step(model, cfg, features, memory=[a, b])
    assert both.low_res_logits.shape == (3, 1, 32, 32) and both.obj_ptr.shape == (3, 256)
    alone_a = track_step(model, cfg, features, memory=a)
    alone_b = track_step(model, cfg, features, memory=b, num_objects=2)
    torch.testing.assert_close(both.low_res_logits[:1], alone_a.low_res_logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(both.low_res_logits[1:], alone_b.low_res_logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(both.obj_ptr[1:], alone_b.obj_ptr, atol=1e-4, rtol=0)


@torch.inference_mode()
def test_step_output_keeps_every_candidate(model, features) -> None:
    """Training's losses read all candidates, their predicted IoU and the object score."""
    cfg = model.config.tracking
    clicks = torch.tensor([[[40.0, 60.0]], [[90.0, 30.0]]])
    out = track_step(model, cfg, features, memory=None, num_objects=2, point_coords=clicks,
                     point_labels=torch.ones(2, 1, dtype=torch.int32))  # fmt: skip
    assert out.num_candidates == 3  # one click on an initial frame: multimask
    assert out.candidate_low_res_logits.shape == (2, 3, 32, 32) and out.iou.shape == (2, 3)
    assert out.candidate_high_res_logits.shape == (2, 3, SIZE, SIZE)
    assert torch.equal(out.best, out.iou.argmax(dim=1))
    rows = torch.arange(2)
    assert torch.equal(out.low_res_logits[:, 0], out.candidate_low_res_logits[rows, out.best])
    assert torch.equal(out.high_res_logits[:, 0], out.candidate_high_res_logits[rows, out.best])
    # the candidates differ (else "the minimum over candidates" would train nothing)
    assert not torch.allclose(out.candidate_low_res_logits[:, 0], out.candidate_low_res_logits[:, 1], atol=1e-3)
    tracked = track_step(model, dataclasses.replace(cfg, multimask_output_for_tracking=False), features,
                         memory=_memory(model, 2, 3, 2), num_objects=2)  # fmt: skip
    assert tracked.num_candidates == 1 and torch.equal(tracked.best, torch.zeros(2, dtype=torch.int64))
    as_output = mask_as_output(model, cfg, features, torch.zeros(2, 1, SIZE, SIZE))
    assert as_output.iou.shape == (2, 1) and torch.equal(as_output.candidate_low_res_logits, as_output.low_res_logits)


@torch.inference_mode()
def test_heads_in_one_batch_is_a_setting(model, features) -> None:
    """Parity runs the heads object by object; training may batch them (same masks, other rounding)."""
    cfg = model.config.tracking
    assert cfg.heads_one_object_at_a_time and cfg.memory_in_bfloat16  # parity by default
    mem = _memory(model, n=3, t=3, p=4)
    calls = []
    hook = model.sam_mask_decoder.register_forward_hook(lambda m, a, k: calls.append(1), with_kwargs=False)
    try:
        one_by_one = track_step(model, cfg, features, memory=mem, num_objects=3)
        assert len(calls) == 3
        calls.clear()
        batched = track_step(model, dataclasses.replace(cfg, heads_one_object_at_a_time=False), features,
                             memory=mem, num_objects=3)  # fmt: skip
        assert len(calls) == 1
    finally:
        hook.remove()
    torch.testing.assert_close(batched.low_res_logits, one_by_one.low_res_logits, atol=1e-3, rtol=0)
    torch.testing.assert_close(batched.iou, one_by_one.iou, atol=1e-4, rtol=0)


def test_memory_attention_one_object_at_a_time_is_a_setting(model, features) -> None:
    """Sessions send objects through memory attention one by one (faster on a CPU, as the
    official predictor does); training batches them: the same features within float32 rounding."""
    cfg = dataclasses.replace(model.config.tracking, memory_in_bfloat16=False)
    assert cfg.memory_attention_one_object_at_a_time
    mem = _memory(model, n=3, t=3, p=4)
    calls = []
    hook = model.memory_attention.register_forward_hook(lambda m, a, k: calls.append(1))
    try:
        with torch.inference_mode():
            one_by_one = condition_on_memory(model, cfg, features, mem, num_objects=3)
            assert len(calls) == 3
            calls.clear()
            batched = condition_on_memory(model, dataclasses.replace(cfg, memory_attention_one_object_at_a_time=False),
                                          features, mem, num_objects=3)  # fmt: skip
            assert len(calls) == 1
    finally:
        hook.remove()
    assert one_by_one.shape == batched.shape == (3, model.config.hidden_dim, SIZE // 16, SIZE // 16)
    torch.testing.assert_close(one_by_one, batched, atol=1e-4, rtol=1e-4)
    assert not torch.equal(one_by_one[0], one_by_one[1])  # each object its own memory


def test_float32_memory_is_a_setting_and_carries_gradients(model, features) -> None:
    cfg = dataclasses.replace(model.config.tracking, memory_in_bfloat16=False)
    logits = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5), requires_grad=True)
    score = torch.tensor([[1.0], [-1.0]])
    memory = encode_memory(model, cfg, features, logits, score, from_points=False)
    assert memory.dtype == torch.float32
    parity = encode_memory(model, model.config.tracking, features, logits.detach(), score, from_points=False)
    assert parity.dtype == torch.bfloat16 and torch.equal(memory.detach().to(torch.bfloat16), parity)
    memory.square().mean().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert model.memory_encoder.pix_feat_proj.weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_heads_compute_in_float32_under_a_bfloat16_autocast(model, features) -> None:
    """Fast mode runs a step under autocast; the heads (1 % of the time) stay float32 there,
    where bfloat16 would flip the pixels whose logits are near 0."""
    cfg = model.config.tracking
    pix = torch.randn(2, model.config.hidden_dim, SIZE // 16, SIZE // 16, generator=torch.Generator().manual_seed(3))
    prompt = {"point_coords": torch.tensor([[[40.0, 50.0]], [[90.0, 20.0]]]), "point_labels": torch.ones(2, 1, dtype=torch.int32)}
    with torch.inference_mode():
        plain = sam_heads(model, cfg, pix, features.high_res_features, multimask=True, **prompt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = sam_heads(model, cfg, pix.to(torch.bfloat16), tuple(f.to(torch.bfloat16) for f in features.high_res_features), multimask=True, **prompt)  # fmt: skip
    # the inputs were rounded to bfloat16 on the way in; what the heads add is float32 rounding
    pix_rounded = pix.to(torch.bfloat16).float()
    high_res_rounded = tuple(f.to(torch.bfloat16).float() for f in features.high_res_features)
    with torch.inference_mode():
        expected = sam_heads(model, cfg, pix_rounded, high_res_rounded, multimask=True, **prompt)
    torch.testing.assert_close(autocast.candidate_low_res_logits, expected.candidate_low_res_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(autocast.iou, expected.iou, atol=1e-5, rtol=1e-4)
    assert not torch.equal(plain.candidate_low_res_logits, expected.candidate_low_res_logits)  # the rounding was seen
