"""The exceptions masklet raises on purpose; all derive from `MaskletError`."""

from __future__ import annotations


class MaskletError(Exception):
    """Base class of every deliberate masklet error."""


class ConfigError(MaskletError, ValueError):
    """An unknown model name or an invalid combination of config fields."""


class CheckpointError(MaskletError):
    """A checkpoint that cannot be downloaded, verified or loaded into the chosen model."""


class FrameSourceError(MaskletError):
    """A video, image or frame folder that cannot be opened or decoded."""


class PromptError(MaskletError, ValueError):
    """A point, box or mask prompt that does not fit the image it is given for."""


class SessionError(MaskletError, RuntimeError):
    """A predictor or tracking session used out of order (e.g. predict before set_image)."""


class NotFoundError(MaskletError, KeyError):
    """A project, video, masklet or object id that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class FormatError(MaskletError, ValueError):
    """A malformed annotation file (SA-V JSON, DAVIS folder, COCO JSON, RLE)."""
