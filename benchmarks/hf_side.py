"""The Hugging Face side of the benchmarks: transformers' Sam2VideoModel on an official checkpoint.

Runs under --hf-python (a venv with transformers and torch; torchvision for its processors).
The checkpoint is converted with benchmarks/hf_weights.py (transformers' own renames) and loaded
strictly. Frames are given as the official loader's pixels (common.official_pixels), not through
transformers' video processor, which resizes bilinearly where the official uses PIL's bicubic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from common import official_pixels
from hf_weights import hf_video_config, to_hf_state_dict


def build_hf(model: str, checkpoint: Path):
    """(Sam2VideoModel in eval mode, Sam2VideoProcessor) with the checkpoint's weights."""
    from transformers import Sam2ImageProcessor, Sam2VideoModel, Sam2VideoProcessor, Sam2VideoVideoProcessor

    net = Sam2VideoModel(hf_video_config(model)).eval()
    official = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    net.load_state_dict(to_hf_state_dict(official), strict=True)
    return net, Sam2VideoProcessor(Sam2ImageProcessor(), Sam2VideoVideoProcessor())


def hf_session(net, frame_paths: list[Path], height: int, width: int):
    """An inference session over frames preprocessed as the official loader does."""
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

    size = int(net.config.image_size)
    video = torch.from_numpy(np.stack([official_pixels(p, size) for p in frame_paths]))
    return Sam2VideoInferenceSession(video=video, video_height=height, video_width=width, dtype=torch.float32)


def hf_click(net, processor, session, frame: int, obj_id: int, points, labels, clear: bool) -> torch.Tensor:
    """Add clicks for one object on one frame; its logits at video size (H, W)."""
    processor.add_inputs_to_inference_session(
        session, frame_idx=frame, obj_ids=obj_id, input_points=[[[list(p) for p in points]]],
        input_labels=[[list(labels)]], clear_old_inputs=clear,
    )  # fmt: skip
    out = net(inference_session=session, frame_idx=frame)
    logits = processor.post_process_masks(
        [out.pred_masks], original_sizes=[[session.video_height, session.video_width]], binarize=False
    )[0]
    return logits[session.obj_id_to_idx(obj_id), 0]


def hf_propagate(net, processor, session, max_frames: int):
    """Yields (frame, logits (N, H, W)) from the first prompted frame on."""
    for out in net.propagate_in_video_iterator(session, max_frame_num_to_track=max_frames - 1):
        logits = processor.post_process_masks(
            [out.pred_masks], original_sizes=[[session.video_height, session.video_width]], binarize=False
        )[0]
        yield out.frame_idx, logits[:, 0]
