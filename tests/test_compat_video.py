"""The official video-predictor names work over masklet's TrackingSession, with the official semantics."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from masklet.compat import InferenceState, build_sam2_video_predictor
from masklet.errors import PromptError, SessionError
from masklet.io.synthetic import make_synthetic_video, write_frame_folder
from masklet.model.tracking import NO_OBJ_SCORE
from masklet.predict.video import VideoPredictor

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SMALL = ["++model.image_size=128"]
H, W, T = 96, 128, 8


def _predictor(extra: list[str] | None = None, **kwargs):
    from seeded_weights import seeded_state_dict, shapes_of

    overrides = SMALL + (extra or [])
    predictor = build_sam2_video_predictor(CONFIG, None, "cpu", hydra_overrides_extra=overrides, **kwargs)
    # seeded weights: with them objects are present and masks react to the prompts
    predictor.model.load_state_dict(seeded_state_dict(shapes_of(predictor.model.state_dict()), seed=4))
    return predictor

# many small ops: on a busy 2-core runner, two intra-op threads are several times slower than one
pytestmark = pytest.mark.threads(1)


@pytest.fixture(scope="module")
def predictor():
    return _predictor()


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(T, H, W, num_objects=2, seed=1)


@pytest.fixture(scope="module")
def jpeg_dir(video, tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    write_frame_folder(video.frames, folder)
    return str(folder)


def _click(video, frame: int, k: int, label: int = 1) -> dict:
    return {"points": [video.centers[frame, k].tolist()], "labels": [label]}


def _propagate(predictor, state, **kwargs) -> dict[int, torch.Tensor]:
    out = {}
    for frame, obj_ids, masks in predictor.propagate_in_video(state, **kwargs):
        assert obj_ids == state["obj_ids"] and masks.shape == (len(obj_ids), 1, H, W)
        out[frame] = masks.clone()
    return out


def test_builder_uses_the_official_defaults_and_overrides() -> None:
    predictor = build_sam2_video_predictor(CONFIG, None, device="cpu", hydra_overrides_extra=SMALL)
    cfg = predictor.video.config
    assert not cfg.add_all_frames_to_correct_as_cond and cfg.fill_hole_area == 8
    assert cfg.binarize_mask_from_pts_for_mem_enc
    assert predictor.model.config.mask_decoder.dynamic_multimask_via_stability
    assert predictor.image_size == 128 and not predictor.training  # the model's attributes show through

    plain = build_sam2_video_predictor(CONFIG, None, device="cpu", hydra_overrides_extra=SMALL,
                                       apply_postprocessing=False)
    assert plain.video.config.fill_hole_area == 0
    assert not plain.video.config.binarize_mask_from_pts_for_mem_enc
    assert not plain.model.config.mask_decoder.dynamic_multimask_via_stability

    sticky = build_sam2_video_predictor(
        CONFIG, None, device="cpu", vos_optimized=True,
        hydra_overrides_extra=[*SMALL, "++model.add_all_frames_to_correct_as_cond=true",
                               "++model.fill_hole_area=0"],
    )
    assert sticky.video.config.add_all_frames_to_correct_as_cond
    assert sticky.video.config.fill_hole_area == 8  # as upstream, postprocessing overrides come last and win


def test_official_notebook_call_sequence(predictor, video, jpeg_dir) -> None:
    state = predictor.init_state(video_path=jpeg_dir)
    assert isinstance(state, InferenceState)
    assert (state["num_frames"], state["video_height"], state["video_width"]) == (T, H, W)
    assert state["obj_ids"] == [] and state["device"] == torch.device("cpu")

    frame, obj_ids, masks = predictor.add_new_points_or_box(
        inference_state=state, frame_idx=0, obj_id=1,
        points=np.array([video.centers[0, 0]], dtype=np.float32), labels=np.array([1], np.int32),
    )
    assert frame == 0 and obj_ids == [1]
    assert isinstance(masks, torch.Tensor) and masks.shape == (1, 1, H, W) and masks.dtype == torch.float32
    frame, obj_ids, masks = predictor.add_new_points_or_box(state, 0, 2, box=video.boxes[0, 1])
    assert obj_ids == [1, 2] and masks.shape == (2, 1, H, W)

    tracked = _propagate(predictor, state)
    assert list(tracked) == list(range(T))
    assert all((m[:, 0] > 0).any(dim=(1, 2)).all() for m in tracked.values())  # both objects present

    mask = video.masks[3, 0]
    frame, obj_ids, masks = predictor.add_new_mask(state, frame_idx=3, obj_id=3, mask=mask)
    assert (frame, obj_ids, masks.shape) == (3, [1, 2, 3], (3, 1, H, W))
    # a mask prompt comes back as the mask itself (the official mask-as-output path)
    assert ((masks[2, 0] > 0).numpy() == mask).mean() > 0.97
    assert torch.equal(masks[:2], tracked[3])  # the other objects keep their tracked masks

    predictor.reset_state(state)
    assert state["obj_ids"] == []
    predictor.add_new_points(state, 2, 5, **_click(video, 2, 1))
    predictor.add_new_points_or_box(state, 4, 6, **_click(video, 4, 0))
    obj_ids, updated = predictor.remove_object(state, 5)
    assert obj_ids == [6] and [f for f, _ in updated] == [2]
    assert torch.equal(updated[0][1], torch.full((1, 1, H, W), NO_OBJ_SCORE))  # object 6 has no output on 2
    assert predictor.remove_object(state, 6) == ([], [])
    state.close()


def test_compat_equals_the_native_session(predictor, video) -> None:
    native = VideoPredictor(predictor.model)  # its own defaults: corrections stick
    calls = [(0, 1, _click(video, 0, 0)), (0, 2, {"box": video.boxes[0, 1].tolist()}),
             (5, 1, _click(video, 5, 0, label=1))]
    state = predictor.init_state(video.frames)
    with native.start(video.frames) as session:
        for frame, obj_id, prompt in calls:
            _, ids, masks = predictor.add_new_points_or_box(state, frame, obj_id, **prompt)
            ids_n, logits = session.add_prompt(frame=frame, obj_id=obj_id, clear=True, **prompt)
            assert ids == ids_n and torch.equal(masks[:, 0], logits)
        ours = _propagate(predictor, state)
        theirs = {f: logits for f, _, logits in session.propagate()}
        assert list(ours) == list(theirs) == list(range(T))
        for f in ours:
            assert torch.equal(ours[f][:, 0], theirs[f])


def test_start_length_and_direction_follow_the_official_predictor(predictor, video) -> None:
    state = predictor.init_state(video.frames)
    predictor.add_new_points_or_box(state, 2, 1, **_click(video, 2, 0))
    # max_frame_num_to_track counts the frames after the start frame, as upstream
    assert list(_propagate(predictor, state, max_frame_num_to_track=3)) == [2, 3, 4, 5]
    backwards = _propagate(predictor, state, start_frame_idx=6, max_frame_num_to_track=2, reverse=True)
    assert list(backwards) == [6, 5, 4]
    assert list(_propagate(predictor, state, reverse=True)) == [2, 1, 0]
    assert list(_propagate(predictor, state, start_frame_idx=0, reverse=True)) == []  # upstream skips it
    assert list(_propagate(predictor, state, start_frame_idx=T - 1)) == [T - 1]


def test_point_options(predictor, video) -> None:
    a, b = video.centers[0, 0], video.centers[0, 0] + [6.0, -3.0]

    def run(*calls):
        state = predictor.init_state(video.frames)
        for kwargs in calls:
            _, _, masks = predictor.add_new_points_or_box(state, 0, 1, **kwargs)
        return masks

    both = run({"points": [a, b], "labels": [1, 0]})
    assert not torch.allclose(both, run({"points": [a], "labels": [1]}), atol=1e-2)  # the 2nd click matters
    # clear_old_points=False adds to the frame's clicks (native clear=False); the default replaces them
    with VideoPredictor(predictor.model).start(video.frames) as session:
        session.add_prompt(0, 1, points=[a], labels=[1])
        _, added = session.add_prompt(0, 1, points=[b], labels=[0], clear=False)
        _, replaced = session.add_prompt(0, 1, points=[b], labels=[0], clear=True)
    first = {"points": [a], "labels": [1]}
    assert torch.equal(run(first, {"points": [b], "labels": [0], "clear_old_points": False})[:, 0], added)
    assert torch.equal(run(first, {"points": [b], "labels": [0], "clear_old_points": False},
                           {"points": [b], "labels": [0]})[:, 0], replaced)
    assert not torch.allclose(added, replaced, atol=1e-2)
    # batched tensors (1, P, 2) / (1, P) and coordinates as fractions of the frame
    points = torch.tensor(np.array([[a, b]]), dtype=torch.float32)
    batched = run({"points": points, "labels": torch.tensor([[1, 0]])})
    assert torch.equal(batched, both)
    fractions = run({"points": [a / [W, H], b / [W, H]], "labels": [1, 0], "normalize_coords": False})
    torch.testing.assert_close(fractions, both, atol=1e-4, rtol=0)
    box = video.boxes[0, 1]
    torch.testing.assert_close(run({"box": box / [W, H, W, H], "normalize_coords": False}), run({"box": box}),
                               atol=1e-4, rtol=0)


def test_correction_is_overwritten_officially_and_sticks_natively(predictor, video) -> None:
    fix = {"points": [video.centers[4, 0].tolist()], "labels": [0]}
    # official semantics (the compat default): the next propagation re-tracks frame 4
    state = predictor.init_state(video.frames)
    predictor.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))
    first = _propagate(predictor, state)
    _, _, corrected = predictor.add_new_points_or_box(state, 4, 1, **fix)
    assert not torch.allclose(corrected, first[4], atol=1e-2)
    again = _propagate(predictor, state)
    assert not torch.allclose(again[4], corrected, atol=1e-2)
    torch.testing.assert_close(again[4], first[4], atol=1e-4, rtol=0)  # as if never corrected

    # native semantics, and compat with the official override: the correction stays
    sticky = _predictor(["++model.add_all_frames_to_correct_as_cond=true"])
    state = sticky.init_state(video.frames)
    with VideoPredictor(predictor.model).start(video.frames) as session:
        sticky.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))
        session.add_prompt(0, 1, **_click(video, 0, 0))
        _propagate(sticky, state)
        list(session.propagate())
        _, _, corrected = sticky.add_new_points_or_box(state, 4, 1, **fix)
        _, native_corrected = session.add_prompt(4, 1, **fix)
        assert torch.equal(corrected[:, 0], native_corrected)
        again = _propagate(sticky, state)
        native_again = {f: logits for f, _, logits in session.propagate()}
        assert torch.equal(again[4], corrected) and torch.equal(native_again[4], native_corrected)
        for f in again:
            assert torch.equal(again[f][:, 0], native_again[f])


def test_remove_object_returns_the_official_values(predictor, video) -> None:
    state = predictor.init_state(video.frames)
    predictor.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))
    predictor.add_new_points_or_box(state, 2, 2, box=video.boxes[2, 1])
    predictor.add_new_points_or_box(state, 5, 2, **_click(video, 5, 1))
    tracked = _propagate(predictor, state)
    assert predictor.remove_object(state, 9) == ([1, 2], [])
    with pytest.raises(SessionError, match="Cannot remove object id 9"):
        predictor.remove_object(state, 9, strict=True)
    obj_ids, updated = predictor.remove_object(state, 2)
    assert obj_ids == [1] and [f for f, _ in updated] == [2, 5]
    for frame, masks in updated:
        assert torch.equal(masks, tracked[frame][:1])  # object 1 on the frames object 2 was prompted on
    assert predictor.remove_object(state, 1, need_output=False) == ([], [])
    assert state["obj_ids"] == []


def test_errors_and_state_lifetime(predictor, video) -> None:
    state = predictor.init_state(video.frames)
    with pytest.raises(SessionError, match="No input points or masks"):
        next(predictor.propagate_in_video(state))
    with pytest.raises(PromptError, match="together"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[10, 10]])
    with pytest.raises(PromptError, match="box"):
        predictor.add_new_points_or_box(state, 0, 1, box=[1, 1, 20, 20], clear_old_points=False)
    with pytest.raises(PromptError, match="one object per call"):
        predictor.add_new_points_or_box(state, 0, 1, points=np.zeros((2, 1, 2)), labels=np.ones((2, 1)))
    with pytest.raises(SessionError, match="init_state"):
        predictor.add_new_points_or_box({"images": []}, 0, 1, points=[[10, 10]], labels=[1])
    with pytest.raises(SessionError, match="unknown object id 1"):
        predictor.clear_all_prompts_in_frame(state, 0, 1)
    with pytest.raises(KeyError, match="exposes only"):
        state["output_dict_per_obj"]
    predictor.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))  # still usable after the errors

    session = state.session
    del state
    gc.collect()
    assert session.closed  # a dropped state releases its video and temporary folder


def test_clear_all_prompts_in_frame_follows_upstream(predictor, video) -> None:
    # a prompt not yet propagated goes with its output; the object stays, without prompts
    state = predictor.init_state(video.frames)
    predictor.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))
    _, _, before = predictor.add_new_points_or_box(state, 0, 2, **_click(video, 0, 1))
    frame, obj_ids, masks = predictor.clear_all_prompts_in_frame(state, 0, 1)
    assert (frame, obj_ids) == (0, [1, 2])
    assert torch.equal(masks[0], torch.full((1, H, W), NO_OBJ_SCORE)) and torch.equal(masks[1], before[1])
    with pytest.raises(SessionError, match="No input points or masks are provided for object id 1"):
        next(predictor.propagate_in_video(state))
    assert predictor.clear_all_prompts_in_frame(state, 0, 2, need_output=False) is None

    # a propagated conditioning frame keeps its last output, but no longer conditions the others
    state = predictor.init_state(video.frames)
    predictor.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))
    predictor.add_new_points_or_box(state, 5, 1, **_click(video, 5, 0))
    first = _propagate(predictor, state)
    _, _, masks = predictor.clear_all_prompts_in_frame(state, 5, 1)
    assert torch.equal(masks, first[5])
    again = _propagate(predictor, state)
    alone = predictor.init_state(video.frames)
    predictor.add_new_points_or_box(alone, 0, 1, **_click(video, 0, 0))
    reference = _propagate(predictor, alone)  # as if frame 5 had never been clicked
    assert not torch.allclose(first[3], reference[3], atol=1e-2)
    for f in range(T):
        torch.testing.assert_close(again[f], reference[f], atol=1e-4, rtol=0)
    obj_ids, updated = predictor.remove_object(state, 1)
    assert (obj_ids, updated) == ([], [])


def _overlapping_pair(predictor, video):
    """Two objects clicked on the same spot: their masks overlap."""
    state = predictor.init_state(video.frames)
    predictor.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))
    _, _, masks = predictor.add_new_points_or_box(state, 0, 2, points=[video.centers[0, 0] + [2.0, 1.0]],
                                                  labels=[1])
    return state, masks


def test_non_overlap_masks_constrains_every_returned_mask(predictor, video) -> None:
    state, plain_prompt = _overlapping_pair(predictor, video)
    assert ((plain_prompt[0] > 0) & (plain_prompt[1] > 0)).any()  # overlap without the switch
    plain = _propagate(predictor, state)

    strict = _predictor(["++model.non_overlap_masks=true"])
    state, prompt = _overlapping_pair(strict, video)
    assert torch.equal(prompt, strict._apply_non_overlapping_constraints(plain_prompt))
    tracked = _propagate(strict, state)
    for f in range(T):
        assert not ((tracked[f][0] > 0) & (tracked[f][1] > 0)).any()
        assert torch.equal(tracked[f], predictor._apply_non_overlapping_constraints(plain[f]))  # memory unchanged
    _, _, cleared = strict.clear_all_prompts_in_frame(state, 0, 2)
    assert not ((cleared[0] > 0) & (cleared[1] > 0)).any()


def test_apply_non_overlapping_constraints_keeps_the_highest_object() -> None:
    logits = torch.tensor([[[[3.0, -1.0, 20.0]]], [[[1.0, 2.0, 5.0]]]])  # (N=2, 1, 1, 3)
    out = _predictor()._apply_non_overlapping_constraints(logits)
    assert out.tolist() == [[[[3.0, -10.0, 20.0]]], [[[-10.0, 2.0, -10.0]]]]  # losers clamped to <= -10
    assert torch.equal(_predictor()._apply_non_overlapping_constraints(logits[:1]), logits[:1])


def test_non_overlap_masks_for_mem_enc_has_no_effect_as_upstream(predictor, video) -> None:
    # the official predictor encodes each object's memory alone, so this constraint never sees two objects
    state, _ = _overlapping_pair(predictor, video)
    plain = _propagate(predictor, state)
    switched = _predictor(["++model.non_overlap_masks_for_mem_enc=true"])
    assert switched.video.config.non_overlap_masks_for_mem_enc
    state, _ = _overlapping_pair(switched, video)
    for f, masks in _propagate(switched, state).items():
        assert torch.equal(masks, plain[f])


def test_offload_and_async_flags_change_nothing(predictor, video, jpeg_dir) -> None:
    results = []
    for flag in (False, True):
        state = predictor.init_state(jpeg_dir, offload_video_to_cpu=flag, offload_state_to_cpu=flag,
                                     async_loading_frames=flag)
        _, _, prompt = predictor.add_new_points_or_box(state, 0, 1, **_click(video, 0, 0))
        results.append((prompt, _propagate(predictor, state)))
        state.close()
    (prompt0, tracked0), (prompt1, tracked1) = results
    assert torch.equal(prompt0, prompt1) and list(tracked0) == list(tracked1) == list(range(T))
    assert all(torch.equal(tracked0[f], tracked1[f]) for f in tracked0)


# every constructor argument of the official SAM2Base, SAM2VideoPredictor and the builder's mask decoder
# extras (sam2 1.1.0), with a value to pass; the submodules come as `model.<module>.<field>`
OFFICIAL_SWITCHES = {
    "image_encoder.trunk.embed_dim": 112, "memory_attention.num_layers": 2, "memory_encoder.out_dim": 32,
    "num_maskmem": 5, "image_size": 256, "backbone_stride": 16, "sigmoid_scale_for_mem_enc": 10.0,
    "sigmoid_bias_for_mem_enc": -5.0, "binarize_mask_from_pts_for_mem_enc": False,
    "use_mask_input_as_output_without_sam": False, "max_cond_frames_in_attn": 2,
    "directly_add_no_mem_embed": False, "use_high_res_features_in_sam": False, "multimask_output_in_sam": False,
    "multimask_min_pt_num": 1, "multimask_max_pt_num": 2, "multimask_output_for_tracking": False,
    "use_multimask_token_for_obj_ptr": False, "iou_prediction_use_sigmoid": False,
    "memory_temporal_stride_for_eval": 2, "non_overlap_masks_for_mem_enc": True, "use_obj_ptrs_in_encoder": True,
    "max_obj_ptrs_in_encoder": 8, "add_tpos_enc_to_obj_ptrs": True, "proj_tpos_enc_in_obj_ptrs": True,
    "use_signed_tpos_enc_to_obj_ptrs": True, "only_obj_ptrs_in_the_past_for_eval": False,
    "pred_obj_scores": True, "pred_obj_scores_mlp": False, "fixed_no_obj_ptr": True, "soft_no_obj_ptr": False,
    "use_mlp_for_obj_ptr_proj": False, "no_obj_embed_spatial": False, "compile_image_encoder": True,
    "sam_mask_decoder_extra_args.dynamic_multimask_via_stability": False,
    "sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.1,
    "sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.9,
    "fill_hole_area": 4, "non_overlap_masks": True, "clear_non_cond_mem_around_input": True,
    "add_all_frames_to_correct_as_cond": True,
}


@pytest.mark.parametrize("name", list(OFFICIAL_SWITCHES))
def test_every_official_switch_is_honoured_or_refused_by_name(name: str) -> None:
    from masklet.compat import apply_hydra_overrides
    from masklet.configs import get_config
    from masklet.errors import ConfigError

    value = OFFICIAL_SWITCHES[name]
    text = str(value).lower() if isinstance(value, bool) else str(value)
    try:
        cfg = apply_hydra_overrides(get_config("sam2.1_hiera_t"), [f"++model.{name}={text}"])
    except ConfigError as error:
        assert name.split(".")[0] in str(error) and "names no known SAM 2 setting" not in str(error)
        return
    field = name.rsplit(".", 1)[-1]
    field = {"use_high_res_features_in_sam": "use_high_res_features"}.get(field, field)
    found = [getattr(part, field) for part in (cfg, cfg.tracking, cfg.mask_decoder) if hasattr(part, field)]
    assert found == [value] or name in ("compile_image_encoder", "backbone_stride"), (name, found)


def test_refused_switches_say_why() -> None:
    from masklet.compat import apply_hydra_overrides
    from masklet.configs import get_config
    from masklet.errors import ConfigError

    cfg = get_config("sam2.1_hiera_t")
    with pytest.raises(ConfigError, match="clear_non_cond_mem_around_input is not supported: .*AttributeError"):
        apply_hydra_overrides(cfg, ["++model.clear_non_cond_mem_around_input=true"])
    assert apply_hydra_overrides(cfg, ["++model.clear_non_cond_mem_around_input=false"]) == cfg
    with pytest.raises(ConfigError, match="image_encoder module is built from the named config"):
        apply_hydra_overrides(cfg, ["++model.image_encoder.trunk.embed_dim=112"])
    with pytest.raises(ConfigError, match="backbone_stride follows from the Hiera trunk"):
        apply_hydra_overrides(cfg, ["++model.backbone_stride=32"])
