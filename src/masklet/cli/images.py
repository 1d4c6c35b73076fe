"""`masklet segment` and `masklet auto`: one object from clicks or a box, or everything in an image."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from masklet.cli.common import EXIT_OK, add_model_args, box_arg, build_model_from_args, echo, point_arg
from masklet.errors import MaskletError


def cmd_segment(args: argparse.Namespace) -> int:
    import numpy as np

    from masklet.io.images import draw_prompts, load_image, overlay_masks, save_image, save_mask_png
    from masklet.predict.image import ImagePredictor

    if not args.point and not args.box:
        raise MaskletError("give at least one --point X,Y[,LABEL] or a --box X0,Y0,X1,Y1")
    image = load_image(args.image)
    model = build_model_from_args(args)
    predictor = ImagePredictor(model)
    start = time.perf_counter()
    predictor.set_image(image)
    coords = labels = None
    if args.point:
        coords = np.array([[x, y] for x, y, _ in args.point], dtype=np.float32)
        labels = np.array([label for _, _, label in args.point], dtype=np.int32)
    box = np.array(args.box, dtype=np.float32) if args.box else None
    masks, scores, _ = predictor.predict(
        point_coords=coords, point_labels=labels, box=box, multimask_output=args.multimask
    )
    best = int(np.argmax(scores))
    mask = masks[best]
    save_mask_png(mask, args.out)
    if args.overlay:
        picture = overlay_masks(image, {1: mask})
        picture = draw_prompts(picture, list(args.point or []), [tuple(args.box)] if args.box else [])
        save_image(picture, args.overlay)
    elapsed = time.perf_counter() - start
    echo(
        f"mask {best + 1}/{len(scores)}: predicted IoU {scores[best]:.3f}, "
        f"{int(mask.sum())} px ({100 * mask.mean():.1f} % of the image) -> {args.out} [{elapsed:.1f} s]"
    )
    if args.overlay:
        echo(f"overlay -> {args.overlay}")
    return EXIT_OK


def cmd_auto(args: argparse.Namespace) -> int:
    import numpy as np

    from masklet.io.images import load_image, overlay_masks, save_image
    from masklet.predict.automatic import AutomaticMaskGenerator

    image = load_image(args.image)
    model = build_model_from_args(args)
    generator = AutomaticMaskGenerator(
        model,
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        box_nms_thresh=args.box_nms_thresh,
        mask_threshold=args.mask_threshold,
        crop_n_layers=args.crop_n_layers,
        min_mask_region_area=args.min_mask_region_area,
        use_m2m=args.use_m2m,
        output_mode="coco_rle",
        progress=True,
    )
    start = time.perf_counter()
    records = generator.generate(image)
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    payload = {
        "image": str(args.image),
        "height": image.shape[0],
        "width": image.shape[1],
        "model": args.model,
        "masks": [r.to_dict() for r in records],
    }
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, out)
    echo(f"{len(records)} masks -> {out} [{elapsed:.1f} s]")
    if args.overlay:
        from masklet.io.masks import decode_rle

        ordered = sorted(records, key=lambda r: r.area, reverse=True)
        masks = {i + 1: decode_rle(r.segmentation) for i, r in enumerate(ordered)}
        save_image(overlay_masks(image, masks) if masks else np.asarray(image), args.overlay)
        echo(f"overlay -> {args.overlay}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("segment", help="segment an object in an image from clicks and/or a box")
    p.add_argument("image")
    p.add_argument("--point", type=point_arg, action="append", metavar="X,Y[,LABEL]")
    p.add_argument("--box", type=box_arg, metavar="X0,Y0,X1,Y1")
    p.add_argument("--out", required=True, help="mask PNG to write")
    p.add_argument("--overlay", default=None, help="also write the image with the mask and prompts drawn")
    p.add_argument(
        "--multimask",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="three candidates, keep the best (default: on for a single click)",
    )
    add_model_args(p)
    p.set_defaults(func=cmd_segment)

    p = subparsers.add_parser("auto", help="segment everything in an image (automatic mask generation)")
    p.add_argument("image")
    p.add_argument("--out", required=True, help="JSON file with COCO-RLE masks")
    p.add_argument("--overlay", default=None)
    p.add_argument("--points-per-side", type=int, default=32)
    p.add_argument("--points-per-batch", type=int, default=64)
    p.add_argument("--pred-iou-thresh", type=float, default=0.8)
    p.add_argument("--stability-score-thresh", type=float, default=0.95)
    p.add_argument("--box-nms-thresh", type=float, default=0.7)
    p.add_argument(
        "--mask-threshold", type=float, default=0.0, help="logit above which a pixel is in the mask"
    )
    p.add_argument("--crop-n-layers", type=int, default=0)
    p.add_argument("--min-mask-region-area", type=int, default=0)
    p.add_argument(
        "--use-m2m",
        action="store_true",
        help="refine each mask once with its own low-res logits as the mask prompt",
    )
    add_model_args(p)
    p.set_defaults(func=cmd_auto)
