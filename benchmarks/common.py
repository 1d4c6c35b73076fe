"""What the benchmark scripts share: paths, the machine, the worker processes and the results files.

Every script runs each implementation in a process of its own (the script itself with `--worker
official|hf|masklet`; the official one under --reference-python, a venv with sam2==1.1.0; the
Hugging Face one under --hf-python, a venv with transformers), so one's threads, caches and peak
RSS never touch another's. This module imports only numpy and the standard library: all three
venvs can load it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"
FRAMES = REPO / "tests" / "data" / "videos" / "bedroom_frames"  # 16 JPEGs, 960x540
IMAGE = REPO / "tests" / "data" / "images" / "truck.jpg"
OFFICIAL_CONFIGS = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
NAMES = {"official": "Meta sam2 1.1.0", "hf": "HF transformers", "masklet": "masklet"}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference-python", help="python of a venv with sam2==1.1.0 (the official side)")
    parser.add_argument("--hf-python", help="python of a venv with transformers (the Hugging Face side)")
    parser.add_argument(
        "--masklet-python", default=sys.executable,
        help="python with masklet installed (default: this one); give it the official side's torch to "
        "compare the code alone",
    )  # fmt: skip
    parser.add_argument("--model", default="sam2.1_hiera_t", choices=sorted(OFFICIAL_CONFIGS))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads of every side")
    parser.add_argument("--checkpoint", help="an official checkpoint for every side (default: seeded weights)")
    parser.add_argument("--worker", choices=sorted(NAMES), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)


def pythons(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The interpreter of each side to run, in the order they run: official, hf, masklet."""
    if not args.reference_python:
        parser.error("--reference-python is needed: every figure is a ratio against the official code")
    found = {"official": args.reference_python, "hf": args.hf_python, "masklet": args.masklet_python}
    return {k: v for k, v in found.items() if v}


def model_stem(model: str) -> str:
    return model.replace(".", "_").replace("+", "p")


def peak_rss_mib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(threads: int, versions: dict[str, str] | None = None) -> dict:
    """The machine a result was measured on, with each side's package versions (the driver calls it:
    torch and masklet are imported here, not at the top)."""
    import torch

    from masklet.predict.precision import cpu_bfloat16_instructions

    return {"cpu": cpu_model(), "capability": torch.backends.cpu.get_cpu_capability(), "threads": threads,
            "bfloat16": ", ".join(cpu_bfloat16_instructions()) or "none", "python": platform.python_version(),
            "versions": versions or {}}  # fmt: skip


def worker_versions(which: str) -> str:
    """The versions a worker reports about itself (torch and the implementation's package)."""
    import torch

    if which == "official":
        from importlib.metadata import version

        return f"sam2 {version('sam2')}, torch {torch.__version__}"
    if which == "hf":
        import transformers

        return f"transformers {transformers.__version__}, torch {torch.__version__}"
    import masklet

    return f"masklet {masklet.__version__}, torch {torch.__version__}"


class WorkerFailed(RuntimeError):
    """A worker process ended without a result (an error, or killed: the kernel's OOM killer)."""

    def __init__(self, which: str, returncode: int) -> None:
        self.which, self.returncode = which, returncode
        why = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        if returncode == -9:
            why += " (out of memory: the kernel's OOM killer)"
        super().__init__(f"{which}: {why}")


def run_worker(python: str, script: str, which: str, out: Path, args: list[str]) -> dict[str, np.ndarray]:
    """Run `script --worker which` under `python`; its arrays come back through an .npz file."""
    cmd = [python, script, "--worker", which, "--out", str(out), *args]
    code = subprocess.run(cmd, cwd=REPO).returncode
    if code != 0:
        raise WorkerFailed(which, code)
    with np.load(out, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def run_interleaved(
    sides: dict[str, str], script: str, folder: Path, args: list[str], times: int
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Each side's worker `times` times, in turn (A B C A B C ...), so drift hits every side alike."""
    runs: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in sides}
    for t in range(times):
        for which, python in sides.items():
            print(f"run {t + 1}/{times}: {which} ...", flush=True)
            runs[which].append(run_worker(python, script, which, folder / f"{which}{t}.npz", args))
    return runs


def save_worker_result(out: str, which: str, result: dict) -> None:
    np.savez(out, version=np.array(worker_versions(which)), **{k: np.asarray(v) for k, v in result.items()})


def agreement(ours: np.ndarray, reference: np.ndarray) -> float:
    """The fraction of mask pixels equal to the reference's (the worst of the leading axis if any)."""
    if ours.shape != reference.shape:
        raise ValueError(f"masks of shape {ours.shape} against {reference.shape}")
    if ours.ndim <= 2:
        return float((ours == reference).mean())
    return float((ours == reference).reshape(ours.shape[0], -1).mean(axis=1).min())


def write_results(stem: str, result: dict, md: list[str]) -> None:
    """benchmarks/results/<stem>.json and .md; the markdown is printed too."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def machine_line(m: dict) -> str:
    sides = "; ".join(f"{NAMES[k]}: {v}" for k, v in m.get("versions", {}).items())
    bf16 = f", bfloat16 instructions: {m['bfloat16']}" if "bfloat16" in m else ""
    return f"Machine: {m['cpu']} ({m['capability']}{bf16}), {m['threads']} threads, Python {m['python']}. {sides}"


def official_pixels(path: Path, size: int) -> np.ndarray:
    """An image as the official video loader feeds it: PIL's bicubic resize to size x size, ImageNet
    normalisation; float32 (3, size, size). The Hugging Face side is given these same pixels (its own
    processor resizes bilinearly), so the masks' agreement measures the models, not the resizing."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return np.ascontiguousarray(((rgb - mean) / std).transpose(2, 0, 1))


def write_seeded_checkpoint(model: str, path: Path) -> Path:
    """The benchmarks' weights as an official checkpoint file ({"model": state_dict}) that all three
    sides load: tools/parity/seeded_weights.py's rule over masklet's parameter names, which are
    the official ones (Meta's strict load of this file proves it)."""
    import torch
    from seeded import seeded_state_dict_of

    from masklet.build import build_sam2

    torch.save({"model": seeded_state_dict_of(build_sam2(model))}, path)
    return path


def official_video_predictor(model: str, checkpoint: str, threads: int):
    """The official SAM2VideoPredictor on the CPU with the checkpoint's weights (under --reference-python)."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.set_num_threads(threads)
    return build_sam2_video_predictor(OFFICIAL_CONFIGS[model], checkpoint, device="cpu")


def official_first_mask(predictor, video: str, click: list[float]) -> tuple[float, dict, np.ndarray]:
    """The official way from nothing to one click's mask on frame 0: (seconds, state, mask (H, W))."""
    import time

    import torch

    with torch.inference_mode():
        t = time.perf_counter()
        state = predictor.init_state(video)
        _, _, logits = predictor.add_new_points_or_box(
            state, frame_idx=0, obj_id=1, points=np.array([click], np.float32), labels=np.array([1], np.int32)
        )
        return time.perf_counter() - t, state, (logits[0, 0] > 0).numpy()


def time_calls(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of fn after `warmup` untimed ones."""
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times
