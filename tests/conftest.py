"""Shared test fixtures: small random-weight models and paths to committed test data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# the seeded weight rule shared with the fixture scripts (torch only)
sys.path.insert(0, str(REPO / "tools" / "parity"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def small_model():
    """sam2.1 tiny at 128-px input with random weights: real architecture, fast."""
    import torch

    from masklet.build import build_sam2

    torch.manual_seed(0)
    return build_sam2("sam2.1_hiera_t", image_size=128)


@pytest.fixture(scope="session")
def encoded_frames() -> dict:
    """Image features by (weights, pixels) digest, shared by the full-size video parity tests.

    Each bedroom frame is encoded once instead of once per propagation and per scenario
    (about 2 s a frame at 1024 px on two cores); tracking itself is never cached.
    """
    return {}


@pytest.fixture(scope="module", autouse=True)
def _intra_op_threads(request):
    """Pin torch's intra-op threads for a module marked `pytest.mark.threads(n)`, then restore them.

    Results depend on the count at the 1e-6..1e-4 level (reductions split differently), so a
    module that compares exact numbers or replays fixtures must not inherit another's setting.
    """
    marker = request.node.get_closest_marker("threads")
    if marker is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(marker.args[0])
    yield
    torch.set_num_threads(before)
