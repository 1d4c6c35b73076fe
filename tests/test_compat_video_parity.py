"""masklet.compat's SAM2VideoPredictor, driven by the official call sequence, against the official run.

The same fixtures and checks as tests/predict/test_video_parity.py (tools/parity/README.md, "Video
fixtures"), here with the official defaults: a correction on a tracked frame is not a
conditioning frame and the next propagation overwrites it (``click_correct_add`` call 3 equals
call 1 in the reference). Calls are made exactly as the fixture script made them, and the
official return values are checked: ``(frame_idx, obj_ids, masks (N, 1, H, W))``,
``remove_object`` -> ``(obj_ids, [(frame_idx, masks), ...])``. Every session was recorded at
256-px input on the 320x180 clip, 16 tracked frames each (past the bank: 32), hole filling off;
tools/parity/README.md ("Sessions") says why. The full-size path is the native replay's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from masklet.compat import SAM2VideoPredictor, build_sam2_video_predictor

# the shared fixtures and comparison of the native parity test
_spec = importlib.util.spec_from_file_location(
    "_video_parity_checks", Path(__file__).parent / "predict" / "test_video_parity.py"
)
checks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = checks  # before it runs: its dataclass looks itself up there
_spec.loader.exec_module(checks)
manifest = checks.manifest  # a pytest fixture
pytestmark = [pytest.mark.slow, pytest.mark.threads(checks.FIXTURE_THREADS)]

# every official-default session, each recorded on the 32-frame 320x180 clip at 256-px input (the
# full-size path is the native replay's); past the bank also spills and evicts in the native test
OFFICIAL = [
    "video_click_correct_add_official.npz",  # a, d (correction overwritten), f
    "video_two_objects_remove_official.npz",  # b, g
    "video_mask_official.npz",  # c
    "video_reverse_official.npz",  # e
    "video_past_the_bank_official.npz",  # past the pointer and memory windows, reverse from 31
]


@pytest.fixture(scope="module")
def predictors(manifest, encoded_frames):
    """A predictor per (clip, fill_hole_area), built as the fixture script built the official one."""
    from seeded_weights import seeded_state_dict, shapes_of, state_dict_digest

    built: dict[tuple[str, int], SAM2VideoPredictor] = {}

    def predictor_for(fixture: dict) -> SAM2VideoPredictor:
        key = (fixture["clip"], fixture["fill_hole_area"])
        if key not in built:
            overrides = [o for o in fixture["hydra_overrides_extra"] if "image_size" in o]
            base = build_sam2_video_predictor(
                manifest["config"], None, device="cpu", hydra_overrides_extra=overrides
            )
            # official default (fill_hole_area=8), or what the fixture script set after building
            pred = SAM2VideoPredictor(base.model, fill_hole_area=fixture["fill_hole_area"])
            assert pred.image_size == manifest["clips"][fixture["clip"]]["image_size"]
            weights = seeded_state_dict(shapes_of(pred.model.state_dict()), manifest["seed"])
            assert fixture["weights_sha256"] == state_dict_digest(weights)
            pred.model.load_state_dict(weights, strict=True)
            checks.reuse_frame_encodings(pred.model, state_dict_digest(weights), encoded_frames)
            assert not pred.model.config.tracking.add_all_frames_to_correct_as_cond  # official
            built[key] = pred
        return built[key]

    return predictor_for


def _official_call(pred, state, call: dict):
    """One recorded call through the official API; yields (frame, obj_ids, logits (N, H, W))."""
    kind = call["call"]
    if kind in ("add", "mask"):
        if kind == "add":
            frame, obj_ids, masks = pred.add_new_points_or_box(
                state, frame_idx=call["frame"], obj_id=call["obj_id"], points=call.get("points"),
                labels=call.get("labels"), box=call.get("box"),
            )  # fmt: skip
        else:
            mask = checks.rect_mask(call["rect"], state["video_height"], state["video_width"])
            frame, obj_ids, masks = pred.add_new_mask(
                state, frame_idx=call["frame"], obj_id=call["obj_id"], mask=mask
            )
        assert frame == call["frame"] and masks.ndim == 4 and masks.shape[1] == 1
        yield frame, obj_ids, masks[:, 0]
    elif kind == "propagate":
        frames = pred.propagate_in_video(
            state, start_frame_idx=call.get("start"), reverse=call["reverse"],
            max_frame_num_to_track=call.get("max_frame_num_to_track"),
        )  # fmt: skip
        for frame, obj_ids, masks in frames:
            assert masks.ndim == 4 and masks.shape[1] == 1
            yield frame, obj_ids, masks[:, 0]
    elif kind == "remove":
        obj_ids, updated = pred.remove_object(state, call["obj_id"])
        assert obj_ids == call["obj_ids_after"]
        for frame, masks in updated:
            yield frame, obj_ids, masks[:, 0]
    else:
        raise AssertionError(f"unknown call {kind!r}")


@pytest.mark.parametrize("fname", OFFICIAL)
def test_compat_matches_official(predictors, manifest, data_dir, fname):
    fixture = manifest["fixtures"][fname]
    assert fixture["semantics"] == "official"
    clip = manifest["clips"][fixture["clip"]]
    pred = predictors(fixture)
    z, bounds = np.load(data_dir / "parity" / fname), checks.bounds_for(fname)
    state = pred.init_state(str(checks.clip_dir(data_dir, manifest, fixture["clip"])))
    try:
        assert (state["num_frames"], state["video_height"], state["video_width"]) == (32, 180, 320)
        with checks.fixture_threads(fixture):
            for k, call in enumerate(fixture["calls"]):
                outputs = _official_call(pred, state, call)
                checks.compare_call(
                    z, f"call{k}", clip["logits_stride"], outputs, state.session, bounds=bounds
                )
    finally:
        state.close()
