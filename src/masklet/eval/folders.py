"""Score a folder of predicted videos against a folder of ground truth (`masklet eval`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from masklet.errors import MaskletError
from masklet.eval.metrics import BenchmarkScores, Protocol, VideoScores, evaluate_video, summarize
from masklet.io.formats import is_sav_eval_root, list_sav_eval_videos, read_mask_folder

__all__ = ["FolderEvaluation", "evaluate_folders"]


@dataclass(frozen=True, slots=True)
class FolderEvaluation:
    protocol: Protocol
    videos: list[VideoScores]
    total: BenchmarkScores


def evaluate_folders(
    gt_root: str | os.PathLike[str],
    pred_root: str | os.PathLike[str],
    *,
    protocol: Protocol | None = None,
    skip_first_and_last: bool = True,
) -> FolderEvaluation:
    """J, F and J&F of every ground-truth video folder; a video missing from `pred_root` scores as empty.

    protocol: "sav" or "davis"; by default "sav" for SA-V's evaluation layout, else "davis".
    """
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    for root in (gt_root, pred_root):
        if not root.is_dir():
            raise MaskletError(f"{root}: not a folder; expected one sub-folder per video")
    chosen: Protocol = protocol or ("sav" if is_sav_eval_root(gt_root) else "davis")
    videos = []
    for name in list_sav_eval_videos(gt_root):
        pred = read_mask_folder(pred_root / name) if (pred_root / name).is_dir() else {}
        videos.append(
            evaluate_video(
                pred, read_mask_folder(gt_root / name), video_id=name, protocol=chosen,
                skip_first_and_last=skip_first_and_last,
            )
        )  # fmt: skip
    return FolderEvaluation(chosen, videos, summarize(videos))
