"""The web tool's API on the real app (FastAPI TestClient), on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet.engine.store import Store
from masklet.engine.users import add_user, ensure_first_admin
from masklet.io.synthetic import make_synthetic_video, write_mp4
from masklet.server import ServerSettings, create_app

fastapi_testclient = pytest.importorskip("fastapi.testclient")

PASSWORD = {"admin": "admin-pass-1", "ann": "annotator-pass", "rev": "reviewer-pass"}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    clip = make_synthetic_video(6, 96, 128, num_objects=1, seed=2)
    write_mp4(clip.frames, root / "clip.mp4", fps=24.0)
    (tmp_path / "secret.mp4").write_bytes((root / "clip.mp4").read_bytes())  # outside the served folder
    os.symlink(tmp_path / "secret.mp4", root / "link.mp4")
    return root


@pytest.fixture
def client(store_url: str, tmp_path: Path, media: Path):
    with Store(store_url) as store:
        ensure_first_admin(store, PASSWORD["admin"])
        add_user(store, "ann", "annotator", password=PASSWORD["ann"], by="test")
        add_user(store, "rev", "reviewer", password=PASSWORD["rev"], by="test")
    settings = ServerSettings(database_url=store_url, data_dir=tmp_path / "data", media_roots=(media,))
    with fastapi_testclient.TestClient(create_app(settings)) as c:
        yield c


def token(client, name: str, kind: str = "api") -> dict[str, str]:
    r = client.post("/api/login", json={"name": name, "password": PASSWORD[name], "kind": kind})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_nothing_without_a_login(client) -> None:
    for method, url in [("get", "/api/me"), ("get", "/api/projects"), ("post", "/api/projects"),
                        ("get", "/api/users"), ("get", "/api/videos/1/frames/0.jpg")]:  # fmt: skip
        r = client.request(method, url, json={"name": "x"})
        assert r.status_code == 401, (url, r.text)
        assert "log in first" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    bad = client.get("/api/projects", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert client.get("/openapi.json").status_code == 200  # the schema is public


def test_login_cookie_and_logout(client) -> None:
    wrong = client.post("/api/login", json={"name": "ann", "password": "nope"})
    unknown = client.post("/api/login", json={"name": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong user name or password"}
    r = client.post("/api/login", json={"name": "ann", "password": PASSWORD["ann"]})
    assert r.status_code == 200 and r.json()["user"]["role"] == "annotator"
    cookie = r.headers["set-cookie"]
    assert "masklet_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/api/me").json()["name"] == "ann"  # the cookie alone logs in
    assert client.post("/api/logout").status_code == 204
    client.cookies.clear()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {r.json()['token']}"}).status_code == 401


def test_roles(client) -> None:
    admin, ann, rev = token(client, "admin"), token(client, "ann"), token(client, "rev")
    assert client.post("/api/projects", json={"name": "p"}, headers=ann).status_code == 403
    denied = client.post("/api/users", json={"name": "x", "role": "admin"}, headers=rev)
    assert denied.status_code == 403 and "reviewer role may not manage users" in denied.json()["detail"]
    r = client.post("/api/projects", json={"name": "p"}, headers=admin)
    assert r.status_code == 201
    assert client.post("/api/projects", json={"name": "p"}, headers=admin).status_code == 409
    assert [s["project"]["name"] for s in client.get("/api/projects", headers=rev).json()] == ["p"]
    new = client.post("/api/users", json={"name": "ann2", "role": "annotator"}, headers=admin).json()
    assert len(new["generated_password"]) >= 16 and new["user"]["role"] == "annotator"
    with_pw = client.post("/api/users", json={"name": "ann3", "role": "annotator", "password": "short"}, headers=admin)
    assert with_pw.status_code == 422


def test_register_video_under_served_folders_only(client, media: Path) -> None:
    admin, ann = token(client, "admin"), token(client, "ann")
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    for path in ("../secret.mp4", str(media.parent / "secret.mp4"), "link.mp4", "/etc/passwd", "a\x00b"):
        r = client.post(f"/api/projects/{pid}/videos", json={"path": path}, headers=admin)
        assert r.status_code == 403, (path, r.text)
    assert client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=ann).status_code == 403
    missing = client.post(f"/api/projects/{pid}/videos", json={"path": "none.mp4"}, headers=admin)
    assert missing.status_code == 400 and "none.mp4" in missing.json()["detail"]
    r = client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=admin)
    assert r.status_code == 201, r.text
    video = r.json()
    assert (video["width"], video["height"], video["frame_count"]) == (128, 96, 6)
    assert client.get(f"/api/projects/{pid}/videos", headers=ann).json() == [video]
    assert client.post("/api/projects/999/videos", json={"path": "clip.mp4"}, headers=admin).status_code == 404

    jpeg = client.get(f"/api/videos/{video['id']}/frames/3.jpg", headers=ann)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    shown = np.asarray(Image.open(io.BytesIO(jpeg.content)))
    expected = make_synthetic_video(6, 96, 128, num_objects=1, seed=2).frames[3]
    assert shown.shape == (96, 128, 3) and np.abs(shown.astype(int) - expected).mean() < 12  # mp4 + JPEG loss
    assert client.get(f"/api/videos/{video['id']}/frames/3.jpg", headers=ann).content == jpeg.content  # cached
    assert client.get(f"/api/videos/{video['id']}/frames/6.jpg", headers=ann).status_code == 400
    assert client.get("/api/videos/99/frames/0.jpg", headers=ann).status_code == 404


def test_review_by_role(client, store_url: str) -> None:
    admin, ann, rev = token(client, "admin"), token(client, "ann"), token(client, "rev")
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    vid = client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=admin).json()["id"]
    with Store(store_url) as store:
        mid = store.create_masklet(vid, by="ann").id
    url = f"/api/projects/{pid}/masklets/{mid}/review"
    assert client.post(url, json={"action": "submit"}, headers=rev).status_code == 403
    assert client.post(url, json={"action": "submit"}, headers=ann).json()["status"] == "in_review"
    refused = client.post(url, json={"action": "accept"}, headers=ann)
    assert refused.status_code == 403 and "annotator role may not accept" in refused.json()["detail"]
    assert client.post(url, json={"action": "reject"}, headers=rev).status_code == 400  # no reason
    stale = client.post(url, json={"action": "accept", "version": 1}, headers=rev)
    assert stale.status_code == 409
    done = client.post(url, json={"action": "accept"}, headers=rev).json()
    assert done["status"] == "accepted"
    assert [m["id"] for m in client.get(f"/api/projects/{pid}/masklets?status=accepted", headers=ann).json()] == [mid]
    assert client.post("/api/projects/999/masklets/1/review", json={"action": "submit"}, headers=ann).status_code == 404
    assert client.post(url, json={"action": "approve"}, headers=rev).status_code == 422
