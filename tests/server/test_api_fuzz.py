"""schemathesis against the app's own OpenAPI schema: no request the schema allows (or nearly
allows) makes the server answer 5xx.

Every operation is called with generated path, query and body values, then again with its ids
pointing at objects that exist, as the admin (who may do everything), on a database holding one
project, video, masklet and mask, with the model on
(random weights, 128-px input) so that prompts and propagation run for real. 503 is allowed only
where it means what it says (no model) and never happens here.
"""

from __future__ import annotations

import numpy as np
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from masklet.engine.store import Store  # noqa: E402
from masklet.engine.users import ensure_first_admin, log_in  # noqa: E402
from masklet.io.masks import encode_rle  # noqa: E402
from masklet.io.synthetic import make_synthetic_video, write_mp4  # noqa: E402
from masklet.server import ServerSettings, create_app  # noqa: E402

pytestmark = [pytest.mark.threads(1)]
EXAMPLES = 30  # per operation; about a minute for all of them


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("fuzz")
    media = root / "media"
    media.mkdir()
    write_mp4(make_synthetic_video(6, 96, 128, num_objects=1, seed=2).frames, media / "clip.mp4", fps=24.0)
    url = f"sqlite:///{root / 'fuzz.db'}"
    with Store(url) as store:
        admin = ensure_first_admin(store, "admin-pass-1").user
        project = store.create_project("p", by="test")
        from masklet.engine.projects import add_video

        video = add_video(store, project.id, media / "clip.mp4", by="test")
        masklet = store.create_masklet(video.id, by="test")
        mask = np.zeros((96, 128), bool)
        mask[10:40, 20:70] = True
        store.put_frame_mask(masklet.id, 0, encode_rle(mask), source="manual", by="test")
    torch.manual_seed(0)
    app = create_app(
        ServerSettings(
            database_url=url,
            data_dir=root / "data",
            media_roots=(media,),
            random_weights=True,
            image_size=128,
            max_upload_mib=1,
        )  # fmt: skip
    )
    yield app, admin


@pytest.fixture(scope="module")
def api_schema(served):
    app, _ = served
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


def _no_server_error(case, response) -> None:
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}: {response.content[:500]!r}"
    )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
)
def test_no_server_errors(case, served) -> None:
    app, admin = served
    # a token per case: the fuzzer calls POST /api/logout too
    auth = {"Authorization": f"Bearer {log_in(app.state.store, admin, 'api')}"}
    _no_server_error(case, case.call(headers=auth, timeout=60))
    # the same values on the objects that exist (generated ids nearly always miss them: 404)
    ids = {name: 1 for name in ("project_id", "video_id", "masklet_id", "job_id")}
    if not case.path_parameters or not set(case.path_parameters) & set(ids):
        return
    case.path_parameters = {
        **case.path_parameters,
        **{k: v for k, v in ids.items() if k in case.path_parameters},
    }
    _no_server_error(case, case.call(headers=auth, timeout=60))


def test_the_schema_covers_every_route(api_schema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    for expected in ("/api/login", "/api/projects/{project_id}/videos/upload", "/api/projects/{project_id}/masklets/{masklet_id}",
                     "/api/projects/{project_id}/masklets/{masklet_id}/prompts", "/api/videos/{video_id}/frames/{frame}.jpg"):  # fmt: skip
        assert expected in paths, expected
