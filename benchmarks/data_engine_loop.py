"""The data engine's loop, measured: train, annotate with the model, retrain on what was annotated.

    python benchmarks/data_engine_loop.py            # about 28 minutes on two CPU cores

1. Synthetic data (`masklet.io.synthetic_dataset`): a training set, a held-out set A that the
   simulated annotator annotates, and a held-out set C for the comparisons.
2. Round 0: the reduced configuration (sam2.1_hiera_t at a 128-px input, from random weights)
   first trains at image level, on single frames of a pre-training set with 3-6 objects a
   frame (without it the model stops following its prompts: every object gets one mask, see
   benchmarks/prompt_use.py), then on clips of the training set with half the samples
   single frames of the pre-training set (SAM 2 trains on images and videos together; on
   clips of 1-3 objects alone the model drifts back to one mask for all objects).
3. The simulated annotator (`masklet.engine.simulate`, the paper's time constants) annotates
   set A in Phases 1, 2 and 3 with the round-0 model, in a project of its own: the effort
   table (time per frame, % edited frames, clicks per clicked frame) and the J&F each phase's
   masks reach against the truth. Its Phase-3 masklets are accepted in review.
4. Round 1: the round-0 model trains further on the training set plus the project's accepted
   masklets (`masklet.train.data.videos_from_project`), with the same image share.
5. On set C: Phase 3 with the round-0 and the round-1 model (the effort should fall), the
   semi-supervised J&F of both with 1, 3 and 5 first-frame clicks, a box and a mask, and
   how well each checkpoint follows boxes and clicks (benchmarks/prompt_use.py).

Writes benchmarks/results/data_engine_loop.{json,md} and data_engine_loop_loss.png (the loss
curves of both rounds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"


def _annotator():
    from masklet.engine.simulate import AnnotatorModel

    # the paper's time constants; error components of 4+ pixels get a stroke (the default 16 is
    # for full-size videos: at 128 px it would leave whole small objects' edges unfixed)
    return AnnotatorModel(min_error_px=4)


def gt_of(video) -> dict[int, dict[int, np.ndarray]]:
    """{obj_id: {video frame: mask}} of an AnnotatedVideo."""
    return {o: {f: m.decode() for f, m in zip(video.frames, video.masks[o], strict=True)} for o in video.obj_ids}


def masklet_jf(store, masklet_id: int, gt: dict[int, np.ndarray]) -> float:
    """J&F of a saved masklet on the annotated frames of its ground truth (DAVIS measures)."""
    from masklet.eval.metrics import evaluate_object
    from masklet.io.masks import RleMask

    saved = {fm.frame: RleMask.from_dict(fm.rle) for fm in store.get_frame_masks(masklet_id)}
    empty = RleMask.from_mask(np.zeros_like(next(iter(gt.values()))))
    pred = {f: saved.get(f, empty) for f in gt}
    scores = evaluate_object(pred, {f: RleMask.from_mask(m) for f, m in gt.items()}, protocol="davis",
                             skip_first_and_last=False)
    return float("nan") if scores is None else (scores.j_mean + scores.f_mean) / 2


ANNOTATOR = None  # set in main(), after the imports


def annotate(store, project_name: str, videos, model, phases, *, accept_phase: int | None = None) -> dict:
    """Each phase on every video (one masklet per object); the effort table and J&F per phase."""
    from masklet.engine import review
    from masklet.engine.effort import effort_table
    from masklet.engine.projects import add_video
    from masklet.engine.simulate import annotate_video

    project = store.create_project(project_name)
    jf: dict[int, list[float]] = {p: [] for p in phases}
    worked: dict[int, list] = {p: [] for p in phases}  # FrameWork of every frame worked
    for video in videos:
        row = add_video(store, project.id, video.source)
        gt = gt_of(video)
        for phase in phases:
            done = annotate_video(store, row.id, gt, model, phase=phase, stride=4, submit=phase == accept_phase,
                                  annotator=ANNOTATOR)  # fmt: skip
            for work, obj in zip(done, sorted(gt), strict=True):
                jf[phase].append(masklet_jf(store, work.masklet_id, gt[obj]))
                worked[phase] += work.frames
                if phase == accept_phase:
                    m = store.get_masklet(work.masklet_id)
                    review.accept(store, m.id, expected_version=m.version, by="reviewer")
    table = effort_table(store, project_id=project.id)
    # what the model leaves to the pixel tools on a worked frame: its IoU after the clicks, and
    # the strokes (one per error component of min_error_px or more) that finish the frame
    return {"project_id": project.id, "effort": table.to_json(), "effort_text": table.render(),
            "jf": {p: float(np.nanmean(v)) for p, v in jf.items()},
            "iou_after_clicks": {p: float(np.mean([w.model_iou for w in v])) for p, v in worked.items()},
            "strokes_per_worked_frame": {p: float(np.mean([w.strokes for w in v])) for p, v in worked.items()}}  # fmt: skip


def semi_supervised(videos, model) -> dict[str, float]:
    """First-frame protocol J&F over the videos for each prompt kind."""
    from masklet.eval.interactive import FIRST_FRAME_PROMPTS, run_first_frame
    from masklet.io.masks import RleMask
    from masklet.predict.video import VideoPredictor

    predictor = VideoPredictor(model)
    out = {}
    for prompt in FIRST_FRAME_PROMPTS:
        scores = []
        for video in videos:
            gt = {o: {f: RleMask.from_mask(m) for f, m in frames.items()} for o, frames in gt_of(video).items()}
            with predictor.start(str(video.source)) as session:
                scores.append(run_first_frame(session, gt, prompt=prompt, video_id=video.name).jf)
        out[prompt] = float(np.mean(scores))
    return out


def write_loss_plot(histories: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    from masklet.train.loop import steps_with_loss

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    offset = 0
    for label, history in histories.items():
        kept = steps_with_loss(history)
        ax.plot([offset + h["step"] for h in kept], [h["total"] for h in kept], label=label, alpha=0.85)
        offset += history[-1]["step"]
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (total)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("reduced SAM 2 (hiera_t, 128 px) trained from scratch on synthetic videos")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/masklet_loop", help="scratch folder (videos, runs, database)")
    parser.add_argument("--train-videos", type=int, default=32)
    parser.add_argument("--eval-videos", type=int, default=4, help="videos in each of the held-out sets A and C")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128, help="video side and model input")
    parser.add_argument("--pretrain-videos", type=int, default=64, help="pre-training set (3-6 objects each)")
    parser.add_argument("--pretrain-steps", type=int, default=800, help="round 0's image-level steps (single frames)")
    parser.add_argument("--steps", type=int, default=400, help="round 0's steps on clips, after the pre-training")
    parser.add_argument("--retrain-steps", type=int, default=150)
    parser.add_argument("--image-fraction", type=float, default=0.5,
                        help="share of the clip rounds' samples that are single frames of the pre-training set")
    parser.add_argument("--clip-frames", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=str(OUT), help="where the results files go")
    args = parser.parse_args()

    import torch

    from masklet.build import build_sam2
    from masklet.engine.store import Store
    from masklet.io.synthetic_dataset import write_training_set
    from masklet.train.data import load_training_videos, videos_from_project
    from masklet.train.loop import TrainSettings, train
    from masklet.train.optim import OptimSettings
    from masklet.train.prompts import PromptSettings

    torch.set_num_threads(args.threads)
    global ANNOTATOR
    ANNOTATOR = _annotator()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    sets = {}
    specs = (("pretrain", 11, args.pretrain_videos, 24, (3, 6)), ("train", 1, args.train_videos, args.frames, (1, 3)),
             ("A", 2, args.eval_videos, args.frames, (1, 3)), ("C", 3, args.eval_videos, args.frames, (1, 3)))  # fmt: skip
    for name, seed, count, frames, objects in specs:
        folder = work / name
        if not folder.exists():
            write_training_set(folder, videos=count, frames=frames, height=args.size, width=args.size,
                               objects=objects, seed=seed)  # fmt: skip
        sets[name] = load_training_videos(folder)

    def settings(steps: int, checkpoint: str | None, *, clip_frames: int, max_objects: int = 3,
                 prompts: PromptSettings | None = None, image_fraction: float = 0.0) -> TrainSettings:  # fmt: skip
        # float32 on every CPU: the same run everywhere (bfloat16 here trained no faster at 128 px)
        return TrainSettings(
            image_size=args.size, steps=steps, clip_frames=clip_frames, max_objects=max_objects, seed=0,
            image_fraction=image_fraction, image_max_objects=6,
            checkpoint=checkpoint, precision="float32", prompts=prompts or PromptSettings(corrections_per_frame=2),
            optim=OptimSettings(lr=3e-4, encoder_lr=1.5e-4, grad_clip=1.0, warmup_steps=min(50, steps // 10)),
        )  # fmt: skip

    pretrain = train(settings(args.pretrain_steps, None, clip_frames=1, max_objects=6,
                              prompts=PromptSettings(corrections_per_frame=1)),
                     sets["pretrain"], work / "pretrain", plot=False)  # fmt: skip
    mixed = {"clip_frames": args.clip_frames, "image_fraction": args.image_fraction}
    images = sets["pretrain"] if args.image_fraction > 0 else None
    round0 = train(settings(args.steps, str(pretrain.checkpoint), **mixed), sets["train"], work / "round0",
                   images=images, plot=False)  # fmt: skip
    model0 = build_sam2("sam2.1_hiera_t", checkpoint=round0.checkpoint, image_size=args.size)

    db = work / "loop.db"
    db.unlink(missing_ok=True)
    results: dict = {"settings": vars(args)}
    with Store(f"sqlite:///{db}") as store:
        results["annotation_A_round0"] = annotate(store, "A-round0", sets["A"], model0, (1, 2, 3), accept_phase=3)
        annotated = videos_from_project(store, results["annotation_A_round0"]["project_id"])
        round1 = train(settings(args.retrain_steps, str(round0.checkpoint), **mixed), [*sets["train"], *annotated],
                       work / "round1", images=images, plot=False)  # fmt: skip
        model1 = build_sam2("sam2.1_hiera_t", checkpoint=round1.checkpoint, image_size=args.size)
        results["phase3_C"] = {
            "round0": annotate(store, "C-round0", sets["C"], model0, (3,)),
            "round1": annotate(store, "C-round1", sets["C"], model1, (3,)),
        }
    results["semi_supervised_C"] = {"round0": semi_supervised(sets["C"], model0),
                                    "round1": semi_supervised(sets["C"], model1)}  # fmt: skip
    sys.path.insert(0, str(REPO / "benchmarks"))
    from common import cpu_model
    from prompt_use import measure

    checkpoints = {"random init": "random", "image level": str(pretrain.checkpoint),
                   "round 0": str(round0.checkpoint), "round 1": str(round1.checkpoint)}  # fmt: skip
    results["prompt_use_C"] = {name: asdict(measure(path, sets["C"], model_name="sam2.1_hiera_t", image_size=args.size))
                               for name, path in checkpoints.items()}  # fmt: skip
    histories = {
        "round 0, image level (single frames, 3-6 objects)": json.loads(pretrain.metrics.read_text())["history"],
        "round 0, clips of the training set + single frames": json.loads(round0.metrics.read_text())["history"],
        "round 1 (+ set A annotated with the round-0 model)": json.loads(round1.metrics.read_text())["history"],
    }
    results["training"] = {
        "pretrain": {"steps": pretrain.steps, "seconds": pretrain.seconds, "first_loss": pretrain.first_loss,
                     "last_loss": pretrain.last_loss, "videos": len(sets["pretrain"])},
        "round0": {"steps": round0.steps, "seconds": round0.seconds, "first_loss": round0.first_loss,
                   "last_loss": round0.last_loss, "videos": len(sets["train"])},
        "round1": {"steps": round1.steps, "seconds": round1.seconds, "first_loss": round1.first_loss,
                   "last_loss": round1.last_loss, "videos": len(sets["train"]) + len(annotated)},
    }  # fmt: skip
    results["machine"] = {"cpu": cpu_model(), "threads": args.threads,
                          "torch": torch.__version__, "seconds": time.perf_counter() - began}  # fmt: skip
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_engine_loop.json").write_text(json.dumps(results, indent=1))
    write_loss_plot(histories, out / "data_engine_loop_loss.png")
    (out / "data_engine_loop.md").write_text(render(results))
    print(render(results))
    return 0


def render(r: dict) -> str:
    t = r["training"]
    a = r["annotation_A_round0"]
    c0, c1 = r["phase3_C"]["round0"], r["phase3_C"]["round1"]

    def p3(x: dict) -> dict:
        return next(p for p in x["effort"]["phases"] if p["phase"] == 3)

    lines = [
        "# The data-engine loop on synthetic videos (reduced model)",
        "",
        f"Training from random weights: round 0 {t['pretrain']['steps']} image-level steps (single frames, 3-6 objects) "
        f"on {t['pretrain']['videos']} videos ({t['pretrain']['seconds'] / 60:.1f} min, loss "
        f"{t['pretrain']['first_loss']:.3g} -> {t['pretrain']['last_loss']:.3g}), then {t['round0']['steps']} steps "
        f"on clips of {t['round0']['videos']} videos, {r['settings']['image_fraction']:.0%} of them single frames of the "
        f"pre-training set instead "
        f"({t['round0']['seconds'] / 60:.1f} min, loss {t['round0']['first_loss']:.3g} -> {t['round0']['last_loss']:.3g}); "
        f"round 1 {t['round1']['steps']} more steps on {t['round1']['videos']} videos "
        f"({t['round1']['seconds'] / 60:.1f} min, loss {t['round1']['first_loss']:.3g} -> {t['round1']['last_loss']:.3g}).",
        "",
        "## Held-out set A annotated with the round-0 model (simulated annotator, the paper's time constants)",
        "",
        "```",
        a["effort_text"],
        "```",
        "",
        "| phase | J&F of the saved masks | IoU after the clicks | strokes per edited frame |",
        "| --- | --- | --- | --- |",
        *(f"| {p} | {v:.3f} | {a['iou_after_clicks'][p]:.3f} | {a['strokes_per_worked_frame'][p]:.2f} |"
          for p, v in a["jf"].items()),
        "",
        "## Held-out set C, Phase 3: round-0 model against round-1 (retrained on set A's accepted masklets)",
        "",
        "| model | time per frame (s) | edited frames | clicks per clicked frame | IoU after the clicks "
        "| strokes per edited frame | J&F |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, x in (("round 0", c0), ("round 1", c1)):
        p = p3(x)
        cpf = "-" if p["clicks_per_clicked_frame"] is None else f"{p['clicks_per_clicked_frame']:.2f}"
        lines.append(f"| {name} | {p['time_per_frame_s']:.2f} | {p['edited_share']:.0%} | {cpf} "
                     f"| {x['iou_after_clicks'][3]:.3f} | {x['strokes_per_worked_frame'][3]:.2f} | {x['jf'][3]:.3f} |")
    lines += ["", "## Semi-supervised J&F on set C (first-frame prompt, then propagation)", "",
              "| model | " + " | ".join(r["semi_supervised_C"]["round0"]) + " |",
              "| --- |" + " --- |" * len(r["semi_supervised_C"]["round0"])]  # fmt: skip
    for name in ("round0", "round1"):
        row = r["semi_supervised_C"][name]
        lines.append(f"| {name.replace('round', 'round ')} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    lines += ["", "## Prompt use on set C (benchmarks/prompt_use.py: a box and a click on every object of two frames a video)",
              "", "| checkpoint | box IoU | click IoU (kept) | click IoU (best of 3) | two objects' box masks overlap |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, u in r["prompt_use_C"].items():
        lines.append(f"| {name} | {u['box_iou']:.3f} | {u['click_kept_iou']:.3f} | {u['click_best_of_three_iou']:.3f} "
                     f"| {u['box_masks_overlap']:.3f} |")  # fmt: skip
    m = r["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}; the whole run {m['seconds'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
