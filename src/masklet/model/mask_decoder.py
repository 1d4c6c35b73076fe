"""SAM mask decoder: masks, predicted IoU, object score and the tokens behind the object pointer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklet.configs import MaskDecoderConfig
from masklet.errors import ConfigError
from masklet.model.common import MLP, LayerNorm2d
from masklet.model.prompt_encoder import DenseFactors
from masklet.model.transformer import TwoWayTransformer
from masklet.model.types import DecoderOutput


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """One image as every prompt on it enters the decoder (`MaskDecoder.prepare_image`).

    tokens: the image embedding as (1, L, C) tokens, L = h * w; key_pe: its position
    encoding (1, L, C); projections: the first two-way block's projections of those tokens
    (token -> image keys and values, image -> token queries), which no prompt has touched
    yet: computed once per image, three (L x C x C/2) matmuls saved on every click.
    """

    tokens: Tensor
    key_pe: Tensor
    projections: tuple[Tensor, Tensor, Tensor]
    size: tuple[int, int]  # (h, w)


def stability_score(mask_logits: Tensor, *, delta: float) -> Tensor:
    """IoU between the masks thresholded at +delta and -delta: (..., H, W) -> (...).

    An empty mask at -delta counts as perfectly stable (1.0).
    """
    flat = mask_logits.flatten(-2)
    inner = (flat > delta).sum(dim=-1).float()
    outer = (flat > -delta).sum(dim=-1).float()
    return torch.where(outer > 0, inner / outer, 1.0)


class MaskDecoder(nn.Module):
    """Predicts masks from image embeddings and prompt embeddings with a two-way transformer.

    The decoder always predicts 1 + num_multimask_outputs candidates: candidate 0 is
    the single-mask answer, the others the ambiguity-aware multimask answers;
    `forward` selects among them.
    """

    def __init__(self, cfg: MaskDecoderConfig, *, transformer_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.transformer_dim = transformer_dim
        width = transformer_dim
        # registration order follows the official state dict
        self.transformer = TwoWayTransformer(
            width,
            depth=cfg.transformer_depth,
            num_heads=cfg.transformer_num_heads,
            mlp_dim=cfg.transformer_mlp_dim,
            attention_downsample_rate=cfg.attention_downsample_rate,
        )
        self.num_mask_tokens = cfg.num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, width)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, width)
        if cfg.pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, width)

        # (B, C, h, w) -> (B, C/8, 4h, 4w)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(width, width // 4, kernel_size=2, stride=2),
            LayerNorm2d(width // 4),
            nn.GELU(),
            nn.ConvTranspose2d(width // 4, width // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        if cfg.use_high_res_features:
            # applied by the model to the stride-4 and stride-8 backbone maps (see project_high_res)
            self.conv_s0 = nn.Conv2d(width, width // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(width, width // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(width, width, width // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            width,
            cfg.iou_head_hidden_dim,
            self.num_mask_tokens,
            cfg.iou_head_depth,
            sigmoid_output=cfg.iou_prediction_use_sigmoid,
        )
        if cfg.pred_obj_scores:
            self.pred_obj_score_head: nn.Module = (
                MLP(width, width, 1, 3) if cfg.pred_obj_scores_mlp else nn.Linear(width, 1)
            )

    def project_high_res(self, feat_s0: Tensor, feat_s1: Tensor) -> tuple[Tensor, Tensor]:
        """Project backbone maps (B, C, 4h, 4w) and (B, C, 2h, 2w) to C/8 and C/4 channels.

        The model calls this once per image, before any decoder call.
        """
        if not self.cfg.use_high_res_features:
            raise ConfigError(
                "MaskDecoder.project_high_res: this decoder was built with use_high_res_features=False "
                "and has no conv_s0/conv_s1; do not project high-res features for it"
            )
        # stored channels last: the decoder adds them to its channels-last upscaling
        return tuple(  # type: ignore[return-value]
            conv(f).contiguous(memory_format=torch.channels_last)
            for conv, f in ((self.conv_s0, feat_s0), (self.conv_s1, feat_s1))
        )

    def forward(
        self,
        *,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: tuple[Tensor, ...] | None = None,
    ) -> DecoderOutput:
        """Masks for B prompts.

        image_embeddings: (B, C, h, w), or (1, C, h, w) shared by all prompts with
        repeat_image=True; image_pe: (1, C, h, w); sparse_prompt_embeddings: (B, P, C);
        dense_prompt_embeddings: (B, C, h, w); high_res_features: projected maps
        (B or 1, C/8, 4h, 4w) and (B or 1, C/4, 2h, 2w), read only if the config uses them.
        """
        every = self._predict_all(
            image_embeddings,
            image_pe=image_pe,
            sparse=sparse_prompt_embeddings,
            dense=dense_prompt_embeddings,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
        )
        return self._select(every, multimask_output)

    def prepare_image(self, image_embedding: Tensor, image_pe: Tensor) -> PreparedImage:
        """What all prompts on one image share: see `PreparedImage`. image_embedding, image_pe: (1, C, h, w)."""
        if image_embedding.shape[0] != 1:
            raise ValueError(
                f"MaskDecoder.prepare_image: one image at a time, got a batch of {image_embedding.shape[0]}"
            )
        tokens = image_embedding.flatten(2).transpose(1, 2).contiguous()  # (1, L, C)
        key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
        projections = self.transformer.layers[0].image_projections(tokens, key_pe)
        return PreparedImage(tokens=tokens, key_pe=key_pe, projections=projections,
                             size=(image_embedding.shape[-2], image_embedding.shape[-1]))  # fmt: skip

    def forward_prepared(
        self,
        image: PreparedImage,
        *,
        sparse_prompt_embeddings: Tensor,
        dense: DenseFactors,
        multimask_output: bool,
        high_res_features: tuple[Tensor, ...] | None = None,
    ) -> DecoderOutput:
        """`forward` for B prompts on a prepared image, the dense prompt given as factors.

        The first block's image projections are the prepared ones plus the dense prompt's
        share, computed on its narrow factors: the same sums in another order (float noise).
        """
        tokens = self._tokens(sparse_prompt_embeddings)
        batch = tokens.shape[0]
        keys = image.tokens + dense.tokens()  # (1 or B, L, C)
        layers = self.transformer.layers[0].image_projection_layers()
        first = tuple(
            (p + dense.through(layer)).expand(batch, -1, -1)
            for p, layer in zip(image.projections, layers, strict=True)
        )
        if keys.shape[0] != batch:
            keys = keys.expand(batch, -1, -1)
        hs, keys = self.transformer.forward_tokens(
            keys, key_pe=image.key_pe, point_embedding=tokens, first_projections=first
        )
        return self._select(self._heads(hs, keys, image.size, high_res_features), multimask_output)

    def _select(self, every: DecoderOutput, multimask_output: bool) -> DecoderOutput:
        logits, iou = every.mask_logits, every.iou  # (B, 1 + K, 4h, 4w), (B, 1 + K)
        if multimask_output:
            logits, iou = logits[:, 1:], iou[:, 1:]
        elif self.cfg.dynamic_multimask_via_stability and not self.training:
            logits, iou = self._stable_single_mask(logits, iou)
        else:
            logits, iou = logits[:, :1], iou[:, :1]

        if multimask_output and self.cfg.use_multimask_token_for_obj_ptr:
            tokens = every.mask_tokens[:, 1:]
        else:
            # the single-mask token even when several masks were asked for: tracking was
            # trained on multi-click prompts, whose memories come from that token
            tokens = every.mask_tokens[:, :1]
        return DecoderOutput(
            mask_logits=logits, iou=iou, mask_tokens=tokens, obj_score_logits=every.obj_score_logits
        )

    def _tokens(self, sparse: Tensor) -> Tensor:
        """The learned output tokens followed by the prompt tokens: (B, T, C)."""
        # token order (fixed by the trained weights): [obj score], iou, mask tokens, prompts
        learned = [self.iou_token.weight, self.mask_tokens.weight]
        if self.cfg.pred_obj_scores:
            learned.insert(0, self.obj_score_token.weight)
        output_tokens = torch.cat(learned).unsqueeze(0).expand(sparse.shape[0], -1, -1)
        return torch.cat([output_tokens, sparse], dim=1)

    def _predict_all(
        self,
        image_embeddings: Tensor,
        *,
        image_pe: Tensor,
        sparse: Tensor,
        dense: Tensor,
        repeat_image: bool,
        high_res_features: tuple[Tensor, ...] | None,
    ) -> DecoderOutput:
        """Every candidate (single-mask first, then the K multimask ones), before selection.

        The result's M is 1 + K in every field but obj_score_logits.
        """
        tokens = self._tokens(sparse)  # (B, T, C)
        batch = tokens.shape[0]
        if repeat_image:
            image_embeddings = torch.repeat_interleave(image_embeddings, batch, dim=0)
        elif image_embeddings.shape[0] != batch:
            raise ValueError(
                f"MaskDecoder: {image_embeddings.shape[0]} image embeddings for {batch} prompts; "
                "pass one per prompt, or one image with repeat_image=True"
            )
        src = image_embeddings + dense  # (B, C, h, w)
        hs, keys = self.transformer(src, image_pe=image_pe, point_embedding=tokens)
        return self._heads(hs, keys, (src.shape[-2], src.shape[-1]), high_res_features)

    def _heads(
        self, hs: Tensor, keys: Tensor, size: tuple[int, int], high_res_features: tuple[Tensor, ...] | None
    ) -> DecoderOutput:
        """Masks, IoU and object scores from the transformer's tokens (B, T, C) and image tokens (B, L, C)."""
        iou_at = 1 if self.cfg.pred_obj_scores else 0  # the mask tokens follow the iou token
        iou_token_out = hs[:, iou_at]  # (B, C)
        mask_tokens_out = hs[:, iou_at + 1 : iou_at + 1 + self.num_mask_tokens]  # (B, 1 + K, C)
        b, (h, w) = hs.shape[0], size
        upscaled = self._upscale(keys, (h, w), high_res_features)  # (B, 4h * 4w, C/8), channels last

        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (B, 1 + K, C/8)
        mask_logits = (hyper_in @ upscaled.transpose(1, 2)).reshape(b, -1, 4 * h, 4 * w)

        iou = self.iou_prediction_head(iou_token_out)  # (B, 1 + K)
        if self.cfg.pred_obj_scores:
            obj_score_logits = self.pred_obj_score_head(hs[:, 0])  # (B, 1)
        else:
            # parity: without an object-score head the object is always present (sigmoid(10) ~ 1)
            obj_score_logits = iou.new_full((b, 1), 10.0)
        return DecoderOutput(
            mask_logits=mask_logits, iou=iou, mask_tokens=mask_tokens_out, obj_score_logits=obj_score_logits
        )

    def _upscale(
        self, tokens: Tensor, size: tuple[int, int], high_res_features: tuple[Tensor, ...] | None
    ) -> Tensor:
        """Image tokens (B, h*w, C) -> (B, 4h*4w, C/8) channels last, adding the projected skips when configured.

        The same arithmetic as `output_upscaling` applied to a (B, C, h, w) map, kept in the
        tokens' channels-last layout: each transposed convolution is one matmul and a pixel
        shuffle and the LayerNorm2d a plain layer norm over the last axis (on CPU, half the
        time of the convolution kernels and their layout copies).
        """
        up1, norm, act1, up2, act2 = self.output_upscaling
        h, w = size
        skips: tuple[Tensor | None, Tensor | None] = (None, None)
        if self.cfg.use_high_res_features:
            if high_res_features is None:
                raise ValueError(
                    "MaskDecoder: built with use_high_res_features=True but no high_res_features were given; "
                    "pass the two maps returned by project_high_res"
                )
            skips = (_channels_last_tokens(high_res_features[1]), _channels_last_tokens(high_res_features[0]))
        x = _transposed_conv_2x2(tokens, (h, w), up1)  # (B, 2h*2w, C/4)
        if skips[0] is not None:
            x = x + skips[0]
        x = act1(F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
        x = _transposed_conv_2x2(x, (2 * h, 2 * w), up2)  # (B, 4h*4w, C/8)
        if skips[1] is not None:
            x = x + skips[1]
        return act2(x)

    def _stable_single_mask(self, logits: Tensor, iou: Tensor) -> tuple[Tensor, Tensor]:
        """Candidate 0 where its mask is stable, else the multimask candidate with the best IoU.

        logits: (B, 1 + K, H, W), iou: (B, 1 + K) -> (B, 1, H, W), (B, 1).
        """
        rows = torch.arange(iou.shape[0], device=iou.device)
        best = torch.argmax(iou[:, 1:], dim=-1) + 1  # (B,) index among all candidates
        best_logits, best_iou = logits[rows, best].unsqueeze(1), iou[rows, best].unsqueeze(1)

        single_logits, single_iou = logits[:, :1], iou[:, :1]
        stable = stability_score(single_logits, delta=self.cfg.dynamic_multimask_stability_delta)
        stable = stable >= self.cfg.dynamic_multimask_stability_thresh  # (B, 1)
        return (
            torch.where(stable[..., None, None], single_logits, best_logits),
            torch.where(stable, single_iou, best_iou),
        )


def _transposed_conv_2x2(tokens: Tensor, size: tuple[int, int], conv: nn.ConvTranspose2d) -> Tensor:
    """`conv` (kernel 2, stride 2, no padding) on channels-last tokens: (B, h*w, Cin) -> (B, 2h*2w, Cout).

    Every input pixel writes its own 2x2 output block, so the layer is one matmul to
    (dy, dx, Cout) per pixel and a shuffle of those blocks into place.
    """
    cin, cout, kh, kw = conv.weight.shape
    if (kh, kw) != (2, 2) or conv.stride != (2, 2) or conv.padding != (0, 0):
        raise ValueError(f"expected a 2x2, stride-2 transposed convolution, got {conv}")
    h, w = size
    weight = conv.weight.permute(0, 2, 3, 1).reshape(cin, 4 * cout)  # columns (dy, dx, Cout)
    bias = None if conv.bias is None else conv.bias.repeat(4)
    blocks = F.linear(tokens, weight.t(), bias)  # (B, h*w, 4 * Cout)
    b = tokens.shape[0]
    return blocks.reshape(b, h, w, 2, 2, cout).permute(0, 1, 3, 2, 4, 5).reshape(b, 4 * h * w, cout)


def _channels_last_tokens(feature_map: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C); a view when the map is stored channels last."""
    b, c, hh, ww = feature_map.shape
    return feature_map.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
