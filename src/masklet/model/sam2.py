"""`SAM2Model`: the SAM 2 modules composed, with the image-path entry points.

The model holds weights and config only; no call mutates it. Session state
(memory banks, prompts, results) lives in `masklet.predict`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from masklet.configs import SAM2Config, TrackingConfig
from masklet.model import tracking
from masklet.model.common import MLP
from masklet.model.mask_decoder import MaskDecoder, PreparedImage
from masklet.model.memory_attention import MemoryAttention
from masklet.model.memory_encoder import MemoryEncoder
from masklet.model.neck import ImageEncoder
from masklet.model.prompt_encoder import PromptEncoder
from masklet.model.types import DecoderOutput, ImageFeatures, MemoryInputs, StepOutput


class SAM2Model(nn.Module):
    """SAM 2: image encoder, prompt encoder, mask decoder, memory encoder and attention."""

    def __init__(self, cfg: SAM2Config) -> None:
        super().__init__()
        self.config = cfg
        hidden, mem_dim = cfg.hidden_dim, cfg.mem_dim
        track = cfg.tracking

        self.image_encoder = ImageEncoder(cfg.hiera, cfg.neck)
        if track.use_obj_ptrs_in_encoder:
            # downsamples a full-size mask prompt to low-res logits when the mask is used as output
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = MemoryAttention(cfg.memory_attention)
        self.memory_encoder = MemoryEncoder(cfg.memory_encoder)

        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(track.num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            nn.init.trunc_normal_(p, std=0.02)

        side = cfg.image_embedding_size
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=hidden,
            image_embedding_size=(side, side),
            input_image_size=(cfg.image_size, cfg.image_size),
            mask_in_chans=cfg.mask_decoder.mask_in_chans,
        )
        self.sam_mask_decoder = MaskDecoder(cfg.mask_decoder, transformer_dim=hidden)

        if not track.use_obj_ptrs_in_encoder:
            self.obj_ptr_proj: nn.Module = nn.Identity()
        elif track.use_mlp_for_obj_ptr_proj:
            self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3)
        else:
            self.obj_ptr_proj = nn.Linear(hidden, hidden)
        # projects the temporal encoding of object pointers down to the memory width
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(hidden, mem_dim) if track.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        if cfg.mask_decoder.pred_obj_scores and track.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
            nn.init.trunc_normal_(self.no_obj_ptr, std=0.02)
        if track.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim))
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_image(self, pixels: Tensor) -> ImageFeatures:
        """Backbone features of normalised images (B, 3, S, S), S = config.image_size."""
        out = self.image_encoder(pixels)
        fpn = list(out.backbone_fpn)
        if self.config.mask_decoder.use_high_res_features:
            # the decoder's high-res skips read projected maps; project once here
            fpn[0], fpn[1] = self.sam_mask_decoder.project_high_res(fpn[0], fpn[1])
        return ImageFeatures(backbone_fpn=tuple(fpn), vision_pos_enc=tuple(out.vision_pos_enc))

    def image_embedding(self, features: ImageFeatures) -> Tensor:
        """Lowest-resolution features as the image path sees them: (B, C, h, w).

        Without memory, SAM 2 adds the learned "no memory" embedding to every position.
        """
        embed = features.vision_features
        if self.config.tracking.directly_add_no_mem_embed:
            embed = embed + self.no_mem_embed.view(1, -1, 1, 1)
        return embed

    def predict_masks(
        self,
        image_embed: Tensor,
        high_res_features: tuple[Tensor, ...] | None,
        *,
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_input: Tensor | None = None,
        multimask_output: bool,
        repeat_image: bool = False,
        prepared: PreparedImage | None = None,
    ) -> DecoderOutput:
        """Run the prompt encoder and mask decoder on one image's features.

        prepared: `prepare_image(image_embed)`, for the cheaper path of an image prompted
        many times (interactive clicks, automatic masks); then repeat_image is implied.

        image_embed: (1 or B, C, h, w); point_coords: (B, P, 2) in model-input pixels
        (boxes enter as two corner points labelled 2 and 3, before the clicks);
        point_labels: (B, P) int; mask_input: (B, 1, 4h, 4w) logits.
        """
        points = None if point_coords is None else (point_coords, point_labels)
        high_res = high_res_features if self.config.mask_decoder.use_high_res_features else None
        if prepared is not None:
            if point_coords is None and mask_input is None:
                raise ValueError("predict_masks: a prepared image needs points or a mask prompt")
            # masks only for the batch size when no points give it; the dense prompt goes as factors
            sparse, _ = self.sam_prompt_encoder(
                points=points, boxes=None, masks=mask_input if points is None else None
            )
            return self.sam_mask_decoder.forward_prepared(
                prepared, sparse_prompt_embeddings=sparse, dense=self.sam_prompt_encoder.dense_factors(mask_input),
                multimask_output=multimask_output, high_res_features=high_res,
            )  # fmt: skip
        sparse, dense = self.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        return self.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=repeat_image,
            high_res_features=high_res,
        )

    def prepare_image(self, image_embed: Tensor) -> PreparedImage:
        """One image's embedding (1, C, h, w) made ready for many `predict_masks(prepared=...)` calls."""
        return self.sam_mask_decoder.prepare_image(image_embed, self.sam_prompt_encoder.get_dense_pe())

    def track(
        self,
        features: ImageFeatures,
        *,
        memory: MemoryInputs | Sequence[MemoryInputs] | None,
        num_objects: int = 1,
        point_coords: Tensor | None = None,
        point_labels: Tensor | None = None,
        mask: Tensor | None = None,
        prev_logits: Tensor | None = None,
        config: TrackingConfig | None = None,
    ) -> StepOutput:
        """One tracking step for N objects on one frame (see `masklet.model.tracking.track_step`).

        `config` replaces the model's tracking switches (a session's inference settings).
        """
        return tracking.track_step(
            self,
            config or self.config.tracking,
            features,
            memory=memory,
            num_objects=num_objects,
            point_coords=point_coords,
            point_labels=point_labels,
            mask=mask,
            prev_logits=prev_logits,
        )

    def encode_memory(
        self,
        features: ImageFeatures,
        high_res_logits: Tensor,
        obj_score_logits: Tensor,
        *,
        from_points: bool,
        config: TrackingConfig | None = None,
    ) -> Tensor:
        """New spatial memories (N, Cm, h, w) from (N, 1, S, S) mask logits (bfloat16 in parity mode)."""
        return tracking.encode_memory(
            self,
            config or self.config.tracking,
            features,
            high_res_logits,
            obj_score_logits,
            from_points=from_points,
        )
