"""`masklet serve`: the data engine as a web annotation tool (FastAPI; built by `create_app`)."""

from masklet.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def create_app(settings: ServerSettings):  # type: ignore[no-untyped-def]
    """The FastAPI app for `settings` (imported here lazily: `import masklet.server` stays light)."""
    from masklet.server.app import create_app as build

    return build(settings)
