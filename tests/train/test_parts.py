"""Training's parts without a model: losses, prompt simulation, parameter groups, clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.errors import ConfigError
from masklet.model.types import StepOutput
from masklet.train.loop import loss_window, window_loss
from masklet.train.losses import LossWeights, actual_iou, step_losses
from masklet.train.optim import OptimSettings, apply_freeze, lr_scale, parameter_groups
from masklet.train.prompts import PromptSettings, error_clicks, noisy_boxes, plan_clip

S = 32


def _square(x0: int, y0: int, side: int) -> torch.Tensor:
    m = torch.zeros(S, S, dtype=torch.bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


def _out(candidates: torch.Tensor, iou: torch.Tensor, score: torch.Tensor) -> StepOutput:
    n = candidates.shape[0]
    best = iou.argmax(dim=1)
    chosen = candidates[torch.arange(n), best][:, None]
    return StepOutput(low_res_logits=chosen, high_res_logits=chosen, obj_ptr=torch.zeros(n, 4),
                      obj_score_logits=score, candidate_low_res_logits=candidates,
                      candidate_high_res_logits=candidates, iou=iou, best=best)  # fmt: skip


def test_the_best_candidate_carries_the_mask_loss():
    gt = _square(4, 4, 12)[None]  # (1, S, S)
    perfect = torch.where(gt, 30.0, -30.0)
    wrong = torch.where(_square(16, 16, 12)[None], 30.0, -30.0)
    three = torch.stack([wrong[0], perfect[0], wrong[0]])[None]  # (1, 3, S, S)
    w = LossWeights()
    loss = step_losses(_out(three, torch.tensor([[0.2, 0.9, 0.1]]), torch.tensor([[5.0]])), gt,
                       num_objects=1, weights=w)  # fmt: skip
    alone = step_losses(_out(perfect[None], torch.tensor([[0.9]]), torch.tensor([[5.0]])), gt,
                        num_objects=1, weights=w)  # fmt: skip
    assert loss.mask.item() == pytest.approx(alone.mask.item()) and loss.mask.item() < 1e-6
    assert loss.dice.item() == pytest.approx(alone.dice.item(), abs=1e-6)
    # the IoU head is taught on every candidate: actual IoUs (0, 1, 0) against (0.2, 0.9, 0.1)
    assert loss.iou.item() == pytest.approx((0.2 + 0.1 + 0.1) / 3, abs=1e-6)
    torch.testing.assert_close(actual_iou(three, gt.float()[:, None].expand(1, 3, S, S)), torch.tensor([[0.0, 1.0, 0.0]]))


def test_an_absent_object_teaches_only_the_object_score():
    gt = torch.zeros(1, S, S, dtype=torch.bool)
    noisy = torch.randn(1, 3, S, S, generator=torch.Generator().manual_seed(0)) * 5
    loss = step_losses(_out(noisy, torch.rand(1, 3), torch.tensor([[2.0]])), gt, num_objects=1, weights=LossWeights())
    assert loss.mask.item() == loss.dice.item() == loss.iou.item() == 0.0
    assert loss.object_score.item() == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(2.0))))
    assert loss.total.item() == pytest.approx(loss.object_score.item())


def test_losses_are_sums_over_objects_divided_by_the_object_count():
    gt = torch.stack([_square(2, 2, 8), _square(18, 18, 10)])
    logits = torch.randn(2, 1, S, S, generator=torch.Generator().manual_seed(1))
    out = _out(logits, torch.rand(2, 1), torch.tensor([[1.0], [-1.0]]))
    both = step_losses(out, gt, num_objects=2, weights=LossWeights())
    halves = [
        step_losses(_out(logits[i : i + 1], out.iou[i : i + 1], out.obj_score_logits[i : i + 1]), gt[i : i + 1],
                    num_objects=2, weights=LossWeights())  # fmt: skip
        for i in range(2)
    ]
    assert both.total.item() == pytest.approx(halves[0].total.item() + halves[1].total.item(), rel=1e-6)


def test_corrective_clicks_come_from_the_error_region():
    rng = np.random.default_rng(0)
    gt = _square(4, 4, 10)[None].expand(200, S, S)
    pred = _square(8, 8, 10)[None].expand(200, S, S)
    coords, labels = error_clicks(pred, gt, rng)
    for (x, y), label in zip(coords.long().tolist(), labels.tolist(), strict=True):
        assert bool(gt[0, y, x]) != bool(pred[0, y, x])  # an error pixel
        assert label == int(gt[0, y, x])  # positive where missed, negative where false
    assert set(labels.tolist()) == {0, 1}
    first, first_labels = error_clicks(None, gt[:20], rng)  # no prediction yet: on the object
    assert first_labels.eq(1).all() and all(bool(gt[0, y, x]) for x, y in first.long().tolist())


def test_boxes_are_noisy_but_bounded():
    gt = _square(6, 8, 12)[None].expand(100, S, S)
    settings = PromptSettings(box_noise=0.5, box_noise_bound=2.0)
    boxes = noisy_boxes(gt, np.random.default_rng(1), settings)  # (N, 2, 2)
    exact = torch.tensor([[6.0, 8.0], [18.0, 20.0]])
    assert (boxes - exact).abs().max() <= 2.0 + 1e-6 and (boxes - exact).abs().max() > 0.5
    assert (boxes[:, 0] <= boxes[:, 1]).all()


def test_clip_plans_follow_the_settings():
    targets = torch.stack([_square(4, 4, 10), _square(14, 14, 6)])[:, None].expand(2, 6, S, S)
    kinds, corrected, cond_counts = set(), set(), set()
    for seed in range(60):
        plan = plan_clip(targets, np.random.default_rng(seed), PromptSettings())
        assert plan.init_cond_frames[0] == 0 and set(plan.prompts) == set(plan.init_cond_frames)
        assert plan.processing_order(6)[: len(plan.init_cond_frames)] == list(plan.init_cond_frames)
        assert sorted(plan.processing_order(6)) == list(range(6))
        kinds |= {p.kind for p in plan.prompts.values()}
        cond_counts.add(len(plan.init_cond_frames))
        corrected.add(len(plan.frames_to_correct))
        if plan.prompts[0].kind == "mask":
            assert plan.frames_to_correct == ()
    assert kinds == {"mask", "box", "click"} and cond_counts == {1, 2} and {1, 2} <= corrected
    only_clicks = PromptSettings(prob_mask=0.0, prob_box=0.0, corrections_per_frame=0)
    plan = plan_clip(targets, np.random.default_rng(0), only_clicks)
    assert {p.kind for p in plan.prompts.values()} == {"click"} and plan.frames_to_correct == ()
    with pytest.raises(ConfigError, match="prob_box"):
        PromptSettings(prob_box=1.5)


def test_layer_decay_and_freezing(small_model):
    model = small_model
    blocks = len(model.image_encoder.trunk.blocks)
    assert lr_scale("image_encoder.trunk.blocks.0.attn.qkv.weight", blocks, 0.9) == pytest.approx(0.9**blocks)
    last = f"image_encoder.trunk.blocks.{blocks - 1}.mlp.layers.0.weight"
    assert lr_scale(last, blocks, 0.9) == pytest.approx(0.9)
    assert lr_scale("image_encoder.trunk.pos_embed", blocks, 0.9) == pytest.approx(0.9 ** (blocks + 1))
    assert lr_scale("image_encoder.neck.convs.0.conv.weight", blocks, 0.9) == 1.0
    try:
        every = apply_freeze(model, "none")
        no_encoder = apply_freeze(model, "image_encoder")
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        assert not any(n.startswith("image_encoder.") for n in names) and "memory_attention.layers.0.linear1.weight" in names
        heads = apply_freeze(model, "all_but_heads")
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        assert names and all(n.startswith(("sam_prompt_encoder.", "sam_mask_decoder.", "obj_ptr_proj.", "no_obj_ptr"))
                             for n in names)  # fmt: skip
        assert every > no_encoder > heads > 0
        groups = parameter_groups(model, OptimSettings(freeze="all_but_heads"))
        assert sum(len(g["params"]) for g in groups) == len(names)
        assert {g["weight_decay"] for g in groups} == {0.0, 0.1}  # biases and embeddings not decayed
    finally:
        apply_freeze(model, "none")
    with pytest.raises(ConfigError, match="freeze"):
        OptimSettings(freeze="decoder")


def test_a_project_trains_on_its_accepted_masklets_only(sav_folder, tmp_path):
    from masklet.engine import review
    from masklet.engine.projects import add_video
    from masklet.engine.store import Store
    from masklet.io.masks import RleMask
    from masklet.train.data import TrainingDataError, load_training_videos

    url = f"sqlite:///{tmp_path / 'p.db'}"
    source = load_training_videos(sav_folder)[0]
    with Store(url) as store:
        project = store.create_project("cats")
        video = add_video(store, project.id, source.source)
        kept = {}
        for obj in source.obj_ids:
            m = store.create_masklet(video.id, by="ann", obj_id=obj)
            masks = {f: rle.to_dict() for f, rle in zip(source.frames, source.masks[obj], strict=True)}
            store.put_frame_masks(m.id, masks, source="manual", by="ann")
            kept[obj] = m
        with pytest.raises(TrainingDataError, match="no accepted masklets"):
            load_training_videos("cats", database_url=url)
        draft = store.get_masklet(kept[source.obj_ids[0]].id)
        first = review.submit(store, draft.id, expected_version=draft.version, by="ann")
        review.accept(store, first.id, expected_version=first.version, by="boss")
    (video_data,) = load_training_videos("cats", database_url=url)
    assert video_data.frames == source.frames and len(video_data.masks) == 1
    (masks,) = video_data.masks.values()
    assert [RleMask.to_dict(m) for m in masks] == [m.to_dict() for m in source.masks[source.obj_ids[0]]]
    with pytest.raises(TrainingDataError, match="neither a folder nor a project"):
        load_training_videos("dogs", database_url=url)


def test_run_loss_summary_skips_steps_without_a_loss() -> None:
    """A run whose last step took its mask prompts as outputs (loss 0) does not report 'loss -> 0'."""
    history = [{"total": t} for t in (9.0, 7.0, *([2.0] * 20), 1.0, 3.0, 0.0)]
    assert window_loss(history, last=False, steps=2) == pytest.approx(8.0)
    assert window_loss(history, last=True, steps=2) == pytest.approx(2.0)
    assert window_loss(history, last=True) == pytest.approx(2.0)
    assert np.isnan(window_loss([{"total": 0.0}], last=True))
    short = [{"total": t} for t in (8.0, 6.0, 4.0, 2.0)]  # a short run: halves, not one window twice
    assert loss_window(short) == 2
    assert (window_loss(short, last=False), window_loss(short, last=True)) == (7.0, 3.0)
