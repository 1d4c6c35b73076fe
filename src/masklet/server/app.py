"""`create_app(settings)`: the FastAPI app over one store; nothing is built at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from masklet import __version__
from masklet.engine.jobs import JobRunner
from masklet.engine.store import Store
from masklet.engine.workspaces import WorkflowRegistry
from masklet.predict.feature_cache import FeatureCache
from masklet.server.errors import install_error_handlers
from masklet.server.frames import FrameCache
from masklet.server.model import load_model
from masklet.server.routes import auth, jobs, masks, projects, status
from masklet.server.settings import ServerSettings

STATIC = Path(__file__).resolve().parent / "static"


def create_app(settings: ServerSettings) -> FastAPI:
    """Open (and migrate) the database of `settings` and build the app on it; closed at shutdown."""
    store = Store(settings.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    frames = FrameCache(settings.data_dir, quality=settings.frame_jpeg_quality)
    model = load_model(settings)
    cache = FeatureCache(settings.embedding_cache_mib * 2**20)
    workflows = (
        None
        if model is None
        else WorkflowRegistry(
            store, model, max_open=settings.max_open_workflows, feature_cache=cache, fast=settings.fast
        )
    )
    stale = timedelta(seconds=settings.job_stale_after_s)
    runner = None if workflows is None else JobRunner(store, workflows, stale_after=stale)
    if runner is not None:
        runner.start()  # jobs of a server that stopped are marked interrupted

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if runner is not None:
                runner.close()
            if workflows is not None:
                workflows.close()
            frames.close()
            store.close()

    app = FastAPI(title="masklet", version=__version__, lifespan=lifespan)
    app.state.settings, app.state.store, app.state.frames = settings, store, frames
    app.state.model, app.state.workflows, app.state.jobs = model, workflows, runner
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The annotation page (it asks the API who is logged in)."""
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.include_router(auth.router)
    app.include_router(projects.router)
    app.include_router(masks.router)
    app.include_router(status.router)
    app.include_router(jobs.router)
    return app
