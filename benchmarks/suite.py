"""The benchmark suite: every figure against the official code (and Hugging Face's), one summary.

    python benchmarks/suite.py --reference-python ../refenv/bin/python [--hf-python ../refenv/bin/python] \\
        [--masklet-python PY] [--figures encoder_clicks,propagation,first_mask,memory] \\
        [--models sam2.1_hiera_t] [--objects 1,3] [--frames 10] [--first-mask-frames 1000]
    python benchmarks/suite.py --report-only        # the summary again from the results already there

`masklet bench ...` runs this script with the same arguments. Each figure is its own script
(benchmarks/<figure>.py, each side in a process of its own, same weights, same inputs, same run);
the suite runs the chosen ones in turn, then reads every result under --results and writes
summary.json, summary.md (the targets of the performance issue, each met or not, with the
measured numbers) and summary.png (speed against the official; peak RSS against video length).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from common import NAMES, OUT, REPO, machine_line, model_stem

FIGURES = ("encoder_clicks", "propagation", "first_mask", "memory")


@dataclass
class Row:
    """One line of the summary: a measured figure of one side against its target."""

    figure: str
    side: str
    value: str  # as measured, with its unit
    vs_official: float | None  # speed ratio (> 1: faster than the official)
    target: str
    met: bool | None  # None: no target for this side
    source: str  # the results file it comes from


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def encoder_click_rows(results: Path, model: str) -> list[Row]:
    data = _load(results, f"encoder_clicks_{model_stem(model)}")
    if not data:
        return []
    source, rows = f"encoder_clicks_{model_stem(model)}.json", []
    official = data["sides"]["official"]
    for side, s in data["sides"].items():
        if side == "official":
            continue
        ratio = official["encoder_s_median"] / s["encoder_s_median"]
        rows.append(Row(f"image encoder, {model}", side, f"{s['encoder_s_median']:.2f} s "
                        f"(official {official['encoder_s_median']:.2f} s)", ratio, "-", None, source))  # fmt: skip
        ratio = official["click_ms_p50"] / s["click_ms_p50"]
        met = s["click_ms_p50"] <= official["click_ms_p50"] if side == "masklet" else None
        rows.append(Row(f"click on an encoded frame, {model}", side,
                        f"p50 {s['click_ms_p50']:.0f} ms, p95 {s['click_ms_p95']:.0f} ms (official p50 "
                        f"{official['click_ms_p50']:.0f} ms); masks {100 * s['mask_agreement_min']:.2f} % equal",
                        ratio, "<= the official's", met, source))  # fmt: skip
    return rows


def propagation_rows(results: Path) -> list[Row]:
    rows = []
    for path in sorted(results.glob("propagation_*obj.json")):
        data = json.loads(path.read_text())
        if "sides" not in data:  # an older layout (official and masklet only)
            continue
        objects = data["objects"]
        want = 1.3 if objects == 1 else 1.5
        sides = data["sides"]
        hf = sides.get("hf", {}).get("s_per_frame_median")
        for side, s in sides.items():
            if side == "official":
                continue
            equal = s["mask_agreement_min"]
            if side == "masklet":
                met = s["speedup"] >= want and equal >= 0.999 and (hf is None or s["s_per_frame_median"] < hf)
                target = f">= {want}x, masks >= 99.9 % equal" + (", ahead of HF" if hf else "")
            else:
                met, target = None, "-"
            rows.append(Row(f"propagation, {data['model'].split(' ')[0]}, {objects} object(s)", side,
                            f"{s['s_per_frame_median']:.2f} s/frame (official "
                            f"{sides['official']['s_per_frame_median']:.2f}); masks {100 * equal:.3f} % equal",
                            s["speedup"], target, met, path.name))  # fmt: skip
    return rows


def fast_mode_rows(results: Path) -> list[Row]:
    rows = []
    for path in sorted(results.glob("propagation_*obj_fast_*.json")):
        data = json.loads(path.read_text())
        s, official = data["sides"]["masklet"], data["sides"]["official"]
        objects, equal = data["objects"], s["mask_agreement_min"]
        met = s["speedup"] >= 2.5 and equal >= 0.995 if objects == 1 else None
        rows.append(Row(f"propagation in fast mode ({data['masklet_fast']}), {data['model'].split(' ')[0]}, "
                        f"{objects} object(s)", "masklet",
                        f"{s['s_per_frame_median']:.2f} s/frame (official {official['s_per_frame_median']:.2f}); "
                        f"masks {100 * equal:.3f} % equal", s["speedup"],
                        ">= 2.5x, masks >= 99.5 % equal" if objects == 1 else "-", met, path.name))  # fmt: skip
    return rows


def first_mask_rows(results: Path) -> list[Row]:
    data = _load(results, "first_mask")
    if not data or "first_mask_agreement" not in data:
        return []
    official_key = next(k for k in data["seconds"] if k.startswith(NAMES["official"]))
    rows = []
    for key, seconds in data["seconds"].items():
        if key == official_key:
            continue
        side = "masklet" if key.startswith("masklet") else "hf"
        met = data["speedup"][key] >= 20 if side == "masklet" else None
        rows.append(Row(f"first mask, {data['frames']}-frame video ({key.split('(')[-1].rstrip(')')})", side,
                        f"{seconds:.1f} s, peak RSS {data['peak_rss_mib'][key]:.0f} MiB (official "
                        f"{data['seconds'][official_key]:.1f} s, {data['peak_rss_mib'][official_key]:.0f} MiB)",
                        data["speedup"][key], ">= 20x" if side == "masklet" else "-", met, "first_mask.json"))  # fmt: skip
    for key, why in data.get("failed", {}).items():
        side = "masklet" if key.startswith("masklet") else "hf"
        rows.append(Row(f"first mask, {data['frames']}-frame video ({key.split('(')[-1].rstrip(')')})", side,
                        f"no result: {why}", None, ">= 20x" if side == "masklet" else "-",
                        False if side == "masklet" else None, "first_mask.json"))  # fmt: skip
    return rows


def memory_rows(results: Path) -> list[Row]:
    data = _load(results, "memory")
    if not data:
        return []
    ours = data["masklet_peak_rss_mib"]
    lengths = sorted(ours, key=int)
    first, last = ours[lengths[0]], ours[lengths[-1]]
    growth = last / first - 1
    official = data.get("official_peak_rss_mib", {})
    note = ", ".join(f"{n} frames {official[n]:.0f} MiB" for n in sorted(official, key=int))
    return [Row(f"peak RSS vs video length ({data['input']})", "masklet",
                ", ".join(f"{n} frames {ours[n]:.0f} MiB" for n in lengths)
                + f" ({100 * growth:+.1f} %)" + (f"; official at init: {note}" if note else ""),
                None, f"{lengths[-1]} frames within 10 % of {lengths[0]}", abs(growth) <= 0.10, "memory.json")]  # fmt: skip


def summary_rows(results: Path, models: list[str]) -> list[Row]:
    rows: list[Row] = []
    for model in models:
        rows += encoder_click_rows(results, model)
    rows += propagation_rows(results) + fast_mode_rows(results) + first_mask_rows(results) + memory_rows(results)
    order = list(dict.fromkeys(r.figure for r in rows))
    return sorted(rows, key=lambda r: order.index(r.figure))  # each figure's sides together


def write_summary(results: Path, models: list[str]) -> list[str]:
    rows = summary_rows(results, models)
    machines = sorted({machine_line(json.loads((results / name).read_text())["machine"])
                       for name in {r.source for r in rows}})  # fmt: skip
    md = ["# Benchmarks against the official code: summary", "",
          "| figure | side | measured | vs official | target | met |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        ratio = "-" if r.vs_official is None else f"{r.vs_official:.2f}x"
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        md.append(f"| {r.figure} | {NAMES[r.side]} | {r.value} | {ratio} | {r.target} | {met} |")
    md += ["", "Measured on:", *[f"- {m}" for m in machines], "",
           "Each figure's own table, with how it was measured, is in the results file named in summary.json."]  # fmt: skip
    (results / "summary.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    (results / "summary.md").write_text("\n".join(md) + "\n")
    plot(rows, results)
    return md


def plot(rows: list[Row], results: Path) -> Path | None:
    """summary.png: each side's speed against the official per figure, and peak RSS against length."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'masklet[bench]'): summary.png not written")
        return None
    speed = [r for r in rows if r.vs_official is not None]
    memory = _load(results, "memory")
    fig, axes = plt.subplots(1, 2 if memory else 1, figsize=(14 if memory else 9, 5.5), squeeze=False)
    ax = axes[0][0]
    figures = list(dict.fromkeys(r.figure for r in speed))
    sides = [s for s in ("hf", "masklet") if any(r.side == s for r in speed)]
    width = 0.8 / max(len(sides), 1)
    for i, side in enumerate(sides):
        values = {r.figure: r.vs_official for r in speed if r.side == side}
        xs = [j + (i - (len(sides) - 1) / 2) * width for j in range(len(figures))]
        ax.barh(xs, [values.get(f, 0) for f in figures], height=width, label=NAMES[side])
    ax.axvline(1.0, color="black", linewidth=1, label=NAMES["official"])
    ax.set_yticks(range(len(figures)), [f.replace(", ", "\n", 1) for f in figures], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed against the official (x; > 1 is faster)")
    ax.legend(fontsize=8)
    if memory:
        ax = axes[0][1]
        for key, label in (("official_peak_rss_mib", NAMES["official"] + " (init_state)"),
                           ("masklet_peak_rss_mib", NAMES["masklet"] + " (whole propagation)")):  # fmt: skip
            series = memory.get(key, {})
            lengths = sorted(series, key=int)
            if lengths:
                ax.plot([int(n) for n in lengths], [series[n] / 1024 for n in lengths], marker="o", label=label)
        ax.set_xlabel("video length (frames)")
        ax.set_ylabel("peak RSS (GiB)")
        ax.set_title(memory["input"], fontsize=8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = results / "summary.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-python", help="python of a venv with sam2==1.1.0")
    parser.add_argument("--hf-python", help="python of a venv with transformers")
    parser.add_argument("--masklet-python", help="python with masklet (default: this one)")
    parser.add_argument("--figures", default=",".join(FIGURES), help=f"comma-separated, of {', '.join(FIGURES)}")
    parser.add_argument("--models", default="sam2.1_hiera_t", help="comma-separated architecture names")
    parser.add_argument("--objects", default="1,3", help="object counts for the propagation figure")
    parser.add_argument("--frames", type=int, default=10, help="frames propagated per run")
    parser.add_argument("--first-mask-frames", type=int, default=1000)
    parser.add_argument("--memory-frames", default="100,500,2000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=OUT, help="where the results are read and written")
    parser.add_argument("--report-only", action="store_true", help="rebuild the summary from --results")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if not args.report_only:
        if not args.reference_python:
            parser.error("--reference-python is needed: every figure is a ratio against the official code")
        if args.results != OUT:
            parser.error("the figures write to benchmarks/results; --results is for --report-only")
        figures = [f for f in args.figures.split(",") if f]
        unknown = sorted(set(figures) - set(FIGURES))
        if unknown:
            parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
        sides = ["--reference-python", args.reference_python, "--threads", str(args.threads)]
        for flag, value in (("--hf-python", args.hf_python), ("--masklet-python", args.masklet_python)):
            if value:
                sides += [flag, value]
        commands = []
        for figure in figures:
            script = [sys.executable, str(REPO / "benchmarks" / f"{figure}.py")]
            if figure == "encoder_clicks":
                commands += [[*script, *sides, "--model", m] for m in models]
            elif figure == "propagation":
                commands += [[*script, *sides, "--model", m, "--objects", n, "--frames", str(args.frames)]
                             for m in models for n in args.objects.split(",")]  # fmt: skip
            elif figure == "first_mask":
                commands.append([*script, *sides, "--frames", str(args.first_mask_frames)])
            else:
                commands.append([*script, *sides, "--lengths", args.memory_frames])
        for command in commands:
            print("$ " + " ".join(command[1:]), flush=True)
            subprocess.run(command, check=True, cwd=REPO)
    print("\n".join(write_summary(args.results, models)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
