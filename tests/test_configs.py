from __future__ import annotations

import dataclasses

import pytest

from masklet.configs import CONFIGS, HieraConfig, config_names, get_config
from masklet.errors import ConfigError


def test_eight_official_configs():
    assert len(config_names()) == 8
    assert {c.hiera.embed_dim for c in CONFIGS.values()} == {96, 112, 144}
    assert get_config("sam2.1_hiera_b+").hiera.stage_channels == (112, 224, 448, 896)
    assert get_config("sam2_hiera_l").hiera.stage_channels == (144, 288, 576, 1152)


def test_v20_and_v21_differ_only_in_tracking_flags():
    for size in ("t", "s", "b+", "l"):
        old, new = get_config(f"sam2_hiera_{size}"), get_config(f"sam2.1_hiera_{size}")
        assert old.hiera == new.hiera
        assert not old.tracking.no_obj_embed_spatial and new.tracking.no_obj_embed_spatial
        assert not old.tracking.add_tpos_enc_to_obj_ptrs and new.tracking.proj_tpos_enc_in_obj_ptrs


def test_aliases_and_overrides():
    cfg = get_config("sam2.1_hiera_base_plus", image_size=512, tracking={"fill_hole_area": 0})
    assert cfg.name == "sam2.1_hiera_b+"
    assert cfg.image_size == 512 and cfg.image_embedding_size == 32
    assert cfg.tracking.fill_hole_area == 0
    assert CONFIGS["sam2.1_hiera_b+"].image_size == 1024  # the registry is unchanged


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONFIGS["sam2.1_hiera_t"].image_size = 512  # type: ignore[misc]
    with pytest.raises(TypeError):
        CONFIGS["new"] = CONFIGS["sam2.1_hiera_t"]  # type: ignore[index]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: get_config("sam3_hiera_t"), "unknown model"),
        (lambda: get_config("sam2.1_hiera_t", image_size=1000), "multiple of the backbone stride"),
        (lambda: get_config("sam2.1_hiera_t", colour="red"), "no field"),
        (lambda: get_config("sam2.1_hiera_t", tracking={"bogus": 1}), "bad override"),
        (lambda: get_config("sam2.1_hiera_t", tracking={"proj_tpos_enc_in_obj_ptrs": True,
                                                        "add_tpos_enc_to_obj_ptrs": False,
                                                        "use_signed_tpos_enc_to_obj_ptrs": False}),
         "needs add_tpos_enc_to_obj_ptrs"),
        (lambda: HieraConfig(stages=(1, 2), window_spec=(8, 4, 14)), "window sizes"),
        (lambda: HieraConfig(global_att_blocks=(99,)), "reach past"),
    ],
)
def test_bad_configs_raise_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_stage_channels_round_stage_by_stage():
    assert HieraConfig(embed_dim=7, dim_mul=1.5).stage_channels == (7, 10, 15, 22)
