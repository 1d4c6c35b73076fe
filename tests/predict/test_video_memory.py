"""RAM does not grow with video length (issue 3): peak RSS over 200 and 2,000 synthetic frames.

Each run is its own process (tools/bench/track_memory.py): one object clicked on frame 0 of a
synthetic mp4, decoded lazily, propagated to the end with the default session limits at a
128-px `image_size`. The peak is counted from after the model is loaded (building the seeded
weights briefly holds a second copy of them, a peak that would hide any growth below it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench" / "track_memory.py"
SHORT, LONG = 200, 2000


def track(frames: int, tmp_path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--frames", str(frames), "--threads", "2", "--work-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss_does_not_grow_with_video_length(tmp_path) -> None:
    short = track(SHORT, tmp_path)
    long = track(LONG, tmp_path)
    assert (short["frames"], long["frames"]) == (SHORT, LONG)
    # the same session state in RAM at the end of both runs; the rest went to disk
    in_ram = ("memories_in_ram", "results_in_ram", "features_cached")
    assert [short[k] for k in in_ram] == [long[k] for k in in_ram]
    assert long["spilled"] > short["spilled"] > 0
    growth = long["peak_rss_mib"] / short["peak_rss_mib"] - 1
    assert abs(growth) < 0.10, (
        f"peak RSS {short['peak_rss_mib']} MiB over {SHORT} frames, {long['peak_rss_mib']} MiB over {LONG}"
    )
