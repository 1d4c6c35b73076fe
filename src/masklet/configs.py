"""The eight official SAM 2 / SAM 2.1 architectures as frozen dataclasses.

One config per module, composed into `SAM2Config`. The variants differ only in
the Hiera trunk (and, between 2.0 and 2.1, in a few tracking flags); every
switch the official builder injects behind the YAML files (stability fallback,
binarised memory masks, hole filling) is a visible field here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from masklet.errors import ConfigError


@dataclass(frozen=True, slots=True)
class HieraConfig:
    """Hierarchical ViT trunk (Hiera) of the image encoder."""

    embed_dim: int = 96  # channels of stage 1; doubled at each stage shift
    num_heads: int = 1  # heads of stage 1; doubled at each stage shift
    stages: tuple[int, ...] = (2, 3, 16, 3)  # blocks per stage
    q_pool: int = 3  # number of stage shifts that pool the queries
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)  # window size per stage
    global_att_blocks: tuple[int, ...] = (12, 16, 20)  # blocks with global attention
    patch_kernel_size: tuple[int, int] = (7, 7)
    patch_stride: tuple[int, int] = (4, 4)
    patch_padding: tuple[int, int] = (3, 3)

    def __post_init__(self) -> None:
        if len(self.stages) != len(self.window_spec):
            raise ConfigError(
                f"HieraConfig: {len(self.stages)} stages but {len(self.window_spec)} window sizes; "
                "give one window size per stage"
            )
        if not 0 <= self.q_pool <= len(self.stages) - 1:
            raise ConfigError(f"HieraConfig: q_pool={self.q_pool} must be in [0, {len(self.stages) - 1}]")
        if any(b >= self.depth for b in self.global_att_blocks):
            raise ConfigError(
                f"HieraConfig: global_att_blocks {self.global_att_blocks} reach past the {self.depth} blocks"
            )

    @property
    def depth(self) -> int:
        return sum(self.stages)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Channels of each stage's output, highest resolution first (the neck reads this)."""
        channels = [self.embed_dim]
        for _ in self.stages[1:]:
            channels.append(int(channels[-1] * self.dim_mul))  # rounded stage by stage, as upstream
        return tuple(channels)

    @property
    def stage_ends(self) -> tuple[int, ...]:
        """Index of the last block of each stage."""
        ends, total = [], 0
        for n in self.stages:
            total += n
            ends.append(total - 1)
        return tuple(ends)


@dataclass(frozen=True, slots=True)
class NeckConfig:
    """FPN neck: projects each trunk stage to `d_model` channels and fuses top-down."""

    d_model: int = 256
    fpn_top_down_levels: tuple[int, ...] = (2, 3)  # levels 0 and 1 use the trunk features directly
    fpn_interp_mode: str = "nearest"
    fuse_type: str = "sum"
    scalp: int = 1  # number of lowest-resolution levels dropped after the neck

    def __post_init__(self) -> None:
        if self.fuse_type not in ("sum", "avg"):
            raise ConfigError(f"NeckConfig: fuse_type must be 'sum' or 'avg', got {self.fuse_type!r}")


@dataclass(frozen=True, slots=True)
class MaskDecoderConfig:
    """SAM prompt encoder + two-way transformer + mask decoder heads."""

    mask_in_chans: int = 16
    num_multimask_outputs: int = 3
    transformer_depth: int = 2
    transformer_mlp_dim: int = 2048
    transformer_num_heads: int = 8
    attention_downsample_rate: int = 2
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    use_high_res_features: bool = True
    iou_prediction_use_sigmoid: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    # injected by the official builder (not in the YAML files): fall back to the
    # best multimask candidate when the single-mask output is unstable
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@dataclass(frozen=True, slots=True)
class MemoryAttentionConfig:
    """Stack of self-attention (RoPE) + cross-attention (RoPE) over the memory bank."""

    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 1
    dim_feedforward: int = 2048
    dropout: float = 0.1
    kv_in_dim: int = 64  # channels of the memory features (memory encoder out_dim)
    rope_theta: float = 10000.0
    feat_sizes: tuple[int, int] = (64, 64)  # precomputed RoPE grid; recomputed for other sizes
    pos_enc_at_input: bool = True
    pos_enc_at_attn: bool = False
    pos_enc_at_cross_attn_keys: bool = True
    pos_enc_at_cross_attn_queries: bool = False


@dataclass(frozen=True, slots=True)
class MemoryEncoderConfig:
    """Mask downsampler + fuser turning (frame features, mask) into a memory."""

    out_dim: int = 64
    in_dim: int = 256
    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2
    downsampler_padding: int = 1
    downsampler_total_stride: int = 16
    fuser_num_layers: int = 2
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    fuser_layer_scale_init_value: float = 1e-6


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    """SAM2-level switches of the per-frame tracking step (memory, pointers, multimask)."""

    num_maskmem: int = 7  # 1 conditioning slot + 6 recent frames
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    no_obj_embed_spatial: bool = True
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True
    memory_temporal_stride_for_eval: int = 1
    max_cond_frames_in_attn: int = -1  # -1: all conditioning frames
    non_overlap_masks_for_mem_enc: bool = False
    # injected by the official video builder (not in the YAML files)
    binarize_mask_from_pts_for_mem_enc: bool = True
    fill_hole_area: int = 8
    # the official default is False: a correction on a tracked frame is then
    # overwritten by the next propagation; our native session sets True
    add_all_frames_to_correct_as_cond: bool = False
    # video predictor switch: the (N, H, W) logits a session returns keep each pixel only
    # for the object with the highest logit (others clamped to -10); stored state is unchanged
    non_overlap_masks: bool = False
    # parity settings, not in the YAML files: the official predictor stores new memories in
    # bfloat16 (training keeps them float32, and gradients flow through them), and runs the
    # SAM heads one object at a time (one batch is faster to train and rounds differently)
    memory_in_bfloat16: bool = True
    heads_one_object_at_a_time: bool = True
    # speed: objects through memory attention one at a time, as the official predictor does.
    # On two CPU cores a batch costs more than single passes (8 objects, sam2.1_hiera_t:
    # 24.96 s a frame batched, 21.49 s one by one); training batches them
    memory_attention_one_object_at_a_time: bool = True

    def __post_init__(self) -> None:
        if self.num_maskmem < 1:
            raise ConfigError(f"TrackingConfig: num_maskmem must be >= 1, got {self.num_maskmem}")
        if self.proj_tpos_enc_in_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ConfigError("TrackingConfig: proj_tpos_enc_in_obj_ptrs needs add_tpos_enc_to_obj_ptrs")
        if self.use_signed_tpos_enc_to_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ConfigError("TrackingConfig: use_signed_tpos_enc_to_obj_ptrs needs add_tpos_enc_to_obj_ptrs")
        if self.fixed_no_obj_ptr and self.soft_no_obj_ptr:
            raise ConfigError("TrackingConfig: fixed_no_obj_ptr and soft_no_obj_ptr exclude each other")


@dataclass(frozen=True, slots=True)
class SAM2Config:
    """A whole SAM 2 model: image encoder, SAM heads, memory and tracking switches."""

    name: str = "sam2.1_hiera_t"
    image_size: int = 1024
    backbone_stride: int = 16
    hidden_dim: int = 256  # = neck d_model = prompt embedding dim
    hiera: HieraConfig = field(default_factory=HieraConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    mask_decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # ImageNet statistics applied to pixels in [0, 1]
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.image_size % self.backbone_stride:
            raise ConfigError(
                f"SAM2Config: image_size {self.image_size} is not a multiple of the backbone stride "
                f"{self.backbone_stride}"
            )
        if self.neck.d_model != self.hidden_dim:
            raise ConfigError(f"SAM2Config: neck d_model {self.neck.d_model} != hidden_dim {self.hidden_dim}")
        if self.memory_attention.d_model != self.hidden_dim:
            raise ConfigError("SAM2Config: memory attention d_model must equal hidden_dim")
        if self.memory_attention.kv_in_dim != self.memory_encoder.out_dim:
            raise ConfigError("SAM2Config: memory attention kv_in_dim must equal memory encoder out_dim")

    @property
    def image_embedding_size(self) -> int:
        """Side of the lowest-resolution feature map the SAM heads see (64 at 1024 input)."""
        return self.image_size // self.backbone_stride

    @property
    def mem_dim(self) -> int:
        return self.memory_encoder.out_dim

    @property
    def is_v21(self) -> bool:
        return self.name.startswith("sam2.1")


_TINY = HieraConfig(
    embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
_SMALL = HieraConfig(
    embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
_BASE_PLUS = HieraConfig(embed_dim=112, num_heads=2)
_LARGE = HieraConfig(
    embed_dim=144, num_heads=2, stages=(2, 6, 36, 4), global_att_blocks=(23, 33, 43),
    window_pos_embed_bkg_spatial_size=(7, 7), window_spec=(8, 4, 16, 8),
)
_TRUNKS = {"t": _TINY, "s": _SMALL, "b+": _BASE_PLUS, "l": _LARGE}

# SAM 2.0 lacks the spatial no-object embedding and the (projected, signed)
# temporal encoding of object pointers that 2.1 added.
_TRACKING_V20 = TrackingConfig(
    no_obj_embed_spatial=False,
    add_tpos_enc_to_obj_ptrs=False,
    proj_tpos_enc_in_obj_ptrs=False,
    use_signed_tpos_enc_to_obj_ptrs=False,
)
_TRACKING_V21 = TrackingConfig()


def _official(version: str, size: str) -> SAM2Config:
    name = f"{version}_hiera_{size}"
    tracking = _TRACKING_V21 if version == "sam2.1" else _TRACKING_V20
    return SAM2Config(name=name, hiera=_TRUNKS[size], tracking=tracking)


CONFIGS: Mapping[str, SAM2Config] = MappingProxyType(
    {cfg.name: cfg for cfg in (_official(v, s) for v in ("sam2", "sam2.1") for s in ("t", "s", "b+", "l"))}
)

# Longer spellings users type (the official checkpoint file stems and the HF names).
_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{f"{v}_hiera_{long}": f"{v}_hiera_{short}"
           for v in ("sam2", "sam2.1")
           for short, long in (("t", "tiny"), ("s", "small"), ("b+", "base_plus"), ("l", "large"))},
    }
)

_SUB_CONFIGS = {
    "hiera": HieraConfig,
    "neck": NeckConfig,
    "mask_decoder": MaskDecoderConfig,
    "memory_attention": MemoryAttentionConfig,
    "memory_encoder": MemoryEncoderConfig,
    "tracking": TrackingConfig,
}


def config_names() -> tuple[str, ...]:
    return tuple(CONFIGS)


def get_config(name: str | SAM2Config, **overrides: Any) -> SAM2Config:
    """The named official config, with top-level or nested overrides.

    Nested fields take a dict: `get_config("sam2.1_hiera_t", image_size=256,
    tracking={"fill_hole_area": 0})`.
    """
    if isinstance(name, SAM2Config):
        cfg = name
    else:
        key = _ALIASES.get(name, name)
        if key not in CONFIGS:
            raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(CONFIGS)}")
        cfg = CONFIGS[key]
    if not overrides:
        return cfg
    fields = {f.name for f in dataclasses.fields(SAM2Config)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"SAM2Config has no field {key!r}; fields: {', '.join(sorted(fields))}")
        if key in _SUB_CONFIGS and isinstance(value, Mapping):
            sub = getattr(cfg, key)
            try:
                value = dataclasses.replace(sub, **value)
            except TypeError as exc:
                raise ConfigError(f"bad override for {key}: {exc}") from exc
        changes[key] = value
    return dataclasses.replace(cfg, **changes)
