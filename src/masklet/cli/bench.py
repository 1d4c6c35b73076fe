"""`masklet bench`: the benchmark suite against the official code and Hugging Face's.

The suite is scripts (benchmarks/ of a source checkout: they need the official package and
transformers in venvs of their own, which masklet never imports); this command finds them and runs
benchmarks/suite.py with the options given here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import masklet
from masklet.errors import MaskletError

FIGURES = "encoder_clicks,propagation,first_mask,memory"


def suite_script(benchmarks: str | None) -> Path:
    """benchmarks/suite.py of --benchmarks, or of the checkout this masklet was installed from."""
    folder = Path(benchmarks) if benchmarks else Path(masklet.__file__).resolve().parents[2] / "benchmarks"
    script = folder / "suite.py"
    if not script.is_file():
        where = f"--benchmarks {benchmarks}" if benchmarks else f"beside this install ({folder})"
        raise MaskletError(
            f"no benchmark suite {where}: `masklet bench` runs benchmarks/suite.py of a source checkout; "
            "install masklet from a clone (pip install -e .) or pass --benchmarks DIR"
        )
    return script


def cmd_bench(args: argparse.Namespace) -> int:
    script = suite_script(args.benchmarks)
    argv = [sys.executable, str(script)]
    for name in ("reference_python", "hf_python", "masklet_python", "figures", "models", "objects", "frames",
                 "first_mask_frames", "memory_frames", "threads", "results"):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    if args.report_only:
        argv.append("--report-only")
    elif not args.reference_python:
        raise MaskletError("--reference-python is needed (a venv with sam2==1.1.0): every figure is a ratio "
                           "against the official code; --report-only rebuilds the summary from results")  # fmt: skip
    return subprocess.run(argv, cwd=script.parents[1]).returncode


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="speed and memory against the official sam2 (and transformers), same run, same weights",
        description="Runs benchmarks/suite.py: each figure for every implementation in processes of their own, "
        "then benchmarks/results/summary.{md,json,png} with each target met or not.",
    )
    p.add_argument("--reference-python", help="python of a venv with sam2==1.1.0 (the official side)")
    p.add_argument("--hf-python", help="python of a venv with transformers (the Hugging Face side)")
    p.add_argument("--masklet-python", help="python with masklet for the masklet side (default: this one)")
    p.add_argument("--figures", help=f"comma-separated subset of {FIGURES} (default: all)")
    p.add_argument("--models", help="comma-separated architectures (default: sam2.1_hiera_t)")
    p.add_argument("--objects", help="object counts of the propagation figure (default: 1,3)")
    p.add_argument("--frames", type=int, help="frames propagated per run (default: 10)")
    p.add_argument("--first-mask-frames", type=int, help="length of the first-mask video (default: 1000)")
    p.add_argument("--memory-frames", help="video lengths of the memory figure (default: 100,500,2000)")
    p.add_argument("--threads", type=int, help="torch threads of every side (default: 2)")
    p.add_argument("--results", help="results folder to summarise (with --report-only)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the summary from the results")
    p.add_argument("--benchmarks", help="the benchmarks/ folder (default: the checkout masklet runs from)")
    p.set_defaults(func=cmd_bench)
