"""The server process's one model: built from the settings, or none (model assistance off)."""

from __future__ import annotations

import logging
from typing import Any

from masklet.errors import MaskletError
from masklet.server.settings import ServerSettings

log = logging.getLogger(__name__)

ASSISTANCE_OFF = (
    "model assistance is off: no checkpoint was given (start `masklet serve --checkpoint PATH`, "
    "or `--checkpoint download`); the manual tools work"
)


class ModelUnavailable(MaskletError):
    """A model request to a server started without a model."""


def load_model(settings: ServerSettings) -> Any | None:
    """The model of `settings` in eval mode, or None when assistance is off."""
    if not settings.model_assistance:
        log.info(ASSISTANCE_OFF)  # `masklet serve` says it on the console
        return None
    from masklet.build import build_sam2

    overrides = {} if settings.image_size is None else {"image_size": settings.image_size}
    model = build_sam2(settings.model, settings.checkpoint, settings.device, **overrides)
    if settings.checkpoint is None:
        log.info("%s has RANDOM weights (--random-weights): masks mean nothing", settings.model)
    return model.eval()
