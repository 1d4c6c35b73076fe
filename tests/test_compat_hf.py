"""The official Hugging Face entry points map the model ids onto masklet's checkpoint registry."""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.error
from types import MappingProxyType

import numpy as np
import pytest
import torch

import masklet.checkpoints as ck
from masklet.build import build_sam2 as native_build
from masklet.compat import (
    HF_MODEL_ID_TO_FILENAMES,
    SAM2AutomaticMaskGenerator,
    SAM2ImagePredictor,
    SAM2VideoPredictor,
    build_sam2_hf,
    build_sam2_video_predictor_hf,
    config_name_from_file,
)
from masklet.errors import CheckpointError, ConfigError

# sam2 1.1.0 build_sam.HF_MODEL_ID_TO_FILENAMES, copied by hand: model id -> (config file, checkpoint file)
OFFICIAL = {
    "facebook/sam2-hiera-tiny": ("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny.pt"),
    "facebook/sam2-hiera-small": ("configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt"),
    "facebook/sam2-hiera-base-plus": ("configs/sam2/sam2_hiera_b+.yaml", "sam2_hiera_base_plus.pt"),
    "facebook/sam2-hiera-large": ("configs/sam2/sam2_hiera_l.yaml", "sam2_hiera_large.pt"),
    "facebook/sam2.1-hiera-tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "facebook/sam2.1-hiera-small": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "facebook/sam2.1-hiera-base-plus": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "facebook/sam2.1-hiera-large": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}
TINY = "facebook/sam2.1-hiera-tiny"


def test_every_official_id_maps_to_its_config_and_checkpoint():
    assert dict(HF_MODEL_ID_TO_FILENAMES) == OFFICIAL
    for config_file, filename in OFFICIAL.values():
        name = config_name_from_file(config_file)
        assert ck.checkpoint_info(filename).config_name == name  # the registry entry of that architecture


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", refuse)


@pytest.mark.parametrize(
    "entry",
    [
        build_sam2_hf,
        build_sam2_video_predictor_hf,
        SAM2ImagePredictor.from_pretrained,
        SAM2VideoPredictor.from_pretrained,
        SAM2AutomaticMaskGenerator.from_pretrained,
    ],
)
def test_offline_error_names_the_url_and_the_target_path(entry, offline, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        entry(TINY, device="cpu", progress=False)
    message = str(err.value)
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt" in message
    assert str(tmp_path / "sam2.1_hiera_tiny.pt") in message
    assert not list(tmp_path.iterdir())


def test_unknown_id_lists_the_known_ones(tmp_path):
    with pytest.raises(
        ConfigError, match="unknown SAM 2 model id 'facebook/sam3'.*facebook/sam2.1-hiera-large"
    ):
        build_sam2_hf("facebook/sam3", cache_dir=tmp_path)


@pytest.fixture(scope="module")
def cached_tiny(tmp_path_factory):
    """A sam2.1_hiera_t checkpoint (random weights, official layout) and its registry entry."""
    torch.manual_seed(0)
    model = native_build("sam2.1_hiera_t")
    cache = tmp_path_factory.mktemp("cache")
    path = cache / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    data = path.read_bytes()
    info = dataclasses.replace(
        ck.CHECKPOINTS["sam2.1_hiera_t"], sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)
    )
    return cache, info, model.state_dict()


def test_a_cached_checkpoint_loads_without_network(cached_tiny, offline, monkeypatch):
    cache, info, weights = cached_tiny
    # the registry's hash is that of Meta's file; here the cached file is ours
    monkeypatch.setattr(ck, "CHECKPOINTS", MappingProxyType({**ck.CHECKPOINTS, "sam2.1_hiera_t": info}))
    small = ["++model.image_size=256"]
    predictor = SAM2ImagePredictor.from_pretrained(
        TINY, device="cpu", cache_dir=cache, hydra_overrides_extra=small, mask_threshold=0.5
    )
    assert predictor.mask_threshold == 0.5  # the kwargs reach the predictor too, as upstream
    loaded = predictor.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
    assert predictor.model.config.mask_decoder.dynamic_multimask_via_stability  # build_sam2's postprocessing
    predictor.set_image(np.zeros((32, 32, 3), np.uint8))
    masks, _, _ = predictor.predict(point_coords=np.array([[16, 16]]), point_labels=np.array([1]))
    assert masks.dtype == np.float32

    video = SAM2VideoPredictor.from_pretrained(
        TINY, device="cpu", cache_dir=cache, hydra_overrides_extra=small
    )
    assert video.video.config.fill_hole_area == 8  # build_sam2_video_predictor's postprocessing
    assert torch.equal(video.model.state_dict()["maskmem_tpos_enc"], weights["maskmem_tpos_enc"])
    generator = SAM2AutomaticMaskGenerator.from_pretrained(
        TINY, device="cpu", cache_dir=cache, hydra_overrides_extra=small, points_per_side=4
    )
    assert len(generator.point_grids[0]) == 16
