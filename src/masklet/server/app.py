"""`create_app(settings)`: the FastAPI app over one store; nothing is built at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from masklet import __version__
from masklet.engine.store import Store
from masklet.server.errors import install_error_handlers
from masklet.server.frames import FrameCache
from masklet.server.routes import auth, projects
from masklet.server.settings import ServerSettings


def create_app(settings: ServerSettings) -> FastAPI:
    """Open (and migrate) the database of `settings` and build the app on it; closed at shutdown."""
    store = Store(settings.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    frames = FrameCache(settings.data_dir, quality=settings.frame_jpeg_quality)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            frames.close()
            store.close()

    app = FastAPI(title="masklet", version=__version__, lifespan=lifespan)
    app.state.settings, app.state.store, app.state.frames = settings, store, frames
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(projects.router)
    return app
