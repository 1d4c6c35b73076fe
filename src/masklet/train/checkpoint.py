"""Training's files: weights in the official layout, and the state to resume from.

`checkpoint.pt` is `{"model": state_dict}` with the official parameter names, so Meta's
`sam2` (its `build_sam2(config, ckpt_path)`) and masklet (`build_sam2(name, checkpoint=)`)
load it strictly. `resume.pt` holds what continuing needs besides the weights: optimizer
state, the step reached, torch's generator state and the metrics so far. Both are
written to a temporary name and renamed, so a killed run leaves the previous files whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from masklet.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"
RESUME_NAME = "resume.pt"


def _save(obj: Any, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def save_weights(model: nn.Module, out: str | os.PathLike[str]) -> Path:
    """`OUT/checkpoint.pt` in the official layout (float32 tensors on the CPU)."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return _save({"model": state}, Path(out) / CHECKPOINT_NAME)


@dataclass(frozen=True, slots=True)
class ResumeState:
    step: int  # steps done
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    history: list[dict[str, float]]
    settings: dict[str, Any]  # the run's settings, to refuse resuming a different run


def rng_state() -> dict[str, Any]:
    """torch's generator (clips and prompts come from generators seeded by (seed, step), not from it)."""
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])


def save_resume(out: str | os.PathLike[str], model: nn.Module, state: ResumeState) -> Path:
    """Weights first, then `resume.pt`: a resume file never points past the weights beside it."""
    save_weights(model, out)
    obj = {"step": state.step, "optimizer": state.optimizer, "rng": state.rng,
           "history": state.history, "settings": state.settings}  # fmt: skip
    return _save(obj, Path(out) / RESUME_NAME)


def load_resume(out: str | os.PathLike[str]) -> ResumeState:
    path = Path(out) / RESUME_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: nothing to resume from (no {RESUME_NAME} in {out})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return ResumeState(obj["step"], obj["optimizer"], obj["rng"], obj["history"], obj["settings"])
