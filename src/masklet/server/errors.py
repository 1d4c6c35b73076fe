"""Engine errors as HTTP answers: each class to its status, the message kept as the detail."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from masklet.engine.permissions import PermissionDenied
from masklet.engine.service import MaskletBusy
from masklet.engine.store import DuplicateError, StaleWriteError
from masklet.engine.uploads import UploadTooLarge
from masklet.engine.users import AuthError
from masklet.errors import MaskletError, NotFoundError
from masklet.server.model import ModelUnavailable


class OutsideServedFolders(MaskletError):
    """A path that resolves outside every folder the server serves."""


# most specific first: DuplicateError is an InvalidEditError, every one a MaskletError
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (AuthError, 401),
    (PermissionDenied, 403),
    (OutsideServedFolders, 403),
    (ModelUnavailable, 503),
    (UploadTooLarge, 413),
    (NotFoundError, 404),
    (DuplicateError, 409),
    (StaleWriteError, 409),
    (MaskletBusy, 409),
    (MaskletError, 400),
)


def status_for(exc: Exception) -> int:
    return next(code for cls, code in STATUS_OF if isinstance(exc, cls))


def install_error_handlers(app: FastAPI) -> None:
    async def engine_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    app.add_exception_handler(MaskletError, engine_error)
