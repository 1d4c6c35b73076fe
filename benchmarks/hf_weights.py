"""The official parameter names as Hugging Face's Sam2VideoModel names them (benchmarks only).

transformers converts Meta's checkpoints with `convert_sam2_video_to_hf.py` in its repository
(not in the wheel). The renames below are that script's, restated as data: plain substring
replacements applied in order, then the index-based renames of its small MLPs and convolution
stacks, then its two merged entries (the four point embeddings as one table; the dense
positional matrix shared with the image embedding). HF's strict load proves the mapping complete.
Only the benchmarks use it; masklet itself never touches transformers.
"""

from __future__ import annotations

import re

import torch

SUBSTRINGS = (
    ("iou_prediction_head.layers.0", "iou_prediction_head.proj_in"),
    ("iou_prediction_head.layers.1", "iou_prediction_head.layers.0"),
    ("iou_prediction_head.layers.2", "iou_prediction_head.proj_out"),
    ("mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"),
    ("mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"),
    ("mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("dwconv", "depthwise_conv"),
    ("pwconv", "pointwise_conv"),
    ("fuser", "memory_fuser"),
    ("point_embeddings", "point_embed"),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"),
    ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("sam_mask_decoder", "mask_decoder"),
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("gamma", "scale"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("image_encoder", "vision_encoder.backbone"),
    ("neck.0", "neck.conv1"),
    ("neck.1", "neck.layer_norm1"),
    ("neck.2", "neck.conv2"),
    ("neck.3", "neck.layer_norm2"),
    ("pix_feat_proj", "feature_projection"),
    ("patch_embed.proj", "patch_embed.projection"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("obj_ptr", "object_pointer"),
    (".norm", ".layer_norm"),
    ("trunk.", ""),
    ("out_proj", "o_proj"),
)
TWO_LAYER_MLPS = (
    re.compile(r"^(vision_encoder\.backbone\.blocks\.\d+\.mlp\.)layers\.([01])\."),
    re.compile(r"^(mask_decoder\.transformer\.layers\.\d+\.mlp\.)layers\.([01])\."),
)
THREE_LAYER_MLPS = (
    re.compile(r"^(mask_decoder\.pred_obj_score_head\.)layers\.([012])\."),
    re.compile(r"^(.*\.output_hypernetworks_mlps\.\d+\.)layers\.([012])\."),
    re.compile(r"^(object_pointer_proj\.)layers\.([012])\."),
)
NECK_CONV = re.compile(r"^(vision_encoder\.neck\.convs\.\d+)\.conv\.")
MASK_DOWNSAMPLER = re.compile(r"^(memory_encoder\.mask_downsampler\.)encoder\.(\d+)\.")


def hf_name(name: str) -> str:
    for old, new in SUBSTRINGS:
        name = name.replace(old, new)
    for pattern in TWO_LAYER_MLPS:
        name = pattern.sub(lambda m: f"{m[1]}{('proj_in', 'proj_out')[int(m[2])]}.", name)
    for pattern in THREE_LAYER_MLPS:
        name = pattern.sub(lambda m: f"{m[1]}{('proj_in', 'layers.0', 'proj_out')[int(m[2])]}.", name)
    name = NECK_CONV.sub(r"\1.", name)
    name = name.replace("memory_encoder.o_proj.", "memory_encoder.projection.")

    def downsampler(m: re.Match) -> str:
        index = int(m[2])
        if index == 12:
            return f"{m[1]}final_conv."
        return f"{m[1]}layers.{index // 3}.{('conv', 'layer_norm')[index % 3]}."

    return MASK_DOWNSAMPLER.sub(downsampler, name)


def to_hf_state_dict(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official-named state dict under HF's names (values shared, not copied)."""
    out = {hf_name(k): v for k, v in official.items()}
    out["shared_image_embedding.positional_embedding"] = out["prompt_encoder.shared_embedding.positional_embedding"]
    out["prompt_encoder.point_embed.weight"] = torch.cat(
        [out.pop(f"prompt_encoder.point_embed.{i}.weight") for i in range(4)], dim=0
    )
    return out


def hf_video_config(model: str):
    """transformers' Sam2VideoConfig of an official architecture name (as its conversion script builds it)."""
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    if model.endswith("hiera_t"):
        vision = Sam2VisionConfig(backbone_config=Sam2HieraDetConfig())
    elif model.endswith("hiera_s"):
        vision = Sam2VisionConfig(backbone_config=Sam2HieraDetConfig(
            blocks_per_stage=[1, 2, 11, 2], global_attention_blocks=[7, 10, 13]))  # fmt: skip
    elif model.endswith("hiera_b+"):
        backbone = Sam2HieraDetConfig(
            hidden_size=112, embed_dim_per_stage=[112, 224, 448, 896], num_attention_heads_per_stage=[2, 4, 8, 16],
            blocks_per_stage=[2, 3, 16, 3], global_attention_blocks=[12, 16, 20],
            window_positional_embedding_background_size=[14, 14],
        )  # fmt: skip
        vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[896, 448, 224, 112])
    elif model.endswith("hiera_l"):
        backbone = Sam2HieraDetConfig(
            hidden_size=144, embed_dim_per_stage=[144, 288, 576, 1152], num_attention_heads_per_stage=[2, 4, 8, 16],
            blocks_per_stage=[2, 6, 36, 4], global_attention_blocks=[23, 33, 43],
            window_positional_embedding_background_size=[7, 7], window_size_per_stage=[8, 4, 16, 8],
        )  # fmt: skip
        vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[1152, 576, 288, 144])
    else:
        raise ValueError(f"no Hugging Face configuration for {model}")
    v21 = model.startswith("sam2.1")
    return Sam2VideoConfig(vision_config=vision, enable_temporal_pos_encoding_for_object_pointers=v21,
                           enable_occlusion_spatial_embedding=v21)  # fmt: skip
