"""The prepared-image decoder path (interactive clicks) equals the plain one.

`SAM2Model.prepare_image` computes the first two-way block's image projections once and
adds each prompt's dense share on its narrow factors; the masks, IoU and object scores
must not notice.
"""

from __future__ import annotations

import pytest
import torch

from masklet.build import build_sam2

SIZE = 256  # 16 x 16 embedding grid


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_sam2("sam2.1_hiera_t", image_size=SIZE)
    with torch.no_grad():  # the no-mask embedding and the mask path's last bias are learned, not zero
        m.sam_prompt_encoder.no_mask_embed.weight.normal_()
        m.sam_prompt_encoder.mask_downscaling[-1].bias.normal_()
    return m


def _image(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    embed = torch.randn(1, 256, SIZE // 16, SIZE // 16, generator=g)
    high_res = (
        torch.randn(1, 32, SIZE // 4, SIZE // 4, generator=g),
        torch.randn(1, 64, SIZE // 8, SIZE // 8, generator=g),
    )
    return embed, high_res


CASES = {
    "one click": dict(points=[[[40.0, 60.0]]], labels=[[1]], mask=False, multimask=True),
    "clicks and the last mask": dict(
        points=[[[40.0, 60.0], [200.0, 90.0]]], labels=[[1, 0]], mask=True, multimask=False
    ),
    "a box and a click": dict(
        points=[[[10.0, 20.0], [150.0, 170.0], [80.0, 80.0]]], labels=[[2, 3, 1]], mask=False, multimask=False
    ),
    "three prompt sets at once": dict(
        points=[[[40.0, 60.0]], [[100.0, 30.0]], [[220.0, 240.0]]],
        labels=[[1], [1], [0]],
        mask=True,
        multimask=True,
    ),
    "a mask alone": dict(points=None, labels=None, mask=True, multimask=False),
    "two masks alone": dict(points=None, labels=None, mask=True, multimask=True, batch=2),
}


@pytest.mark.parametrize("case", CASES)
@torch.inference_mode()
def test_prepared_path_equals_the_plain_one(model, case: str) -> None:
    spec = CASES[case]
    embed, high_res = _image()
    coords = None if spec["points"] is None else torch.tensor(spec["points"])
    labels = None if spec["labels"] is None else torch.tensor(spec["labels"], dtype=torch.int32)
    batch = spec.get("batch", 1) if coords is None else coords.shape[0]
    mask = (
        4 * torch.randn(batch, 1, SIZE // 4, SIZE // 4, generator=torch.Generator().manual_seed(3))
        if spec["mask"]
        else None
    )
    args = dict(point_coords=coords, point_labels=labels, mask_input=mask, multimask_output=spec["multimask"],
                repeat_image=batch > 1)  # fmt: skip
    plain = model.predict_masks(embed, high_res, **args)
    fast = model.predict_masks(embed, high_res, **args, prepared=model.prepare_image(embed))
    for name in ("mask_logits", "iou", "mask_tokens", "obj_score_logits"):
        torch.testing.assert_close(
            getattr(fast, name), getattr(plain, name), rtol=0, atol=2e-4, msg=lambda m, name=name: f"{name}: {m}"
        )
    assert plain.mask_logits.abs().mean() > 1e-2  # the comparison is not between zeros


def test_prepared_image_takes_one_image(model) -> None:
    embed, _ = _image()
    with pytest.raises(ValueError, match="one image at a time"):
        model.prepare_image(embed.expand(2, -1, -1, -1))
