"""Record the official SAM2ImagePredictor's outputs under seeded weights, for masklet's parity tests.

Runs only in the oracle venv (sam2==1.1.0), from the repository root:
    /work/refenv/bin/python tools/parity/image_fixtures.py            # both models (~2-5 min on 2 cores)
    /work/refenv/bin/python tools/parity/image_fixtures.py --models sam2.1_hiera_t

Writes tests/data/parity/image_<model>_<image>.npz (set_image + predict scenarios),
tests/data/parity/image_<model>_batch.npz (set_image_batch + predict_batch) and
tests/data/parity/image_manifest.json. tools/parity/README.md documents every array.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seeded_weights as sw  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tests" / "data" / "parity"
IMAGE_DIR = REPO / "tests" / "data" / "images"
CONFIGS = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2_hiera_b+": "configs/sam2/sam2_hiera_b+.yaml",
}
IMAGES = ("truck", "groceries")

SUB = 4  # low-res logits are stored as logits[..., ::SUB, ::SUB] (64 x 64) ...
CROP = (slice(112, 144), slice(112, 144))  # ... plus one exact 32 x 32 window in the middle
MASK_INPUT_STEP = 8  # mask_input = round(logits * 8) / 8 as float16: exact, and compresses
FEAT_SLICE = (0, slice(0, 8), slice(0, 8), slice(0, 8))  # [0, :8, :8, :8] of a (B, C, H, W) map

# Prompts in original-image pixels (x, y). Truck's come from the official notebook; groceries'
# use fractional coordinates on purpose (the scaling must be float).
PROMPTS: dict[str, dict[str, Any]] = {
    "truck": {
        "click": ([[500, 375]], [1]),
        "clicks": ([[500, 375], [1125, 625], [1500, 300]], [1, 1, 0]),
        "box": [425, 600, 700, 875],
        "box_clicks": ([425, 600, 700, 875], [[575, 750]], [0]),
        "boxes": [[75, 275, 1725, 850], [425, 600, 700, 875], [1375, 550, 1650, 800]],
    },
    "groceries": {
        "click": ([[412.5, 263.25]], [1]),
        "clicks": ([[412.5, 263.25], [230.0, 150.5], [700.0, 90.0]], [1, 1, 0]),
        "box": [120.5, 80.0, 520.0, 400.25],
        "box_clicks": ([120.5, 80.0, 520.0, 400.25], [[300.0, 250.0], [150.0, 100.0]], [1, 0]),
        "boxes": [[50, 50, 300, 300], [320.5, 100, 780, 500], [10, 300, 400, 530]],
    },
}


def load_rgb(name: str) -> np.ndarray:
    """Exactly what the official predictor was given: np.array(PIL.Image.open(path).convert("RGB"))."""
    return np.array(Image.open(IMAGE_DIR / f"{name}.jpg").convert("RGB"))


def f32(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def stats(prefix: str, t: torch.Tensor, out: dict[str, np.ndarray]) -> None:
    """mean, std, per-channel spatial mean and the [0, :8, :8, :8] corner of a (B, C, H, W) map."""
    out[f"{prefix}.mean"] = f32(t.mean().item())
    out[f"{prefix}.std"] = f32(t.std().item())
    out[f"{prefix}.channel_mean"] = f32(t[0].mean(dim=(1, 2)))
    out[f"{prefix}.slice"] = f32(t[FEAT_SLICE])


class Probe:
    """Hooks on the official modules that capture intermediates the predictor does not return."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seen: dict[str, Any] = {}
        model.image_encoder.trunk.register_forward_hook(lambda m, i, o: self.seen.__setitem__("trunk", o))
        model.image_encoder.neck.register_forward_hook(lambda m, i, o: self.seen.__setitem__("neck", o[0]))
        model.sam_prompt_encoder.register_forward_hook(lambda m, i, o: self.seen.__setitem__("prompt", o))
        decoder = model.sam_mask_decoder
        raw = decoder.predict_masks

        def predict_masks(*args: Any, **kwargs: Any) -> Any:
            out = raw(*args, **kwargs)  # all 4 tokens: masks, iou, tokens, object score
            self.seen["iou_all"] = out[1]
            self.seen["object_score"] = out[3]
            self.seen["stability0"] = decoder._get_stability_scores(out[0][:, 0:1])[:, 0]
            return out

        decoder.predict_masks = predict_masks


def encoder_features(
    pred: Any, probe: Probe, image: np.ndarray, idx: int, out: dict[str, np.ndarray]
) -> None:
    """Intermediates of one image of the last set_image(_batch) call, under 'features.*'."""
    x = pred._transforms(image)[None]  # the same transform set_image applied: (1, 3, 1024, 1024)
    out["features.input.channel_mean"] = f32(x[0].mean(dim=(1, 2)))
    out["features.input.channel_std"] = f32(x[0].std(dim=(1, 2)))
    out["features.input.slice"] = f32(x[0, :, 500:508, 500:508])
    for level, t in enumerate(probe.seen["trunk"]):
        stats(f"features.trunk{level}", t[idx : idx + 1], out)
    for level, t in enumerate(probe.seen["neck"]):
        stats(f"features.neck{level}", t[idx : idx + 1], out)
    stats("features.image_embed", pred._features["image_embed"][idx : idx + 1], out)
    for level, t in enumerate(pred._features["high_res_feats"]):
        stats(f"features.high_res{level}", t[idx : idx + 1], out)


def mask_stride(hw: tuple[int, ...]) -> int:
    """Full-res masks are stored on every k-th row and column, k the smallest keeping width <= 1000."""
    return -(-max(hw) // 1000)


def record(
    name: str, result: tuple, probe: Probe, prompt: dict[str, Any], out: dict[str, np.ndarray]
) -> dict:
    """Store one predict(...) call under '<name>.*'; returns its manifest entry."""
    masks, iou, low_res = (np.asarray(r) for r in result)
    k = mask_stride(masks.shape[-2:])
    for key, value in prompt.items():
        if value is not None and key != "multimask_output":
            out[f"{name}.{key}"] = value
    out[f"{name}.multimask_output"] = np.asarray(prompt["multimask_output"])
    out[f"{name}.low_res_sub"] = f32(low_res[..., ::SUB, ::SUB])
    out[f"{name}.low_res_crop"] = f32(low_res[(..., *CROP)])
    out[f"{name}.low_res_mean"] = f32(low_res.mean(axis=(-2, -1)))
    out[f"{name}.low_res_std"] = f32(low_res.std(axis=(-2, -1)))
    out[f"{name}.iou"] = f32(iou)
    out[f"{name}.masks_packed"] = np.packbits(masks[..., ::k, ::k].astype(bool), axis=-1)
    out[f"{name}.mask_shape"] = np.asarray(masks.shape, dtype=np.int64)  # full size, before the stride
    out[f"{name}.mask_stride"] = np.asarray(k, dtype=np.int64)
    cover = masks.astype(bool).mean(axis=(-2, -1))
    out[f"{name}.cover"] = cover.astype(np.float64)
    sparse, dense = probe.seen["prompt"]
    out[f"{name}.sparse_embeddings"] = f32(sparse)
    out[f"{name}.dense_slice"] = f32(dense[FEAT_SLICE])
    out[f"{name}.dense_mean"] = f32(dense.mean().item())
    out[f"{name}.iou_all_tokens"] = f32(probe.seen["iou_all"])
    out[f"{name}.object_score"] = f32(probe.seen["object_score"])
    out[f"{name}.stability0"] = f32(probe.seen["stability0"])

    def rounded(x: Any) -> list:
        return np.round(np.asarray(x, dtype=np.float64), 4).tolist()

    return {
        "mask_shape": list(masks.shape),
        "mask_stride": k,
        "cover": rounded(cover),
        "iou": rounded(iou),
        "object_score": rounded(probe.seen["object_score"]),
        "stability0": rounded(probe.seen["stability0"]),
    }


def single_image_scenarios(pred: Any, probe: Probe, image_name: str, out: dict[str, np.ndarray]) -> dict:
    """set_image + seven predict calls on one image."""
    p = PROMPTS[image_name]
    pts, lbl = p["click"]
    many_pts, many_lbl = p["clicks"]
    bc_box, bc_pts, bc_lbl = p["box_clicks"]
    scenarios: dict[str, dict[str, Any]] = {
        "click_multi": dict(
            point_coords=f32(pts), point_labels=np.asarray(lbl, np.int32), multimask_output=True
        ),
        "click_single": dict(
            point_coords=f32(pts), point_labels=np.asarray(lbl, np.int32), multimask_output=False
        ),
        "clicks": dict(
            point_coords=f32(many_pts), point_labels=np.asarray(many_lbl, np.int32), multimask_output=False
        ),
        "box": dict(box=f32(p["box"]), multimask_output=False),
        "box_clicks": dict(
            box=f32(bc_box),
            point_coords=f32(bc_pts),
            point_labels=np.asarray(bc_lbl, np.int32),
            multimask_output=False,
        ),
        # mask_input is filled in from click_multi below (as the official notebook does)
        "mask_input": dict(
            point_coords=f32(many_pts), point_labels=np.asarray(many_lbl, np.int32), multimask_output=False
        ),
        "boxes": dict(box=f32(p["boxes"]), multimask_output=False),  # B = 3: repeat_image path
    }
    manifest = {}
    click_multi: tuple | None = None
    for name, prompt in scenarios.items():
        if name == "mask_input":
            # Best click_multi mask's low-res logits, rounded to 1/8 (exact in float16) so the
            # stored input is exactly what the oracle got.
            assert click_multi is not None
            best = int(np.argmax(click_multi[1]))
            rounded = np.round(click_multi[2][best][None] * MASK_INPUT_STEP) / MASK_INPUT_STEP
            prompt["mask_input"] = rounded.astype(np.float16)
        call = {k: (v.astype(np.float32) if k == "mask_input" else v) for k, v in prompt.items()}
        result = pred.predict(**call)
        manifest[name] = {"call": "predict", **describe(prompt), **record(name, result, probe, prompt, out)}
        if name == "mask_input":
            manifest[name]["mask_input_source"] = (
                f"click_multi low_res_logits[{best}] (best predicted IoU), rounded to multiples of "
                f"1/{MASK_INPUT_STEP}, stored as float16 (exact), shape (1, 256, 256)"
            )
        if name == "click_multi":
            click_multi = result
    return manifest


def batch_scenarios(pred: Any, probe: Probe, images: list[np.ndarray], out: dict[str, np.ndarray]) -> dict:
    """set_image_batch([truck, groceries]) + predict_batch with different prompts per image."""
    t_pts, t_lbl = PROMPTS["truck"]["click"]
    g_pts, g_lbl = PROMPTS["groceries"]["clicks"]
    calls = {
        "batch_points": dict(
            point_coords_batch=[f32(t_pts), f32(g_pts)],
            point_labels_batch=[np.asarray(t_lbl, np.int32), np.asarray(g_lbl, np.int32)],
            multimask_output=True,
        ),
        "batch_boxes": dict(
            box_batch=[f32(PROMPTS["truck"]["box"]), f32(PROMPTS["groceries"]["box"])], multimask_output=False
        ),
    }
    manifest = {}
    decoder = pred.model.sam_mask_decoder
    raw_forward = decoder.forward
    per_image: list[dict[str, Any]] = []

    def forward(*args: Any, **kwargs: Any) -> Any:
        # predict_batch runs the heads once per image: keep each image's probe readings.
        result = raw_forward(*args, **kwargs)
        per_image.append(dict(probe.seen))
        return result

    for name, call in calls.items():
        per_image.clear()
        decoder.forward = forward
        try:
            masks, ious, lows = pred.predict_batch(**call)
        finally:
            del decoder.forward
        for i in range(len(images)):
            probe.seen.update(per_image[i])
            prompt = {"multimask_output": call["multimask_output"]}
            if "point_coords_batch" in call:
                prompt["point_coords"] = call["point_coords_batch"][i]
                prompt["point_labels"] = call["point_labels_batch"][i]
            if "box_batch" in call:
                prompt["box"] = call["box_batch"][i]
            key = f"{name}{i}"
            manifest[key] = {
                "call": "predict_batch",
                "image_index": i,
                **describe(prompt),
                **record(key, (masks[i], ious[i], lows[i]), probe, prompt, out),
            }
    return manifest


def describe(prompt: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.tolist() if isinstance(v, np.ndarray) and k != "mask_input" else v)
        for k, v in prompt.items()
        if k != "mask_input"
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from importlib.metadata import version

    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    images = {n: load_rgb(n) for n in IMAGES}
    manifest_path = OUT_DIR / "image_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"fixtures": {}}
    manifest.update(
        {
            "seed": sw.PARITY_SEED,
            "rule_version": sw.RULE_VERSION,
            "sam2_version": version("sam2"),
            "torch_version": torch.__version__,
            "predictor": "SAM2ImagePredictor(build_sam2(cfg, None, device='cpu')) with defaults: mask_threshold=0.0, "
            "max_hole_area=0.0, max_sprinkle_area=0.0; build_sam2 apply_postprocessing=True (dynamic "
            "multimask via stability, delta 0.05, thresh 0.98); eval mode, float32, CPU",
            "image_loading": 'np.array(PIL.Image.open(path).convert("RGB"))',
            "low_res_sub": f"low_res_logits[..., ::{SUB}, ::{SUB}]",
            "low_res_crop": "low_res_logits[..., 112:144, 112:144]",
            "masks_packed": "np.packbits(masks[..., ::k, ::k], axis=-1), k = mask_stride (ceil(max(H, W) / 1000))",
            "weight_gain": sw.WEIGHT_GAIN,
            "images": {
                n: {
                    "file": f"tests/data/images/{n}.jpg",
                    "hw": list(a.shape[:2]),
                    "sha256_file": sha256((IMAGE_DIR / f"{n}.jpg").read_bytes()),
                    "sha256_rgb": sha256(a.tobytes()),
                }
                for n, a in images.items()
            },
        }
    )
    all_entries = []
    for model_name in args.models:
        model = build_sam2(CONFIGS[model_name], None, device="cpu")
        weights = sw.seeded_state_dict(sw.shapes_of(model.state_dict()), sw.PARITY_SEED)
        model.load_state_dict(weights, strict=True)
        probe = Probe(model)
        pred = SAM2ImagePredictor(model)
        for image_name, image in images.items():
            out: dict[str, np.ndarray] = {}
            pred.set_image(image)
            encoder_features(pred, probe, image, 0, out)
            entries = single_image_scenarios(pred, probe, image_name, out)
            path = OUT_DIR / f"image_{model_name}_{image_name}.npz"
            np.savez_compressed(path, **out)
            manifest["fixtures"][path.name] = {
                "model": model_name,
                "images": [image_name],
                "weights_sha256": sw.state_dict_digest(weights),
                "scenarios": entries,
            }
            all_entries += entries.values()
            print(f"{path.name}: {path.stat().st_size / 1e3:.0f} kB")
            for name, e in entries.items():
                print(
                    f"  {name:13s} cover {e['cover']} iou {e['iou']} obj {e['object_score']} stab0 {e['stability0']}"
                )
        out = {}
        pred.set_image_batch([images[n] for n in IMAGES])
        for i, n in enumerate(IMAGES):
            sub: dict[str, np.ndarray] = {}
            encoder_features(pred, probe, images[n], i, sub)
            out.update({k.replace("features.", f"features{i}.", 1): v for k, v in sub.items()})
        entries = batch_scenarios(pred, probe, [images[n] for n in IMAGES], out)
        path = OUT_DIR / f"image_{model_name}_batch.npz"
        np.savez_compressed(path, **out)
        manifest["fixtures"][path.name] = {
            "model": model_name,
            "images": list(IMAGES),
            "weights_sha256": sw.state_dict_digest(weights),
            "scenarios": entries,
        }
        all_entries += entries.values()
        print(f"{path.name}: {path.stat().st_size / 1e3:.0f} kB")
        for name, e in entries.items():
            print(
                f"  {name:13s} cover {e['cover']} iou {e['iou']} obj {e['object_score']} stab0 {e['stability0']}"
            )

    # A fixture whose masks are all empty or all full proves nothing.
    covers = np.concatenate([np.ravel(e["cover"]) for e in all_entries])
    nontrivial = float(np.mean((covers > 0.01) & (covers < 0.99)))
    objs = np.concatenate([np.ravel(e["object_score"]) for e in all_entries])
    print(
        f"non-trivial masks: {nontrivial:.0%} of {covers.size}; object score > 0 in {np.mean(objs > 0):.0%}"
    )
    assert nontrivial >= 0.8, f"only {nontrivial:.0%} of reference masks cover 1-99 % of the image"
    assert (objs > 0).any(), "no scenario has a positive object score"
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    with torch.no_grad():
        sys.exit(main())
