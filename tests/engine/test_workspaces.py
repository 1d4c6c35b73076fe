"""WorkflowRegistry: open workflows are bounded, closed when idle, and re-read after a conflict."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.engine.store import StaleWriteError, Store
from masklet.engine.workspaces import WorkflowRegistry
from masklet.io.masks import encode_rle
from masklet.io.synthetic import make_synthetic_video, write_frame_folder

pytestmark = pytest.mark.threads(1)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_bounded_idle_and_refreshed(store: Store, small_model, tmp_path) -> None:
    clip = make_synthetic_video(4, 96, 128, num_objects=1, seed=0)
    write_frame_folder(clip.frames, tmp_path / "clip", suffix=".png")
    project = store.create_project("p")
    video = store.add_video(project.id, str(tmp_path / "clip"), fps=6.0, width=128, height=96, frame_count=4,
                            content_hash="c" * 64)  # fmt: skip
    masklets = [store.create_masklet(video.id, by="t").id for _ in range(3)]
    now = [0.0]
    reg = WorkflowRegistry(store, small_model, max_open=2, idle_s=10.0, clock=lambda: now[0])
    with reg.workflow(masklets[0], phase=1, by="a") as w0:
        pass
    with reg.workflow(masklets[0], phase=1, by="a") as again:
        assert again is w0  # kept open
    with reg.workflow(masklets[1], phase=1, by="a"), reg.workflow(masklets[2], phase=1, by="a"):
        pass
    assert reg.num_open == 2  # the least recently used one was closed
    with reg.workflow(masklets[0], phase=1, by="a") as reopened:
        assert reopened is not w0
    now[0] = 100.0
    with reg.workflow(masklets[0], phase=1, by="a"):
        pass
    assert reg.num_open == 1  # the idle ones were closed
    # someone else saves frame 0 first: the workflow's write is refused, then it re-reads
    with reg.workflow(masklets[0], phase=1, by="a") as work:
        assert work.mask(0).sum() == 0
    store.put_frame_mask(masklets[0], 0, encode_rle(np.ones((96, 128), bool)), source="manual", by="b")
    with pytest.raises(StaleWriteError), reg.workflow(masklets[0], phase=1, by="a") as work:
        work.set_mask(0, np.zeros((96, 128), bool))
    with reg.workflow(masklets[0], phase=1, by="a") as work:
        assert work.mask(0).all()  # the other writer's mask, read again
        work.set_mask(0, np.zeros((96, 128), bool))  # and now it saves
    reg.close()
    assert reg.num_open == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_fast_mode_reaches_every_tracking_session(store: Store, small_model, tmp_path, monkeypatch) -> None:
    """`masklet serve --fast`: the settings, the registry and each workflow's tracking session."""
    import torch

    from masklet.cli.main import build_parser
    from masklet.cli.serve import settings_from_args
    from masklet.predict import precision

    monkeypatch.setattr(precision, "cpu_computes_bfloat16", lambda: True)  # as on a CPU with AVX-512 BF16
    assert settings_from_args(build_parser().parse_args(["serve", "--fast"])).fast
    assert not settings_from_args(build_parser().parse_args(["serve"])).fast
    clip = make_synthetic_video(4, 96, 128, num_objects=1, seed=0)
    write_frame_folder(clip.frames, tmp_path / "clip", suffix=".png")
    video = store.add_video(store.create_project("p").id, str(tmp_path / "clip"), fps=6.0, width=128, height=96,
                            frame_count=4, content_hash="c" * 64)  # fmt: skip
    masklet = store.create_masklet(video.id, by="t").id
    store.put_frame_mask(masklet, 0, encode_rle(clip.masks[0, 0]), source="manual", by="t")
    for fast in (False, True):
        reg = WorkflowRegistry(store, small_model, fast=fast)
        with reg.workflow(masklet, phase=2, by="a") as work:
            work._ready_session()  # the session propagation and Phase-3 clicks run in
            assert work._video.fast.dtype == (torch.bfloat16 if fast else None)
        reg.close()
