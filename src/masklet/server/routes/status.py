"""What this server offers: its version, its model, whether model assistance is on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from masklet import __version__
from masklet.server.model import ASSISTANCE_OFF

router = APIRouter(prefix="/api", tags=["status"])


class StatusOut(BaseModel):
    version: str
    model: str | None
    random_weights: bool
    model_assistance: bool
    message: str | None


@router.get("/status", response_model=StatusOut)
def status(request: Request) -> StatusOut:
    """Public (the login page says whether the model helps)."""
    settings = request.app.state.settings
    on = request.app.state.model is not None
    return StatusOut(
        version=__version__, model=settings.model if on else None, random_weights=on and settings.checkpoint is None,
        model_assistance=on, message=None if on else ASSISTANCE_OFF,
    )  # fmt: skip
