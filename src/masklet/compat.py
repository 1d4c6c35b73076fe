"""The official `sam2` package's public names and signatures, over masklet.

An official notebook runs by changing its imports:

    from masklet.compat import build_sam2, SAM2ImagePredictor, SAM2AutomaticMaskGenerator
    from masklet.compat import build_sam2_video_predictor

Only this module speaks the official argument shapes (config file paths, hydra
override strings); everything else in masklet uses typed configs.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from masklet.build import build_sam2 as _build
from masklet.checkpoints import download_checkpoint
from masklet.configs import CONFIGS, SAM2Config, get_config
from masklet.errors import ConfigError, PromptError, SessionError
from masklet.model.sam2 import SAM2Model
from masklet.model.tracking import non_overlapping
from masklet.predict.automatic import AutomaticMaskGenerator
from masklet.predict.image import ImagePredictor
from masklet.predict.video import TrackingSession, VideoPredictor

log = logging.getLogger(__name__)

_OVERRIDE = re.compile(r"^\+{0,2}model\.(?:sam_mask_decoder_extra_args\.)?(\w+)=(.+)$")


def config_name_from_file(config_file: str) -> str:
    """'configs/sam2.1/sam2.1_hiera_t.yaml' (or the bare stem) -> 'sam2.1_hiera_t'."""
    stem = PurePosixPath(str(config_file).replace("\\", "/")).name
    stem = stem[: -len(".yaml")] if stem.endswith(".yaml") else stem
    if stem not in CONFIGS:
        raise ConfigError(
            f"unknown SAM 2 config file {config_file!r}; expected one of "
            f"{', '.join(f'{n}.yaml' for n in CONFIGS)}"
        )
    return stem


def _parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# official constructor arguments whose masklet field has another name or place
_RENAMED = MappingProxyType({"use_high_res_features_in_sam": ("mask_decoder", "use_high_res_features")})
# official switches masklet accepts without effect (compilation changes speed, not results)
_NO_EFFECT = frozenset({"compile_image_encoder"})
# official switches masklet refuses unless set to false, and why
_REFUSED_WHEN_SET = MappingProxyType(
    {
        "clear_non_cond_mem_around_input": (
            "not supported: in sam2 1.1.0 the official SAM2VideoPredictor fails with AttributeError once "
            "it is set (it calls a missing _clear_obj_non_cond_mem_around_input), so there are no "
            "official results to match"
        ),
        "clear_non_cond_mem_for_multi_obj": (
            "not supported: a switch of the legacy predictor (sam2_video_predictor_legacy), which sam2 "
            "1.1.0's SAM2VideoPredictor no longer takes"
        ),
    }
)
_MODULES = ("image_encoder", "memory_attention", "memory_encoder")


def apply_hydra_overrides(cfg: SAM2Config, overrides: list[str]) -> SAM2Config:
    """Apply official `++model.<field>=<value>` override strings to a typed config.

    Every argument of the official `SAM2Base` and `SAM2VideoPredictor` constructors is
    either applied or refused with a ConfigError that names it and says why.
    """
    sections = ("tracking", "mask_decoder")
    changes: dict[str, dict[str, Any]] = {s: {} for s in sections}
    top: dict[str, Any] = {}
    for item in overrides:
        text = item.strip()
        module = re.match(r"^\+{0,2}model\.(" + "|".join(_MODULES) + r")\.", text)
        if module:
            raise ConfigError(
                f"override {item!r}: the {module.group(1)} module is built from the named config "
                f"({cfg.name}) and cannot be changed field by field; choose one of the eight configs"
            )
        match = _OVERRIDE.match(text)
        if not match:
            raise ConfigError(f"unsupported override {item!r}: expected '++model.<field>=<value>'")
        field_name, value = match.group(1), _parse_value(match.group(2))
        if field_name.startswith("_target_"):
            continue  # class paths have no meaning here
        if field_name in _NO_EFFECT:
            log.info("%s has no effect in masklet (exact mode compiles nothing; see VideoPredictor(fast=True))",
                     field_name)  # fmt: skip
            continue
        if field_name in _REFUSED_WHEN_SET:
            if value is not False:
                raise ConfigError(f"override {item!r}: {field_name} is {_REFUSED_WHEN_SET[field_name]}")
            continue
        if field_name == "backbone_stride":
            if value != cfg.backbone_stride:
                raise ConfigError(
                    f"override {item!r}: backbone_stride follows from the Hiera trunk's strides "
                    f"({cfg.backbone_stride} for every official config) and cannot be changed"
                )
            continue
        if field_name == "image_size":
            top[field_name] = value
            continue
        if field_name in _RENAMED:
            section, target = _RENAMED[field_name]
            changes[section][target] = value
            continue
        for section in sections:
            if hasattr(getattr(cfg, section), field_name):
                changes[section][field_name] = value
                break
        else:
            raise ConfigError(f"override {item!r} names no known SAM 2 setting")
    return get_config(cfg, **top, **{s: c for s, c in changes.items() if c})


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("CUDA is not available; running on the CPU instead")
        return torch.device("cpu")
    return device


# parity: with postprocessing the official builders append these after the caller's overrides
# (so they win); without it the official classes' defaults apply, which a caller may override
_POSTPROCESSING = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
_VIDEO_POSTPROCESSING = (
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=8",
)
_NO_POSTPROCESSING = ("++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=false",)
_NO_VIDEO_POSTPROCESSING = (
    "++model.binarize_mask_from_pts_for_mem_enc=false",
    "++model.fill_hole_area=0",
)


def _build_model(
    config_file: str,
    ckpt_path: str | os.PathLike[str] | None,
    device: str | torch.device,
    mode: str,
    extra: list[str] | None,
    apply_postprocessing: bool,
    *,
    video: bool,
) -> SAM2Model:
    cfg = get_config(config_name_from_file(config_file))
    extra = list(extra or [])
    if apply_postprocessing:
        overrides = extra + list(_POSTPROCESSING) + list(_VIDEO_POSTPROCESSING if video else ())
    else:
        overrides = list(_NO_POSTPROCESSING) + list(_NO_VIDEO_POSTPROCESSING if video else ()) + extra
    model = _build(apply_hydra_overrides(cfg, overrides), ckpt_path, _resolve_device(device))
    return model.train(mode == "train")


def build_sam2(
    config_file: str,
    ckpt_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eval",
    hydra_overrides_extra: list[str] | None = None,
    apply_postprocessing: bool = True,
    **kwargs: Any,
) -> SAM2Model:
    """The official `sam2.build_sam.build_sam2`, with the same arguments."""
    return _build_model(
        config_file, ckpt_path, device, mode, hydra_overrides_extra, apply_postprocessing, video=False
    )


def build_sam2_video_predictor(
    config_file: str,
    ckpt_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eval",
    hydra_overrides_extra: list[str] | None = None,
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    **kwargs: Any,
) -> SAM2VideoPredictor:
    """The official `sam2.build_sam.build_sam2_video_predictor`, with the same arguments.

    `vos_optimized` (upstream: a compiled image encoder) changes nothing here: the official
    arithmetic stays exact (masklet's own `VideoPredictor(fast=True)` compiles the encoder on CUDA).
    Session switches such as `++model.add_all_frames_to_correct_as_cond=true` are honoured.
    """
    if vos_optimized:
        log.info("vos_optimized has no effect in masklet (exact mode; see VideoPredictor(fast=True))")
    model = _build_model(
        config_file, ckpt_path, device, mode, hydra_overrides_extra, apply_postprocessing, video=True
    )
    return SAM2VideoPredictor(model)


# The official Hugging Face model ids: (config file, checkpoint file), as sam2.build_sam has them.
HF_MODEL_ID_TO_FILENAMES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        f"facebook/{version}-hiera-{size}": (
            f"configs/{version}/{version}_hiera_{short}.yaml",
            f"{version}_hiera_{size.replace('-', '_')}.pt",
        )
        for version in ("sam2", "sam2.1")
        for size, short in (("tiny", "t"), ("small", "s"), ("base-plus", "b+"), ("large", "l"))
    }
)


def _hf_checkpoint(
    model_id: str, cache_dir: str | os.PathLike[str] | None, progress: bool
) -> tuple[str, Path]:
    """(config file, local checkpoint path) for an official model id, fetched through masklet's registry.

    masklet downloads the same files from Meta's server into its cache (never from the Hub).
    """
    entry = HF_MODEL_ID_TO_FILENAMES.get(model_id)
    if entry is None:
        raise ConfigError(
            f"unknown SAM 2 model id {model_id!r}; known ids: {', '.join(HF_MODEL_ID_TO_FILENAMES)}"
        )
    config_file, filename = entry
    return config_file, download_checkpoint(filename, cache_dir=cache_dir, progress=progress)


def build_sam2_hf(
    model_id: str, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True, **kwargs: Any
) -> SAM2Model:
    """The official `build_sam2_hf`: `build_sam2` with an official model id's config and weights.

    The checkpoint comes from masklet's cache (`cache_dir`, else $MASKLET_CACHE, else
    ~/.cache/masklet), downloaded there first when missing.
    """
    config_file, ckpt_path = _hf_checkpoint(model_id, cache_dir, progress)
    return build_sam2(config_file, ckpt_path, **kwargs)


def build_sam2_video_predictor_hf(
    model_id: str, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True, **kwargs: Any
) -> SAM2VideoPredictor:
    """The official `build_sam2_video_predictor_hf` (checkpoint as in `build_sam2_hf`)."""
    config_file, ckpt_path = _hf_checkpoint(model_id, cache_dir, progress)
    return build_sam2_video_predictor(config_file, ckpt_path, **kwargs)


class SAM2ImagePredictor(ImagePredictor):
    """The official `SAM2ImagePredictor` (same constructor, methods and return values).

    Unlike masklet's `ImagePredictor` (boolean masks), `predict` and `predict_batch`
    return float32 masks as upstream: 0/1, or logits with `return_logits=True`.
    """

    def __init__(
        self, sam_model: SAM2Model, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0, **kwargs: Any,
    ) -> None:
        super().__init__(sam_model, mask_threshold=mask_threshold, max_hole_area=max_hole_area,
                         max_sprinkle_area=max_sprinkle_area)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2ImagePredictor:
        """The predictor over `build_sam2_hf(model_id, **kwargs)`; both take the same kwargs, as upstream."""
        return cls(build_sam2_hf(model_id, **kwargs), **kwargs)

    def predict(  # type: ignore[override]
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks (float32), IoU predictions and low-res logits, as upstream."""
        masks, scores, low_res = super().predict(
            point_coords, point_labels, box, mask_input, multimask_output, return_logits, normalize_coords
        )
        return masks.astype(np.float32, copy=False), scores, low_res

    def predict_batch(  # type: ignore[override]
        self,
        point_coords_batch: list[np.ndarray | None] | None = None,
        point_labels_batch: list[np.ndarray | None] | None = None,
        box_batch: list[np.ndarray | None] | None = None,
        mask_input_batch: list[np.ndarray | None] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """`predict` per image of `set_image_batch`, masks float32 as upstream."""
        masks, scores, low_res = super().predict_batch(
            point_coords_batch, point_labels_batch, box_batch, mask_input_batch, multimask_output,
            return_logits, normalize_coords,
        )
        return [m.astype(np.float32, copy=False) for m in masks], scores, low_res


class SAM2AutomaticMaskGenerator(AutomaticMaskGenerator):
    """The official `SAM2AutomaticMaskGenerator`; `generate` returns a list of dicts.

    `output_mode="uncompressed_rle"` is not offered; other keyword arguments are
    ignored, as upstream (so `from_pretrained` can pass builder options through).
    """

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model, points_per_side=points_per_side, points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset, mask_threshold=mask_threshold,
            box_nms_thresh=box_nms_thresh, crop_n_layers=crop_n_layers, crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio, crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            point_grids=point_grids, min_mask_region_area=min_mask_region_area,
            output_mode=output_mode,  # type: ignore[arg-type]
            use_m2m=use_m2m, multimask_output=multimask_output,
        )

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2AutomaticMaskGenerator:
        """The generator over `build_sam2_hf(model_id, **kwargs)`; both take the same kwargs, as upstream."""
        return cls(build_sam2_hf(model_id, **kwargs), **kwargs)

    def generate(self, image: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return [record.to_dict() for record in super().generate(image)]


class InferenceState(Mapping[str, Any]):
    """The official `inference_state` (opaque): one TrackingSession and what the official calls need.

    `state["num_frames"]`, `["video_height"]`, `["video_width"]`, `["obj_ids"]` and
    `["device"]` read as upstream. The session (its open video and temporary folder)
    is closed by `close()` or when the state is garbage-collected.
    """

    KEYS = ("num_frames", "video_height", "video_width", "obj_ids", "device")

    def __init__(self, session: TrackingSession, device: torch.device) -> None:
        self.session = session
        self.device = device
        self._finalizer = weakref.finalize(self, session.close)

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(f"{key!r}: masklet's inference state exposes only {', '.join(self.KEYS)}")
        session = self.session
        if key == "device":
            return self.device
        return {"num_frames": session.num_frames, "video_height": session.height,
                "video_width": session.width, "obj_ids": session.obj_ids}[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def close(self) -> None:
        self._finalizer()


def _state(inference_state: Any) -> InferenceState:
    if not isinstance(inference_state, InferenceState):
        raise SessionError(
            f"expected the inference state returned by init_state(...), got {type(inference_state).__name__}"
        )
    return inference_state


def _as_array(value: Any, *, ndim: int, what: str) -> np.ndarray:
    """An official prompt array with its optional batch axis of 1 removed."""
    array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
    if array.ndim == ndim + 1:
        if array.shape[0] != 1:
            raise PromptError(f"{what}: one object per call, got a batch of {array.shape[0]}")
        array = array[0]
    return array


class SAM2VideoPredictor:
    """The official `SAM2VideoPredictor`'s methods and return values, over masklet's `TrackingSession`.

    As upstream (unlike masklet's own `VideoPredictor`), a click or mask on a frame that
    was already tracked does not become a conditioning frame unless the config sets
    `add_all_frames_to_correct_as_cond`: the next propagation overwrites it. Masks are
    (N, 1, H, W) float32 logits at video resolution. Other attributes (`to`, `eval`,
    `state_dict`, ...) are the model's, as the official predictor is the model.
    """

    def __init__(self, model: SAM2Model, **session_options: Any) -> None:
        self.model = model
        add_all = model.config.tracking.add_all_frames_to_correct_as_cond
        self.video = VideoPredictor(model, add_all_frames_to_correct_as_cond=add_all, **session_options)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2VideoPredictor:
        """`build_sam2_video_predictor_hf(model_id, **kwargs)`, as upstream."""
        return build_sam2_video_predictor_hf(model_id, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "video"):  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.model, name)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def init_state(
        self,
        video_path: Any,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> InferenceState:
        """Open a video: a JPEG folder as upstream, or anything `VideoPredictor.start` accepts.

        The offload and async flags change nothing: frames are decoded on demand and the
        session's memory is bounded anyway.
        """
        return InferenceState(self.video.start(video_path), self.model.device)

    def add_new_points_or_box(
        self,
        inference_state: InferenceState,
        frame_idx: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> tuple[int, list[int], Tensor]:
        """Clicks and/or a box for one object on one frame; `(frame_idx, obj_ids, masks)`.

        Coordinates are video pixels, or fractions of the frame size without `normalize_coords`.
        """
        state = _state(inference_state)
        if (points is None) != (labels is None):
            raise PromptError("points and labels must be provided together")
        if points is None and box is None:
            raise PromptError("at least one of points or box must be provided as input")
        if box is not None and not clear_old_points:
            raise PromptError(
                "cannot add a box without clearing old points: a box must come before any click "
                "on a frame; pass clear_old_points=True"
            )
        if points is not None:
            points = _as_array(points, ndim=2, what="points").astype(np.float64)
            labels = _as_array(labels, ndim=1, what="labels")
        if box is not None:
            box = _as_array(box, ndim=1, what="box").astype(np.float64).reshape(-1)
        if not normalize_coords:
            scale = np.array([state.session.width, state.session.height], dtype=np.float64)
            points = None if points is None else points * scale
            box = None if box is None else (box.reshape(-1, 2) * scale).reshape(-1)
        obj_ids, logits = state.session.add_prompt(
            frame=frame_idx, obj_id=obj_id, points=points, labels=labels, box=box, clear=clear_old_points
        )
        return frame_idx, obj_ids, logits[:, None]

    def add_new_points(self, *args: Any, **kwargs: Any) -> tuple[int, list[int], Tensor]:
        """Deprecated upstream: `add_new_points_or_box`."""
        return self.add_new_points_or_box(*args, **kwargs)

    def add_new_mask(
        self, inference_state: InferenceState, frame_idx: int, obj_id: int, mask: Any
    ) -> tuple[int, list[int], Tensor]:
        """A (H, W) mask at video resolution for one object on one frame; `(frame_idx, obj_ids, masks)`."""
        state = _state(inference_state)
        obj_ids, logits = state.session.add_prompt(frame=frame_idx, obj_id=obj_id, mask=mask)
        return frame_idx, obj_ids, logits[:, None]

    def propagate_in_video(
        self,
        inference_state: InferenceState,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[int, list[int], Tensor]]:
        """Yield `(frame_idx, obj_ids, masks)` from the earliest conditioning frame (or `start_frame_idx`)."""
        state = _state(inference_state)
        if not state.session.obj_ids:
            raise SessionError(
                "No input points or masks are provided for any object; please add inputs first."
            )
        session = state.session
        cond = {obj_id: session.conditioning_frames(obj_id) for obj_id in session.obj_ids}
        for obj_id, frames in cond.items():
            if not frames:
                raise SessionError(
                    f"No input points or masks are provided for object id {obj_id}; please add inputs first."
                )
        start = start_frame_idx
        if start is None:
            start = min(min(frames) for frames in cond.values())
        if reverse and start == 0:
            return  # parity: upstream skips reverse tracking from frame 0
        # parity: upstream tracks max_frame_num_to_track frames after the start frame
        max_frames = None if max_frame_num_to_track is None else max_frame_num_to_track + 1
        for frame, obj_ids, logits in session.propagate(start, max_frames, reverse):
            yield frame, obj_ids, logits[:, None]

    def clear_all_prompts_in_frame(
        self, inference_state: InferenceState, frame_idx: int, obj_id: int, need_output: bool = True
    ) -> tuple[int, list[int], Tensor] | None:
        """Remove one object's clicks, box or mask on one frame; `(frame_idx, obj_ids, masks)` there.

        As upstream, a conditioning frame becomes a tracked frame keeping its last output
        (see `TrackingSession.clear_prompts`). An unknown `obj_id` is a SessionError
        (upstream adds an empty object, which its next propagation refuses).
        """
        obj_ids, logits = _state(inference_state).session.clear_prompts(frame_idx, obj_id)
        if not need_output:
            return None
        return frame_idx, obj_ids, logits[:, None]

    def _apply_non_overlapping_constraints(self, pred_masks: Tensor) -> Tensor:
        """(N, 1, H, W) logits: each pixel stays only with the highest-scoring object, the others
        are clamped to at most -10 (upstream's helper; `++model.non_overlap_masks=true` applies it
        to every returned mask)."""
        return non_overlapping(pred_masks)

    def reset_state(self, inference_state: InferenceState) -> None:
        """Forget every object, prompt and result; the video stays open."""
        _state(inference_state).session.reset()

    def remove_object(
        self, inference_state: InferenceState, obj_id: int, strict: bool = False, need_output: bool = True
    ) -> tuple[list[int], list[tuple[int, Tensor]]]:
        """Forget one object; `(obj_ids, [(frame_idx, masks), ...])` on the frames it had prompts on."""
        state = _state(inference_state)
        session = state.session
        if obj_id not in session.obj_ids:
            if strict:
                raise SessionError(
                    f"Cannot remove object id {obj_id} as it doesn't exist. "
                    f"All existing object ids: {session.obj_ids}."
                )
            return session.obj_ids, []
        if len(session.obj_ids) == 1:
            self.reset_state(state)
            return session.obj_ids, []
        frames = session.prompted_frames(obj_id)
        obj_ids = session.remove_object(obj_id)
        if not need_output:
            return obj_ids, []
        return obj_ids, [(frame, session.logits(frame)[1][:, None]) for frame in frames]


__all__ = [
    "InferenceState",
    "SAM2AutomaticMaskGenerator",
    "SAM2ImagePredictor",
    "SAM2VideoPredictor",
    "apply_hydra_overrides",
    "HF_MODEL_ID_TO_FILENAMES",
    "build_sam2",
    "build_sam2_hf",
    "build_sam2_video_predictor",
    "build_sam2_video_predictor_hf",
    "config_name_from_file",
]
