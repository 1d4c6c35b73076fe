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
    write_mp4(make_synthetic_video(13, 96, 128, num_objects=1, seed=3).frames, root / "long.mp4", fps=24.0)
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
    with_pw = client.post(
        "/api/users", json={"name": "ann3", "role": "annotator", "password": "short"}, headers=admin
    )
    assert with_pw.status_code == 422


def test_register_video_under_served_folders_only(client, media: Path) -> None:
    admin, ann = token(client, "admin"), token(client, "ann")
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    for path in ("../secret.mp4", str(media.parent / "secret.mp4"), "link.mp4", "/etc/passwd", "a\x00b"):
        r = client.post(f"/api/projects/{pid}/videos", json={"path": path}, headers=admin)
        assert r.status_code == 403, (path, r.text)
    assert (
        client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=ann).status_code == 403
    )
    missing = client.post(f"/api/projects/{pid}/videos", json={"path": "none.mp4"}, headers=admin)
    assert missing.status_code == 400 and "none.mp4" in missing.json()["detail"]
    r = client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=admin)
    assert r.status_code == 201, r.text
    video = r.json()
    assert (video["width"], video["height"], video["frame_count"]) == (128, 96, 6)
    assert client.get(f"/api/projects/{pid}/videos", headers=ann).json() == [video]
    assert (
        client.post("/api/projects/999/videos", json={"path": "clip.mp4"}, headers=admin).status_code == 404
    )

    jpeg = client.get(f"/api/videos/{video['id']}/frames/3.jpg", headers=ann)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    shown = np.asarray(Image.open(io.BytesIO(jpeg.content)))
    expected = make_synthetic_video(6, 96, 128, num_objects=1, seed=2).frames[3]
    assert shown.shape == (96, 128, 3) and np.abs(shown.astype(int) - expected).mean() < 12  # mp4 + JPEG loss
    assert (
        client.get(f"/api/videos/{video['id']}/frames/3.jpg", headers=ann).content == jpeg.content
    )  # cached
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
    assert [
        m["id"] for m in client.get(f"/api/projects/{pid}/masklets?status=accepted", headers=ann).json()
    ] == [mid]
    assert (
        client.post("/api/projects/999/masklets/1/review", json={"action": "submit"}, headers=ann).status_code
        == 404
    )
    assert client.post(url, json={"action": "approve"}, headers=rev).status_code == 422


def _rle(mask: np.ndarray) -> dict:
    from masklet.io.masks import encode_rle

    return encode_rle(mask)


def test_masks_drawn_by_hand_versions_and_export(client, tmp_path: Path) -> None:
    from masklet.io.formats import read_sav_json

    admin, ann, rev = token(client, "admin"), token(client, "ann"), token(client, "rev")
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    vid = client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=admin).json()["id"]
    assert client.post(f"/api/projects/{pid}/videos/{vid}/masklets", json={}, headers=rev).status_code == 403
    m = client.post(
        f"/api/projects/{pid}/videos/{vid}/masklets", json={"category": "cup"}, headers=ann
    ).json()
    assert (m["obj_id"], m["category"], m["status"]) == (0, "cup", "draft")
    mask = np.zeros((96, 128), bool)
    mask[10:30, 20:60] = True
    url = f"/api/projects/{pid}/masklets/{m['id']}/masks/4"  # an SA-V annotated frame (every 4th)
    first = client.put(url, json={"rle": _rle(mask), "expected_version": None, "seconds": 4.5}, headers=ann)
    assert first.status_code == 200, first.text
    assert (first.json()["version"], first.json()["source"]) == (1, "manual")
    # another annotator drew on version 1 meanwhile: the second save based on "no mask" is refused
    mask2 = mask.copy()
    mask2[40:50] = True
    assert (
        client.put(url, json={"rle": _rle(mask2), "expected_version": 1}, headers=admin).json()["version"]
        == 2
    )
    stale = client.put(url, json={"rle": _rle(mask), "expected_version": 1}, headers=ann)
    assert stale.status_code == 409 and "another writer changed it" in stale.json()["detail"]
    assert client.put(url, json={"rle": _rle(mask), "expected_version": 2}, headers=rev).status_code == 403
    wrong_size = client.put(
        url, json={"rle": _rle(np.zeros((96, 64), bool)), "expected_version": 2}, headers=ann
    )
    assert wrong_size.status_code == 400
    shown = client.get(f"/api/projects/{pid}/videos/{vid}/frames/4/masks", headers=rev).json()
    assert len(shown) == 1 and shown[0]["version"] == 2
    from masklet.io.masks import decode_rle

    np.testing.assert_array_equal(decode_rle(shown[0]["rle"]), mask2)
    assert client.get(f"/api/projects/{pid}/videos/{vid}/frames/3/masks", headers=rev).json() == []
    assert client.get(f"/api/projects/{pid}/videos/{vid}/frames/6/masks", headers=rev).status_code == 400

    effort = client.get(f"/api/projects/{pid}/effort", headers=rev)
    assert effort.status_code == 200

    import zipfile

    for fmt in ("sav", "sav-eval", "davis", "coco", "ytvis"):
        r = client.get(f"/api/projects/{pid}/export?format={fmt}", headers=rev)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip", (fmt, r.text)
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert names, fmt
        if fmt == "ytvis":  # one file for the project (it was a 500: no folder to zip)
            assert names == ["ytvis.json"]
    sav = zipfile.ZipFile(
        io.BytesIO(client.get(f"/api/projects/{pid}/export?format=sav", headers=rev).content)
    )
    [name] = sav.namelist()
    sav.extract(name, tmp_path)
    exported = read_sav_json(tmp_path / name).to_eval_masks()
    assert list(exported) == [0] and 4 in exported[0]
    np.testing.assert_array_equal(exported[0][4].decode(), mask2)  # the download holds the masks shown
    assert client.get(f"/api/projects/{pid}/export?format=xml", headers=rev).status_code == 422
    # found by the schema fuzzer: each was a 500
    big = client.post(f"/api/projects/{pid}/videos/{vid}/masklets", json={"obj_id": 1000}, headers=ann)
    assert big.status_code == 201
    too_wide = client.get(f"/api/projects/{pid}/export?format=sav-eval", headers=rev)
    assert too_wide.status_code == 400 and "3-digit folder name" in too_wide.json()["detail"]
    assert client.get(f"/api/projects/{2**63}/masklets", headers=rev).status_code == 422
    long_name = client.post(f"/api/projects/{pid}/videos", json={"path": "0" * 4000}, headers=admin)
    assert long_name.status_code == 400 and "File name too long" in long_name.json()["detail"]
    bad = client.delete(f"{url}?expected_version=1", headers=ann)
    assert bad.status_code == 409
    assert client.delete(f"{url}?expected_version=2", headers=ann).status_code == 204
    assert client.get(f"/api/projects/{pid}/videos/{vid}/frames/4/masks", headers=rev).json() == []


@pytest.fixture
def model_client(store_url: str, tmp_path: Path, media: Path):
    """A server whose model is the real sam2.1 tiny at 128 px with random weights."""
    import torch

    torch.manual_seed(0)
    with Store(store_url) as store:
        ensure_first_admin(store, PASSWORD["admin"])
        add_user(store, "ann", "annotator", password=PASSWORD["ann"], by="test")
        add_user(store, "rev", "reviewer", password=PASSWORD["rev"], by="test")
    settings = ServerSettings(database_url=store_url, data_dir=tmp_path / "data", media_roots=(media,),
                              random_weights=True, image_size=128, max_open_workflows=2)  # fmt: skip
    with fastapi_testclient.TestClient(create_app(settings)) as c:
        yield c


def test_prompts_need_a_model(client) -> None:
    admin, ann = token(client, "admin"), token(client, "ann")
    status = client.get("/api/status").json()
    assert status["model_assistance"] is False and "--checkpoint" in status["message"]
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    vid = client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=admin).json()["id"]
    mid = client.post(f"/api/projects/{pid}/videos/{vid}/masklets", json={}, headers=ann).json()["id"]
    r = client.post(f"/api/projects/{pid}/masklets/{mid}/prompts",
                    json={"frame": 0, "phase": 1, "points": [[64, 48]], "labels": [1]}, headers=ann)  # fmt: skip
    assert r.status_code == 503 and "model assistance is off" in r.json()["detail"]
    r = client.post(f"/api/projects/{pid}/masklets/{mid}/propagate", json={"phase": 3}, headers=ann)
    assert r.status_code == 503
    # the manual tools still work
    rle = _rle(np.ones((96, 128), bool))
    assert client.put(f"/api/projects/{pid}/masklets/{mid}/masks/0", json={"rle": rle, "expected_version": None},
                      headers=ann).status_code == 200  # fmt: skip


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_clicks_and_boxes_answer_with_a_saved_mask(model_client) -> None:
    client = model_client
    admin, ann, rev = token(client, "admin"), token(client, "ann"), token(client, "rev")
    status = client.get("/api/status").json()
    assert status["model_assistance"] and status["random_weights"] and status["model"] == "sam2.1_hiera_t"
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    vid = client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=admin).json()["id"]
    mids = [
        client.post(f"/api/projects/{pid}/videos/{vid}/masklets", json={}, headers=ann).json()["id"]
        for _ in range(3)
    ]
    url = f"/api/projects/{pid}/masklets/{mids[0]}/prompts"
    first = client.post(url, json={"frame": 0, "phase": 1, "points": [[64, 48]], "labels": [1]}, headers=ann)
    assert first.status_code == 200, first.text
    assert (first.json()["source"], first.json()["version"], first.json()["rle"]["size"]) == (
        "click_model",
        1,
        [96, 128],
    )
    second = client.post(url, json={"frame": 0, "phase": 1, "points": [[10, 10]], "labels": [0]}, headers=ann)
    assert second.json()["version"] == 2
    shown = client.get(f"/api/projects/{pid}/videos/{vid}/frames/0/masks", headers=rev).json()
    assert [m["version"] for m in shown] == [2] and shown[0]["rle"] == second.json()["rle"]
    # a brush stroke, then a click on the same frame: the click builds on the drawn mask (no 409)
    drawn = np.zeros((96, 128), bool)
    drawn[5:25, 5:25] = True
    put = client.put(f"/api/projects/{pid}/masklets/{mids[0]}/masks/0",
                     json={"rle": _rle(drawn), "expected_version": 2, "phase": 1}, headers=ann)  # fmt: skip
    assert put.status_code == 200 and (put.json()["version"], put.json()["source"]) == (3, "manual")
    after = client.post(url, json={"frame": 0, "phase": 1, "points": [[64, 48]], "labels": [1]}, headers=ann)
    assert after.status_code == 200, after.text
    assert after.json()["version"] == 4
    stale = client.put(f"/api/projects/{pid}/masklets/{mids[0]}/masks/0",
                       json={"rle": _rle(drawn), "expected_version": 3}, headers=ann)  # fmt: skip
    assert stale.status_code == 409
    box = client.post(url, json={"frame": 4, "phase": 1, "box": [20, 10, 100, 80]}, headers=ann)
    assert box.status_code == 200 and box.json()["frame"] == 4
    assert (
        client.post(
            url, json={"frame": 0, "phase": 1, "points": [[1, 1]], "labels": [1]}, headers=rev
        ).status_code
        == 403
    )
    for bad in ({"points": [[1, 1]]}, {"points": [[1, 1]], "labels": [1], "box": [0, 0, 5, 5]}, {}):
        r = client.post(url, json={"frame": 0, "phase": 1, **bad}, headers=ann)
        assert r.status_code == 400, (bad, r.text)
    assert (
        client.post(url, json={"frame": 9, "phase": 1, "box": [0, 0, 5, 5]}, headers=ann).status_code == 400
    )
    # phase 3 (the tracking session) on two more masklets: at most two workflows stay open
    for mid in mids[1:]:
        r = client.post(f"/api/projects/{pid}/masklets/{mid}/prompts",
                        json={"frame": 0, "phase": 3, "points": [[64, 48]], "labels": [1]}, headers=ann)  # fmt: skip
        assert r.status_code == 200, r.text
    assert client.app.state.workflows.num_open == 2
    again = client.post(url, json={"frame": 0, "phase": 1, "points": [[70, 50]], "labels": [1]}, headers=ann)
    assert again.json()["version"] == 5  # reopened from the store


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_propagation_job_streams_progress_and_saves_frames(model_client) -> None:
    import json

    client = model_client
    admin, ann, rev = token(client, "admin"), token(client, "ann"), token(client, "rev")
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    vid = client.post(f"/api/projects/{pid}/videos", json={"path": "long.mp4"}, headers=admin).json()["id"]
    mid = client.post(f"/api/projects/{pid}/videos/{vid}/masklets", json={}, headers=ann).json()["id"]
    base = f"/api/projects/{pid}/masklets/{mid}"
    assert (
        client.post(f"{base}/propagate", json={"phase": 3}, headers=ann).status_code == 400
    )  # nothing to track from
    assert client.post(f"{base}/prompts", json={"frame": 0, "phase": 3, "points": [[60, 40]], "labels": [1]},
                       headers=ann).status_code == 200  # fmt: skip
    assert client.post(f"{base}/propagate", json={"phase": 3}, headers=rev).status_code == 403
    started = client.post(f"{base}/propagate", json={"phase": 3}, headers=ann)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["frames_total"] == 3 and job["status"] in (
        "queued",
        "running",
    )  # frames 4, 8, 12 (24 fps: every 4th)
    seen = []
    with client.stream("GET", f"/api/projects/{pid}/jobs/{job['id']}/events", headers=rev) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        for line in events.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    assert seen[-1]["status"] == "done" and seen[-1]["frames_done"] == 3
    assert [s["frames_done"] for s in seen] == sorted(s["frames_done"] for s in seen)  # progress only grows
    saved = {
        f: client.get(f"/api/projects/{pid}/videos/{vid}/frames/{f}/masks", headers=rev).json()
        for f in (0, 4, 8, 12)
    }
    assert saved[0][0]["source"] == "click_model"
    assert all(saved[f][0]["source"] == "propagated" for f in (4, 8, 12))
    listed = client.get(f"/api/projects/{pid}/jobs?video_id={vid}", headers=rev).json()
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.post(f"/api/projects/{pid}/jobs/{job['id']}/resume", headers=ann).status_code == 400
    assert client.get(f"/api/projects/{pid}/jobs/999", headers=ann).status_code == 404
    back = client.post(
        f"{base}/propagate", json={"phase": 3, "start": 12, "reverse": True}, headers=ann
    ).json()
    assert back["frames_total"] == 3  # 12, 8, 4 (frame 0 is the annotator's)


def test_upload_video_with_a_size_limit(store_url: str, tmp_path: Path, media: Path) -> None:
    with Store(store_url) as store:
        ensure_first_admin(store, PASSWORD["admin"])
        add_user(store, "ann", "annotator", password=PASSWORD["ann"], by="test")
    data = tmp_path / "data"
    settings = ServerSettings(database_url=store_url, data_dir=data, max_upload_mib=1)
    with fastapi_testclient.TestClient(create_app(settings)) as client:
        admin, ann = token(client, "admin"), token(client, "ann")
        pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
        url = f"/api/projects/{pid}/videos/upload"
        body = (media / "clip.mp4").read_bytes()

        def upload(name: str, content, headers=admin):
            return client.post(url, params={"name": name}, content=content, headers=headers)

        assert upload("clip.mp4", body, ann).status_code == 403
        for name in ("../clip.mp4", "a/clip.mp4", "..mp4", ".clip.mp4", "clip.txt", "c\\lip.mp4"):
            r = upload(name, body)
            assert r.status_code == 400, (name, r.text)
        too_big = b"\0" * (2**20 + 1)
        r = upload("big.mp4", too_big)  # Content-Length over the limit: refused before reading
        assert r.status_code == 413 and "1 MiB" in r.json()["detail"]
        r = upload("big.mp4", iter([too_big[:600_000], too_big[600_000:]]))  # chunked: no length given
        assert r.status_code == 413
        corrupt = upload("broken.mp4", b"not a video" * 100)
        assert corrupt.status_code == 400 and "broken.mp4" in corrupt.json()["detail"]
        assert upload("empty.mp4", b"").status_code == 400
        assert not [p for p in (data / "uploads").rglob("*") if p.is_file()]  # nothing refused was kept

        first = upload("clip.mp4", body)
        assert first.status_code == 201, first.text
        video = first.json()
        assert (video["width"], video["height"], video["frame_count"]) == (128, 96, 6)
        assert video["file"] == "clip.mp4" and (data / "uploads" / str(pid) / "clip.mp4").is_file()
        same = upload("clip.mp4", body)  # the same video twice in a project
        assert same.status_code == 409 and not (data / "uploads" / str(pid) / "clip-1.mp4").exists()
        other = upload("clip.mp4", (media / "long.mp4").read_bytes())  # the name again: not an overwrite
        assert other.json()["file"] == "clip-1.mp4" and other.json()["name"] == "clip-1"
        assert client.get(f"/api/videos/{video['id']}/frames/5.jpg", headers=ann).status_code == 200
        assert client.post("/api/projects/999/videos/upload", params={"name": "x.mp4"}, content=body,
                           headers=admin).status_code == 404  # fmt: skip


def test_rename_categorise_and_delete_objects(client, store_url: str) -> None:
    admin, ann, rev = token(client, "admin"), token(client, "ann"), token(client, "rev")
    pid = client.post("/api/projects", json={"name": "p"}, headers=admin).json()["id"]
    vid = client.post(f"/api/projects/{pid}/videos", json={"path": "clip.mp4"}, headers=admin).json()["id"]
    new = client.post(f"/api/projects/{pid}/videos/{vid}/masklets", json={}, headers=ann).json()
    url = f"/api/projects/{pid}/masklets/{new['id']}"
    assert new["name"] is None and new["version"] == 1
    assert client.patch(url, json={"version": 1, "name": "girl"}, headers=rev).status_code == 403
    named = client.patch(url, json={"version": 1, "name": "girl", "category": "person"}, headers=ann)
    assert named.status_code == 200, named.text
    assert (named.json()["name"], named.json()["category"], named.json()["version"]) == ("girl", "person", 2)
    stale = client.patch(url, json={"version": 1, "category": "cat"}, headers=admin)
    assert stale.status_code == 409
    kept = client.patch(url, json={"version": 2, "category": None}, headers=ann).json()  # name left out: kept
    assert (kept["name"], kept["category"], kept["version"]) == ("girl", None, 3)
    assert client.patch(url, json={"version": 3}, headers=ann).status_code == 400  # nothing to change
    listed = client.get(f"/api/projects/{pid}/masklets", headers=rev).json()
    assert [(m["id"], m["name"]) for m in listed] == [(new["id"], "girl")]

    mask = np.zeros((96, 128), bool)
    mask[10:30, 20:60] = True
    for frame in (0, 4):
        put = client.put(f"{url}/masks/{frame}", json={"rle": _rle(mask), "expected_version": None, "seconds": 2.0},
                         headers=ann)  # fmt: skip
        assert put.status_code == 200
    version = client.get(f"/api/projects/{pid}/masklets", headers=ann).json()[0]["version"]
    assert client.delete(url, params={"version": version}, headers=rev).status_code == 403
    assert client.delete(url, params={"version": version - 1}, headers=ann).status_code == 409
    assert client.delete(url, params={"version": version}, headers=ann).status_code == 204
    assert client.get(f"/api/projects/{pid}/masklets", headers=ann).json() == []
    assert client.get(f"/api/projects/{pid}/videos/{vid}/frames/4/masks", headers=ann).json() == []
    assert client.delete(url, params={"version": version}, headers=ann).status_code == 404
    assert client.get(f"/api/projects/{pid}/effort", headers=rev).status_code == 200
    with Store(store_url) as store:
        gone = [e for e in store.list_events(project_id=pid) if e.action == "masklet.delete"]
        assert len(gone) == 1 and gone[0].payload["frames"] == 2 and gone[0].by == "ann"
        assert all(e.masklet_id is None for e in store.list_events(project_id=pid))  # history kept

    accepted = client.post(f"/api/projects/{pid}/videos/{vid}/masklets", json={}, headers=ann).json()
    with Store(store_url) as store:
        m = store.set_masklet_status(accepted["id"], "in_review", expected_version=1, by="ann")
        m = store.set_masklet_status(m.id, "accepted", expected_version=m.version, by="rev")
    refused = client.delete(
        f"/api/projects/{pid}/masklets/{m.id}", params={"version": m.version}, headers=admin
    )
    assert refused.status_code == 400 and "accepted" in refused.json()["detail"]


def test_uploads_of_one_name_at_once_keep_both_files(tmp_path: Path, media: Path, monkeypatch) -> None:
    """Two uploads of clip.mp4 putting their file in place at the same moment: two files, neither
    overwritten (each thread's first move waits for the other's, so both chose the name first)."""
    import threading

    from masklet.engine.uploads import add_uploaded_video, staging_dir

    barrier, first_move = threading.Barrier(2, timeout=10), set()

    def in_step(real):
        def move(src, dst, *args, **kwargs):
            if threading.get_ident() not in first_move:
                first_move.add(threading.get_ident())
                barrier.wait()
            return real(src, dst, *args, **kwargs)

        return move

    for name in ("link", "replace", "rename"):
        monkeypatch.setattr(os, name, in_step(getattr(os, name)))
    url = f"sqlite:///{tmp_path / 'u.db'}"
    data = tmp_path / "data"
    bodies = [(media / "clip.mp4").read_bytes(), (media / "long.mp4").read_bytes()]
    with Store(url) as store:
        pid = store.create_project("p", by="t").id
        staged = []
        for k, body in enumerate(bodies):
            path = staging_dir(data) / f"{k}.part"
            path.write_bytes(body)
            staged.append(path)
        videos, errors = [], []

        def upload(k: int) -> None:
            try:
                videos.append(add_uploaded_video(store, pid, staged[k], "clip.mp4", data, by="t")[1])
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=upload, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        files = sorted(p.name for p in (data / "uploads" / str(pid)).iterdir())
        assert files == ["clip-1.mp4", "clip.mp4"]
        for v in videos:  # each row's file holds its own upload
            assert Path(v.path).read_bytes() == bodies[v.frame_count == 13]


def test_upload_names_on_a_file_system_without_hard_links(tmp_path: Path, monkeypatch) -> None:
    from masklet.engine.uploads import _move_to_a_free_name

    def no_links(*_):
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "clip.mp4").write_bytes(b"first")
    staged = tmp_path / "s.part"
    staged.write_bytes(b"second")
    moved = _move_to_a_free_name(staged, tmp_path, "clip.mp4")
    assert moved.name == "clip-1.mp4" and moved.read_bytes() == b"second" and not staged.exists()
    assert (tmp_path / "clip.mp4").read_bytes() == b"first"
