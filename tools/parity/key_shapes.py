"""Record the official state-dict layout (ordered keys and shapes) of the eight SAM 2 configs.

Runs only in the oracle venv (sam2==1.1.0):
    /work/refenv/bin/python tools/parity/key_shapes.py
Writes tests/data/parity/key_shapes.json:
    {"sam2_hiera_t": [["key", [d0, d1, ...]], ...], ...,
     "_meta": {"sam2_version": ..., "torch_version": ..., "counts": {name: {"keys": n, "numel": n}}}}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "parity" / "key_shapes.json"

# our config name -> official hydra config path
CONFIGS = {
    f"{v}_hiera_{s}": f"configs/{v}/{v}_hiera_{s}.yaml"
    for v in ("sam2", "sam2.1")
    for s in ("t", "s", "b+", "l")
}

# From /work/shared/REFERENCE_NOTES.md "Sizes" (parameters incl. the one buffer, state-dict keys).
EXPECTED = {
    "sam2_hiera_t": (38_946_242, 468),
    "sam2.1_hiera_t": (38_962_754, 471),
    "sam2_hiera_s": (46_044_098, 516),
    "sam2.1_hiera_s": (46_060_610, 519),
    "sam2_hiera_b+": (80_833_922, 612),
    "sam2.1_hiera_b+": (80_850_434, 615),
    "sam2_hiera_l": (224_430_386, 900),
    "sam2.1_hiera_l": (224_446_898, 903),
}


def official_layout(cfg_path: str) -> list[tuple[str, tuple[int, ...]]]:
    """Build the official model on CPU (random init; the meta device breaks Hiera's init) and list its state dict."""
    from sam2.build_sam import build_sam2

    model = build_sam2(cfg_path, None, device="cpu")
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def main() -> int:
    torch.set_num_threads(1)
    from importlib.metadata import version

    import sam2  # noqa: F401  (oracle venv only)

    result: dict[str, object] = {}
    counts: dict[str, dict[str, int]] = {}
    ok = True
    for name, cfg_path in CONFIGS.items():
        layout = official_layout(cfg_path)
        numel = sum(int(torch.Size(s).numel()) for _, s in layout)
        counts[name] = {"keys": len(layout), "numel": numel}
        exp_numel, exp_keys = EXPECTED[name]
        status = "ok" if (numel, len(layout)) == (exp_numel, exp_keys) else "MISMATCH"
        ok &= status == "ok"
        print(
            f"{name:16s} keys={len(layout):4d} numel={numel:,}  expected {exp_keys} / {exp_numel:,}: {status}"
        )
        result[name] = [[k, list(s)] for k, s in layout]
    result["_meta"] = {
        "sam2_version": version("sam2"),
        "torch_version": torch.__version__,
        "configs": CONFIGS,
        "counts": counts,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
