"""The `masklet` command: parse arguments, call the library, print results."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from masklet.errors import MaskletError


def _parse_floats(text: str, count: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if len(values) not in count:
        expected = " or ".join(str(c) for c in count)
        raise argparse.ArgumentTypeError(f"{what} needs {expected} numbers, got {text!r}")
    return values


def point_arg(text: str) -> tuple[float, float, int]:
    """X,Y or X,Y,LABEL (label 1 = foreground, 0 = background)."""
    values = _parse_floats(text, (2, 3), "--point")
    label = int(values[2]) if len(values) == 3 else 1
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"--point label must be 1 (foreground) or 0 (background), got {label}")
    return values[0], values[1], label


def box_arg(text: str) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = _parse_floats(text, (4,), "--box")
    return x0, y0, x1, y1


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="sam2.1_hiera_t", help="config name (see `masklet models`)")
    parser.add_argument(
        "--checkpoint", default=None,
        help="path to an official .pt file, or 'download'; without it the weights are random",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", type=int, default=None, help="override the model input size (default 1024)")


def build_model_from_args(args: argparse.Namespace) -> Any:
    from masklet.build import build_sam2

    overrides = {} if args.image_size is None else {"image_size": args.image_size}
    if args.checkpoint is None:
        print(f"note: no --checkpoint given, {args.model} has random weights", file=sys.stderr)
    return build_sam2(args.model, args.checkpoint, args.device, **overrides)


def cmd_models(args: argparse.Namespace) -> int:
    from masklet.checkpoints import list_checkpoints

    rows = [("name", "size", "cached", "url")]
    for entry in list_checkpoints(cache_dir=args.cache_dir):
        info = entry.info
        size = f"{info.size_bytes / 2**20:.0f} MiB" if info.size_bytes else "?"
        rows.append((info.config_name, size, str(entry.path) if entry.cached else "no", info.url))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from masklet.checkpoints import download_checkpoint

    path = download_checkpoint(args.name, cache_dir=args.cache_dir, progress=True)
    print(path)
    return 0


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
    print(f"mask {best + 1}/{len(scores)}: predicted IoU {scores[best]:.3f}, "
          f"{int(mask.sum())} px ({100 * mask.mean():.1f} % of the image) -> {args.out} [{elapsed:.1f} s]")
    if args.overlay:
        print(f"overlay -> {args.overlay}")
    return 0


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
    payload = {"image": str(args.image), "height": image.shape[0], "width": image.shape[1],
               "model": args.model, "masks": [r.to_dict() for r in records]}
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, out)
    print(f"{len(records)} masks -> {out} [{elapsed:.1f} s]")
    if args.overlay:
        from masklet.io.masks import decode_rle

        ordered = sorted(records, key=lambda r: r.area, reverse=True)
        masks = {i + 1: decode_rle(r.segmentation) for i, r in enumerate(ordered)}
        save_image(overlay_masks(image, masks) if masks else np.asarray(image), args.overlay)
        print(f"overlay -> {args.overlay}")
    return 0


def cmd_synth_video(args: argparse.Namespace) -> int:
    from masklet.io.formats.sav_eval import write_sav_eval_video
    from masklet.io.synthetic import make_synthetic_video, write_mp4

    if args.height % 2 or args.width % 2 or args.frames < 1 or args.objects < 1:
        raise MaskletError("--frames and --objects must be positive and --height/--width even (yuv420p video)")
    video = make_synthetic_video(args.frames, args.height, args.width, args.objects, args.seed)
    write_mp4(video.frames, args.out, fps=args.fps)
    gt = {obj_id: {t: video.mask(t, obj_id) for t in range(args.frames)} for obj_id in video.obj_ids}
    gt_dir = write_sav_eval_video(args.gt, Path(args.out).stem, gt, overwrite=True)
    print(f"{args.frames} frames {args.width}x{args.height}, {args.objects} objects -> {args.out}; "
          f"ground truth -> {gt_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="masklet", description="SAM 2 for images and videos, and its data engine")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the official models and whether their checkpoints are cached")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("download", help="download an official checkpoint into the cache")
    p.add_argument("name", help="config name, e.g. sam2.1_hiera_t")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("segment", help="segment an object in an image from clicks and/or a box")
    p.add_argument("image")
    p.add_argument("--point", type=point_arg, action="append", metavar="X,Y[,LABEL]")
    p.add_argument("--box", type=box_arg, metavar="X0,Y0,X1,Y1")
    p.add_argument("--out", required=True, help="mask PNG to write")
    p.add_argument("--overlay", default=None, help="also write the image with the mask and prompts drawn")
    p.add_argument("--multimask", action=argparse.BooleanOptionalAction, default=None,
                   help="three candidates, keep the best (default: on for a single click)")
    add_model_args(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("auto", help="segment everything in an image (automatic mask generation)")
    p.add_argument("image")
    p.add_argument("--out", required=True, help="JSON file with COCO-RLE masks")
    p.add_argument("--overlay", default=None)
    p.add_argument("--points-per-side", type=int, default=32)
    p.add_argument("--points-per-batch", type=int, default=64)
    p.add_argument("--pred-iou-thresh", type=float, default=0.8)
    p.add_argument("--stability-score-thresh", type=float, default=0.95)
    p.add_argument("--box-nms-thresh", type=float, default=0.7)
    p.add_argument("--mask-threshold", type=float, default=0.0, help="logit above which a pixel is in the mask")
    p.add_argument("--crop-n-layers", type=int, default=0)
    p.add_argument("--min-mask-region-area", type=int, default=0)
    p.add_argument("--use-m2m", action="store_true",
                   help="refine each mask once with its own low-res logits as the mask prompt")
    add_model_args(p)
    p.set_defaults(func=cmd_auto)

    p = sub.add_parser("synth-video", help="write a synthetic video of moving shapes and its ground-truth masks")
    p.add_argument("out", help="video file to write (.mp4)")
    p.add_argument("--gt", required=True, help="folder for the masks, SA-V evaluation layout")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--objects", type=int, default=2)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth_video)

    from masklet.cli_engine import add_engine_commands

    add_engine_commands(sub)
    from masklet.cli_video import add_video_commands

    add_video_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "multimask", False) is None:
        args.multimask = not args.box and len(args.point or []) == 1
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MaskletError as exc:
        print(f"masklet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
