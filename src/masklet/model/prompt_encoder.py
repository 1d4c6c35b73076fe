"""SAM prompt encoder: points and boxes to sparse tokens, a mask to a dense map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklet.model.common import LayerNorm2d
from masklet.model.positional import PositionEmbeddingRandom

# Point labels understood by the encoder.
PAD_LABEL = -1  # no point: replaced by `not_a_point_embed`
BACKGROUND_LABEL = 0
FOREGROUND_LABEL = 1
BOX_TOP_LEFT_LABEL = 2
BOX_BOTTOM_RIGHT_LABEL = 3


@dataclass(frozen=True, slots=True)
class DenseFactors:
    """A dense prompt (B, C, h, w) written as `features @ weight.T + bias` per grid position.

    A mask prompt ends in a 1x1 convolution from 16 channels, and "no mask" is one vector,
    so a linear map of the dense prompt (the decoder's first projections) can be applied
    to these factors: 16 or 0 channels wide instead of C.
    features: (B, K, h, w) or None (the prompt is `bias` everywhere); weight: (C, K); bias: (C,).
    """

    features: Tensor | None
    weight: Tensor | None
    bias: Tensor | None

    def tokens(self) -> Tensor:
        """The dense prompt as (B or 1, h*w or 1, C) tokens (broadcastable over image tokens)."""
        if self.features is None or self.weight is None:
            if self.bias is None:
                raise ValueError("DenseFactors: no features and no bias")
            return self.bias[None, None]
        flat = self.features.flatten(2).transpose(1, 2)  # (B, L, K)
        return F.linear(flat, self.weight, self.bias)

    def through(self, linear: nn.Linear) -> Tensor:
        """`linear`'s weight applied to the dense prompt (its bias left out): (B or 1, L or 1, out)."""
        weight = linear.weight
        shift = None if self.bias is None else self.bias @ weight.t()
        if self.features is None or self.weight is None:
            if shift is None:
                raise ValueError("DenseFactors: no features and no bias")
            return shift[None, None]
        return F.linear(self.features.flatten(2).transpose(1, 2), weight @ self.weight, shift)


class PromptEncoder(nn.Module):
    """Embeds clicks, boxes and a low-resolution mask for the mask decoder.

    Sparse prompts (points, box corners) become one token each: a random-Fourier
    encoding of the position plus a learned embedding of the label. A mask prompt
    becomes a dense (C, h, w) map added to the image embedding; without one a
    learned "no mask" vector is broadcast over the grid.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)  # (h, w) of the image embedding
        self.input_image_size = tuple(input_image_size)  # (H, W) of the model input, in pixels
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)

        # one embedding per label 0..3: background, foreground, box top-left, box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)

        # (B, 1, 4h, 4w) -> (B, C, h, w): two stride-2 convs, then a 1x1 to the embedding width
        hidden = mask_in_chans // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, hidden, kernel_size=2, stride=2),
            LayerNorm2d(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:
        """(1, C, h, w) position encoding of the image-embedding grid."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def forward(
        self,
        *,
        points: tuple[Tensor, Tensor] | None,
        boxes: Tensor | None,
        masks: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Sparse (B, P, C) and dense (B, C, h, w) prompt embeddings.

        points: coordinates (B, P, 2) as (x, y) in model-input pixels and labels
        (B, P) (1 fg, 0 bg, 2/3 box corners, -1 padding). Without boxes a padding
        point is appended. boxes: (B, 4) as x0, y0, x1, y1 in model-input pixels.
        masks: (B, 1, 4h, 4w) mask logits. B is taken from the first prompt given.
        """
        batch = self._batch_size(points, boxes, masks)
        tokens: list[Tensor] = []
        if points is not None:
            coords, labels = points
            tokens.append(self._embed_points(coords, labels, pad=boxes is None))
        if boxes is not None:
            tokens.append(self._embed_boxes(boxes))
        weight = self.no_mask_embed.weight
        if tokens:
            sparse = torch.cat(tokens, dim=1)  # (B, P, C)
        else:
            sparse = weight.new_empty((batch, 0, self.embed_dim))

        if masks is not None:
            dense = self.mask_downscaling(masks)  # (B, C, h, w)
        else:
            h, w = self.image_embedding_size
            dense = weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse, dense

    def dense_factors(self, masks: Tensor | None) -> DenseFactors:
        """The dense prompt of `forward` as an affine map of narrow features (see `DenseFactors`).

        masks: (B, 1, 4h, 4w) logits, or None for the learned "no mask" vector.
        """
        if masks is None:
            return DenseFactors(features=None, weight=None, bias=self.no_mask_embed.weight[0])
        *narrowing, last = self.mask_downscaling
        if not isinstance(last, nn.Conv2d) or last.kernel_size != (1, 1):
            raise TypeError(f"PromptEncoder: the mask path must end in a 1x1 convolution, not {last}")
        features = masks
        for layer in narrowing:
            features = layer(features)
        return DenseFactors(features=features, weight=last.weight[:, :, 0, 0], bias=last.bias)

    def _embed_points(self, coords: Tensor, labels: Tensor, *, pad: bool) -> Tensor:
        """(B, P, 2) pixel coordinates and (B, P) labels -> (B, P', C) tokens."""
        coords = coords + 0.5  # pixel index -> pixel centre
        if pad:
            # the padding point's position is irrelevant: its encoding is replaced below
            batch = coords.shape[0]
            coords = torch.cat([coords, coords.new_zeros((batch, 1, 2))], dim=1)
            labels = torch.cat([labels, labels.new_full((batch, 1), PAD_LABEL)], dim=1)
        embedding = self.pe_layer.forward_with_coords(coords, self.input_image_size)  # (B, P, C)

        labels = labels[..., None]  # (B, P, 1)
        embedding = torch.where(labels == PAD_LABEL, self.not_a_point_embed.weight, embedding)
        for label, table in enumerate(self.point_embeddings):
            embedding = torch.where(labels == label, embedding + table.weight, embedding)
        return embedding

    def _embed_boxes(self, boxes: Tensor) -> Tensor:
        """(B, 4) boxes -> (B, 2, C) corner tokens."""
        corners = boxes.reshape(-1, 2, 2) + 0.5  # (B, 2, 2): pixel centres of the two corners
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_labels = torch.cat(
            [self.point_embeddings[BOX_TOP_LEFT_LABEL].weight, self.point_embeddings[BOX_BOTTOM_RIGHT_LABEL].weight]
        )  # (2, C)
        return embedding + corner_labels

    @staticmethod
    def _batch_size(points: tuple[Tensor, Tensor] | None, boxes: Tensor | None, masks: Tensor | None) -> int:
        if points is not None:
            return points[0].shape[0]
        if boxes is not None:
            return boxes.shape[0]
        if masks is not None:
            return masks.shape[0]
        return 1
