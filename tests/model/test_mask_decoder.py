"""Mask decoder: output selection, stability fallback, high-res skips, flags, official names."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from masklet.configs import MaskDecoderConfig
from masklet.errors import ConfigError
from masklet.model.mask_decoder import MaskDecoder, stability_score

C, H, W = 32, 8, 8  # width, embedding grid; masks come out at 4H x 4W

TINY = MaskDecoderConfig(transformer_mlp_dim=64, transformer_num_heads=2, iou_head_hidden_dim=32)


def _decoder(**flags: object) -> MaskDecoder:
    torch.manual_seed(0)
    dec = MaskDecoder(dataclasses.replace(TINY, **flags), transformer_dim=C)
    with torch.no_grad():  # non-trivial norms and biases
        for p in dec.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return dec.eval()


def _inputs(batch: int = 2, *, image_batch: int | None = None, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(
        image_embeddings=torch.randn(image_batch or batch, C, H, W, generator=g),
        image_pe=torch.randn(1, C, H, W, generator=g),
        sparse_prompt_embeddings=torch.randn(batch, 3, C, generator=g),
        dense_prompt_embeddings=torch.randn(batch, C, H, W, generator=g),
    )


def _high_res(dec: MaskDecoder, batch: int = 2, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s0 = torch.randn(batch, C, 4 * H, 4 * W, generator=g)
    s1 = torch.randn(batch, C, 2 * H, 2 * W, generator=g)
    return dec.project_high_res(s0, s1)


@pytest.mark.parametrize("multimask, m", [(True, 3), (False, 1)])
def test_shapes(multimask: bool, m: int) -> None:
    dec = _decoder()
    out = dec(**_inputs(), multimask_output=multimask, repeat_image=False, high_res_features=_high_res(dec))
    assert out.mask_logits.shape == (2, m, 4 * H, 4 * W)
    assert out.iou.shape == (2, m)
    assert out.mask_tokens.shape == (2, m, C)
    assert out.obj_score_logits.shape == (2, 1)
    assert ((out.iou > 0) & (out.iou < 1)).all()  # sigmoid IoU head


def test_selection_of_candidates_and_tokens() -> None:
    dec = _decoder(dynamic_multimask_via_stability=False)
    args = dict(**_inputs(), repeat_image=False, high_res_features=_high_res(dec))
    every = dec._predict_all(
        args["image_embeddings"], image_pe=args["image_pe"], sparse=args["sparse_prompt_embeddings"],
        dense=args["dense_prompt_embeddings"], repeat_image=False, high_res_features=args["high_res_features"],
    )
    assert every.mask_logits.shape[1] == 4
    multi = dec(**args, multimask_output=True)
    single = dec(**args, multimask_output=False)
    torch.testing.assert_close(multi.mask_logits, every.mask_logits[:, 1:], rtol=0, atol=0)
    torch.testing.assert_close(multi.iou, every.iou[:, 1:], rtol=0, atol=0)
    torch.testing.assert_close(multi.mask_tokens, every.mask_tokens[:, 1:], rtol=0, atol=0)
    torch.testing.assert_close(single.mask_logits, every.mask_logits[:, :1], rtol=0, atol=0)
    torch.testing.assert_close(single.mask_tokens, every.mask_tokens[:, :1], rtol=0, atol=0)

    # without the multimask-token switch the pointer token is the single-mask one, always
    dec2 = _decoder(dynamic_multimask_via_stability=False, use_multimask_token_for_obj_ptr=False)
    multi2 = dec2(**args, multimask_output=True)
    assert multi2.mask_logits.shape[1] == 3
    torch.testing.assert_close(multi2.mask_tokens, single.mask_tokens, rtol=0, atol=0)


def test_repeat_image_equals_explicit_batch() -> None:
    dec = _decoder()
    args = _inputs(batch=3, image_batch=1)
    shared = dec(**args, multimask_output=True, repeat_image=True, high_res_features=_high_res(dec, batch=1))
    expanded = {**args, "image_embeddings": args["image_embeddings"].expand(3, -1, -1, -1)}
    hr = tuple(f.expand(3, -1, -1, -1) for f in _high_res(dec, batch=1))
    explicit = dec(**expanded, multimask_output=True, repeat_image=False, high_res_features=hr)
    torch.testing.assert_close(shared.mask_logits, explicit.mask_logits, atol=1e-5, rtol=1e-5)
    assert (shared.mask_logits[0] - shared.mask_logits[1]).abs().max() > 1e-4  # prompts matter
    with pytest.raises(ValueError, match="repeat_image"):
        dec(**args, multimask_output=True, repeat_image=False, high_res_features=_high_res(dec, batch=1))


def test_high_res_features() -> None:
    dec = _decoder()
    s0, s1 = _high_res(dec)
    assert s0.shape == (2, C // 8, 4 * H, 4 * W) and s1.shape == (2, C // 4, 2 * H, 2 * W)
    args = dict(**_inputs(), multimask_output=True, repeat_image=False)
    with pytest.raises(ValueError, match="high_res_features"):
        dec(**args, high_res_features=None)
    a = dec(**args, high_res_features=(s0, s1))
    for changed in ((s0, s1.flip(-1)), (s0.flip(-1), s1)):  # (a constant shift of s1 would be normed away)
        b = dec(**args, high_res_features=changed)
        assert (a.mask_logits - b.mask_logits).abs().max() > 1e-4
        torch.testing.assert_close(a.iou, b.iou, rtol=0, atol=0)  # skips feed the masks only

    plain = _decoder(use_high_res_features=False)
    assert not hasattr(plain, "conv_s0")
    with pytest.raises(ConfigError):
        plain.project_high_res(s0, s1)
    assert plain(**args, high_res_features=None).mask_logits.shape == (2, 3, 4 * H, 4 * W)


def test_object_score_variants() -> None:
    args = dict(**_inputs(), multimask_output=False, repeat_image=False)
    no_head = _decoder(pred_obj_scores=False, use_high_res_features=False)
    out = no_head(**args)
    torch.testing.assert_close(out.obj_score_logits, torch.full((2, 1), 10.0), rtol=0, atol=0)
    assert not any(k.startswith(("obj_score_token", "pred_obj_score_head")) for k in no_head.state_dict())

    linear = _decoder(pred_obj_scores_mlp=False, use_high_res_features=False)
    assert {"pred_obj_score_head.weight", "pred_obj_score_head.bias"} <= set(linear.state_dict())
    assert linear(**args).obj_score_logits.shape == (2, 1)


def test_iou_without_sigmoid_is_raw() -> None:
    dec = _decoder(iou_prediction_use_sigmoid=False, use_high_res_features=False)
    out = dec(**_inputs(), multimask_output=True, repeat_image=False)
    assert ((out.iou < 0) | (out.iou > 1)).any()


def test_stability_score_by_hand() -> None:
    logits = torch.tensor([[[0.1, 0.03], [-0.03, -0.1]]])  # > 0.05: 1 pixel; > -0.05: 3 pixels
    torch.testing.assert_close(stability_score(logits, delta=0.05), torch.tensor([1 / 3]))
    empty = torch.full((1, 2, 2), -5.0)
    torch.testing.assert_close(stability_score(empty, delta=0.05), torch.tensor([1.0]))


def test_stability_fallback_picks_the_best_multimask_candidate() -> None:
    dec = _decoder()
    logits = torch.zeros(2, 4, 4, 4)
    logits[0, 0] = 10.0  # row 0: a confident single mask (stability 1)
    logits[1, 0] = 0.01  # row 1: a single mask at the threshold (stability 0)
    for cand in range(1, 4):
        logits[:, cand] = float(cand)  # tell the candidates apart
    iou = torch.tensor([[0.1, 0.9, 0.8, 0.7], [0.99, 0.2, 0.7, 0.5]])
    out_logits, out_iou = dec._stable_single_mask(logits, iou)
    assert out_logits.shape == (2, 1, 4, 4) and out_iou.shape == (2, 1)
    torch.testing.assert_close(out_logits[0, 0], logits[0, 0], rtol=0, atol=0)  # stable: kept
    torch.testing.assert_close(out_iou[0], torch.tensor([0.1]), rtol=0, atol=0)
    # unstable: best IoU among candidates 1..3 only (candidate 2), not the single mask's 0.99
    torch.testing.assert_close(out_logits[1, 0], logits[1, 2], rtol=0, atol=0)
    torch.testing.assert_close(out_iou[1], torch.tensor([0.7]), rtol=0, atol=0)


def test_stability_fallback_in_forward_only_in_eval() -> None:
    dec = _decoder()
    with torch.no_grad():  # single-mask candidate -> all-zero logits: maximally unstable
        dec.output_hypernetworks_mlps[0].layers[-1].weight.zero_()
        dec.output_hypernetworks_mlps[0].layers[-1].bias.zero_()
    args = dict(**_inputs(), repeat_image=False, high_res_features=_high_res(dec))
    multi = dec(**args, multimask_output=True)
    single = dec(**args, multimask_output=False)
    best = multi.iou.argmax(dim=1)
    for row in range(2):
        torch.testing.assert_close(single.mask_logits[row, 0], multi.mask_logits[row, best[row]], rtol=0, atol=0)
        torch.testing.assert_close(single.iou[row, 0], multi.iou[row, best[row]], rtol=0, atol=0)
    # the pointer token stays the single-mask token
    assert not torch.allclose(single.mask_tokens[:, 0], multi.mask_tokens[torch.arange(2), best])

    dec.train()  # no fallback while training
    trained = dec(**args, multimask_output=False)
    assert trained.mask_logits.abs().max() == 0

    dec.eval()
    off = _decoder(dynamic_multimask_via_stability=False)
    off.load_state_dict(dec.state_dict())
    assert off(**args, multimask_output=False).mask_logits.abs().max() == 0


# An excerpt of the official `sam_mask_decoder.*` names and shapes (sam2.1_hiera_t, width 256).
OFFICIAL_EXCERPT = {
    "transformer.layers.0.self_attn.q_proj.weight": (256, 256),
    "transformer.layers.1.cross_attn_image_to_token.out_proj.weight": (256, 128),
    "transformer.final_attn_token_to_image.v_proj.bias": (128,),
    "transformer.norm_final_attn.weight": (256,),
    "iou_token.weight": (1, 256),
    "mask_tokens.weight": (4, 256),
    "obj_score_token.weight": (1, 256),
    "output_upscaling.0.weight": (256, 64, 2, 2),
    "output_upscaling.1.bias": (64,),
    "output_upscaling.3.weight": (64, 32, 2, 2),
    "conv_s0.weight": (32, 256, 1, 1),
    "conv_s1.weight": (64, 256, 1, 1),
    "output_hypernetworks_mlps.3.layers.2.weight": (32, 256),
    "iou_prediction_head.layers.2.weight": (4, 256),
    "pred_obj_score_head.layers.0.weight": (256, 256),
    "pred_obj_score_head.layers.2.bias": (1,),
}


def test_state_dict_names_equal_official() -> None:
    dec = MaskDecoder(MaskDecoderConfig(), transformer_dim=256)
    state = dec.state_dict()
    got = {k: tuple(v.shape) for k, v in state.items()}
    for key, shape in OFFICIAL_EXCERPT.items():
        assert got.get(key) == shape, key
    assert len(state) == 131
    assert sum(v.numel() for v in state.values()) == 4_215_109
    # the official order: transformer first, the object-score head last
    assert next(iter(state)).startswith("transformer.layers.0.")
    assert list(state)[-1] == "pred_obj_score_head.layers.2.bias"


@pytest.mark.parametrize("high_res", [True, False])
def test_channels_last_upscaling_equals_the_official_layers(high_res: bool) -> None:
    """`_upscale` works on tokens with the transposed convolutions as matmuls; it must equal
    `output_upscaling` applied to the (B, C, h, w) map as the official layers are."""
    dec = _decoder(use_high_res_features=high_res)
    src = _inputs()["image_embeddings"]  # (2, C, H, W)
    up1, norm, act1, up2, act2 = dec.output_upscaling
    if high_res:
        s0, s1 = _high_res(dec)
        expected = act2(up2(act1(norm(up1(src) + s1))) + s0)
    else:
        expected = dec.output_upscaling(src)
    tokens = src.flatten(2).transpose(1, 2)
    got = dec._upscale(tokens, (H, W), _high_res(dec) if high_res else None)  # (2, 4H*4W, C/8)
    got = got.transpose(1, 2).reshape(expected.shape)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
