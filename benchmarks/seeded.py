"""The benchmarks' weights: tools/parity/seeded_weights.py's rule, loaded into either implementation.

Both Meta's sam2 and masklet name their parameters the same way, so one rule and one seed give
both sides the same model. Seed 9 is the video parity fixtures' seed: under it the benchmarks'
clicks on the bedroom frames find an object (random weights).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "parity"))
import seeded_weights as sw  # noqa: E402

SEED = 9


def seeded_state_dict_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The seeded rule's value of every parameter and buffer of `module`."""
    return sw.seeded_state_dict(sw.shapes_of(module.state_dict()), SEED)


def load_seeded(module: torch.nn.Module) -> None:
    """Replace every parameter and buffer of `module` with the seeded rule's (strict)."""
    module.load_state_dict(seeded_state_dict_of(module), strict=True)
