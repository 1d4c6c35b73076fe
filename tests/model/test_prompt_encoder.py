"""Prompt encoder: token counts, label embeddings, padding, boxes, masks, official names."""

from __future__ import annotations

import pytest
import torch

from masklet.model.prompt_encoder import PromptEncoder

C, H, W, SIZE = 32, 8, 8, 128  # embed width, embedding grid, model input side


@pytest.fixture
def encoder() -> PromptEncoder:
    torch.manual_seed(0)
    enc = PromptEncoder(embed_dim=C, image_embedding_size=(H, W), input_image_size=(SIZE, SIZE), mask_in_chans=16)
    with torch.no_grad():  # non-trivial norms and biases
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return enc.eval()


def _weight(enc: PromptEncoder, label: int) -> torch.Tensor:
    return enc.point_embeddings[label].weight[0]


def test_points_get_a_padding_token_without_boxes(encoder: PromptEncoder) -> None:
    coords = torch.tensor([[[10.0, 20.0], [50.0, 60.0]], [[1.0, 2.0], [3.0, 4.0]]])  # (B=2, P=2, 2)
    labels = torch.tensor([[1, 0], [0, 1]])
    sparse, dense = encoder(points=(coords, labels), boxes=None, masks=None)
    assert sparse.shape == (2, 3, C)
    assert dense.shape == (2, C, H, W)
    # the appended padding token is exactly the "not a point" embedding
    torch.testing.assert_close(sparse[:, 2], encoder.not_a_point_embed.weight.expand(2, C), rtol=0, atol=0)


def test_explicit_padding_label_ignores_coordinates(encoder: PromptEncoder) -> None:
    coords = torch.tensor([[[10.0, 20.0], [99.0, 7.0]]])
    labels = torch.tensor([[1, -1]])
    sparse, _ = encoder(points=(coords, labels), boxes=None, masks=None)
    torch.testing.assert_close(sparse[0, 1], encoder.not_a_point_embed.weight[0], rtol=0, atol=0)


def test_label_adds_its_embedding_to_the_position_encoding(encoder: PromptEncoder) -> None:
    coords = torch.tensor([[[30.0, 40.0]]]).expand(4, 1, 2)
    labels = torch.arange(4).view(4, 1)
    sparse, _ = encoder(points=(coords, labels), boxes=None, masks=None)
    for label in range(1, 4):
        diff = sparse[label, 0] - sparse[0, 0]
        torch.testing.assert_close(diff, _weight(encoder, label) - _weight(encoder, 0), atol=1e-6, rtol=0)


def test_point_encoding_matches_dense_pe_at_cell_centres(encoder: PromptEncoder) -> None:
    # a pixel index x is encoded at x + 0.5; grid cell j's centre is at (j + 0.5) * SIZE / W pixels
    stride = SIZE / W
    i, j = 3, 5
    coords = torch.tensor([[[(j + 0.5) * stride - 0.5, (i + 0.5) * stride - 0.5]]])
    sparse, _ = encoder(points=(coords, torch.tensor([[1]])), boxes=None, masks=None)
    dense_pe = encoder.get_dense_pe()
    assert dense_pe.shape == (1, C, H, W)
    torch.testing.assert_close(sparse[0, 0] - _weight(encoder, 1), dense_pe[0, :, i, j], atol=1e-5, rtol=0)


def test_box_equals_two_labelled_corner_points(encoder: PromptEncoder) -> None:
    box = torch.tensor([[12.0, 20.0, 90.0, 100.0]])
    box_tokens, _ = encoder(points=None, boxes=box, masks=None)
    assert box_tokens.shape == (1, 2, C)  # no padding token with a box
    corners, _ = encoder(points=(box.view(1, 2, 2), torch.tensor([[2, 3]])), boxes=None, masks=None)
    torch.testing.assert_close(corners[:, :2], box_tokens, atol=1e-6, rtol=0)

    click = (torch.tensor([[[5.0, 6.0]]]), torch.tensor([[1]]))
    both, _ = encoder(points=click, boxes=box, masks=None)
    assert both.shape == (1, 3, C)  # the click, then the two corners; no padding
    torch.testing.assert_close(both[:, 1:], box_tokens, rtol=0, atol=0)


def test_no_prompt_gives_empty_sparse_and_no_mask_dense(encoder: PromptEncoder) -> None:
    sparse, dense = encoder(points=None, boxes=None, masks=None)
    assert sparse.shape == (1, 0, C)
    expected = encoder.no_mask_embed.weight.view(1, C, 1, 1).expand(1, C, H, W)
    torch.testing.assert_close(dense, expected, rtol=0, atol=0)


def test_mask_input_goes_through_the_downscaler(encoder: PromptEncoder) -> None:
    torch.manual_seed(1)
    masks = torch.randn(3, 1, 4 * H, 4 * W)
    sparse, dense = encoder(points=None, boxes=None, masks=masks)
    assert sparse.shape == (3, 0, C)
    assert dense.shape == (3, C, H, W)
    torch.testing.assert_close(dense, encoder.mask_downscaling(masks), rtol=0, atol=0)
    assert not torch.allclose(dense[0], dense[1])
    no_mask = encoder.no_mask_embed.weight.view(C, 1, 1)
    assert (dense[0] - no_mask).abs().max() > 1e-3


# Official `sam_prompt_encoder.*` names and shapes at width 256 (sam2.1_hiera_t).
OFFICIAL_PROMPT_ENCODER = {
    "pe_layer.positional_encoding_gaussian_matrix": (2, 128),
    "point_embeddings.0.weight": (1, 256),
    "point_embeddings.1.weight": (1, 256),
    "point_embeddings.2.weight": (1, 256),
    "point_embeddings.3.weight": (1, 256),
    "not_a_point_embed.weight": (1, 256),
    "mask_downscaling.0.weight": (4, 1, 2, 2),
    "mask_downscaling.0.bias": (4,),
    "mask_downscaling.1.weight": (4,),
    "mask_downscaling.1.bias": (4,),
    "mask_downscaling.3.weight": (16, 4, 2, 2),
    "mask_downscaling.3.bias": (16,),
    "mask_downscaling.4.weight": (16,),
    "mask_downscaling.4.bias": (16,),
    "mask_downscaling.6.weight": (256, 16, 1, 1),
    "mask_downscaling.6.bias": (256,),
    "no_mask_embed.weight": (1, 256),
}


def test_state_dict_names_equal_official() -> None:
    enc = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16)
    got = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert got == OFFICIAL_PROMPT_ENCODER
    assert list(got) == list(OFFICIAL_PROMPT_ENCODER)  # same order as the official state dict
