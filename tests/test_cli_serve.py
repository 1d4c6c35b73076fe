"""`masklet user` and `masklet serve`: users from the command line; the server as a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from masklet.cli import main
from masklet.io.masks import encode_rle
from masklet.server.local import free_port


def test_user_add_and_list(tmp_path: Path, capsys, monkeypatch) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'u.db'}", "--by", "tester"]
    assert main(["user", "add", "ann", "--role", "annotator", *db]) == 0
    out = capsys.readouterr().out
    password = re.search(r"password: (\S+)  \(shown once", out).group(1)
    assert len(password) >= 16
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("chosen-password\n"))
    assert main(["user", "add", "rev", "--role", "reviewer", "--password-stdin", *db]) == 0
    assert "password:" not in capsys.readouterr().out
    assert main(["user", "add", "rev", "--role", "reviewer", *db]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["user", "list", *db]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [r[1:3] for r in rows] == [["name", "role"], ["ann", "annotator"], ["rev", "reviewer"]]
    with pytest.raises(SystemExit):
        main(["user", "add", "x", "--role", "boss", *db])

    from masklet.engine.store import Store
    from masklet.engine.users import authenticate

    with Store(db[1]) as store:
        assert authenticate(store, "ann", password).name == "ann"
        assert authenticate(store, "rev", "chosen-password").role == "reviewer"


def _serve(tmp_path: Path, port: int, env: dict[str, str], extra: list[str] = ()) -> subprocess.Popen:
    """`masklet serve` in its own process; its stderr is read on a thread into `proc.lines` (a
    full pipe would block the server)."""
    import threading

    argv = [sys.executable, "-m", "masklet", "serve", "--db", f"sqlite:///{tmp_path / 's.db'}",
            "--port", str(port), "--data-dir", str(tmp_path / "data"), "--media-root", str(tmp_path), *extra]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    proc.lines = []  # type: ignore[attr-defined]
    threading.Thread(target=lambda: proc.lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    return proc


def _wait_up(proc: subprocess.Popen, port: int) -> list[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = "".join(proc.lines)
        if "Application startup complete" in text:
            return list(proc.lines)
        assert proc.poll() is None, f"server exited: {text}"
        time.sleep(0.05)
    raise AssertionError(f"server did not start: {''.join(proc.lines)}")


def test_serve_first_run_admin_then_restart(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MASKLET_ADMIN_PASSWORD"}
    port = free_port()
    proc = _serve(tmp_path, port, env)
    try:
        text = "".join(_wait_up(proc, port))
        password = re.search(r"first run: added user admin, password (\S+) \(shown once", text).group(1)
        assert "model assistance is off" in text
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/projects").status_code == 401
        r = httpx.post(f"{base}/api/login", json={"name": "admin", "password": password, "kind": "api"})
        assert r.status_code == 200
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        # the sample project: a short clip, ready for a first click
        assert "first run: added the project 'sample' with a 48-frame clip" in text
        [sample] = httpx.get(f"{base}/api/projects", headers=auth).json()
        assert sample["project"]["name"] == "sample" and sample["videos"] == 1
        [video] = httpx.get(f"{base}/api/projects/{sample['project']['id']}/videos", headers=auth).json()
        assert (video["width"], video["height"], video["frame_count"]) == (640, 360, 48)
        frame = httpx.get(f"{base}/api/videos/{video['id']}/frames/47.jpg", headers=auth)
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
        assert httpx.post(f"{base}/api/projects", json={"name": "p"}, headers=auth).status_code == 201
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    port = free_port()
    proc = _serve(tmp_path, port, env)
    try:
        text = "".join(_wait_up(proc, port))
        assert "first run" not in text  # the admin exists: no second password
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/login", json={"name": "admin", "password": password, "kind": "api"}
        )
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        assert [
            p["project"]["name"]
            for p in httpx.get(f"http://127.0.0.1:{port}/api/projects", headers=auth).json()
        ] == ["sample", "p"]  # no second sample
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _api_login(base: str, name: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{base}/login", json={"name": name, "password": password, "kind": "api"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_killed_server_keeps_saved_frames_and_shows_the_job_interrupted(tmp_path: Path) -> None:
    from masklet.io.synthetic import make_synthetic_video, write_mp4

    write_mp4(
        make_synthetic_video(240, 96, 128, num_objects=1, seed=5).frames, tmp_path / "long.mp4", fps=24.0
    )
    env = {**os.environ, "MASKLET_ADMIN_PASSWORD": "admin-pass-1"}
    extra = ["--random-weights", "--image-size", "128", "--job-stale-after", "1", "--no-sample"]
    port = free_port()
    proc = _serve(tmp_path, port, env, extra)
    base = f"http://127.0.0.1:{port}/api"
    try:
        assert "sample" not in "".join(_wait_up(proc, port))
        auth = _api_login(base, "admin", "admin-pass-1")
        assert httpx.get(f"{base}/projects", headers=auth).json() == []
        pid = httpx.post(f"{base}/projects", json={"name": "p"}, headers=auth).json()["id"]
        vid = httpx.post(f"{base}/projects/{pid}/videos", json={"path": "long.mp4"}, headers=auth).json()[
            "id"
        ]
        mid = httpx.post(f"{base}/projects/{pid}/videos/{vid}/masklets", json={}, headers=auth).json()["id"]
        click = {"frame": 0, "phase": 3, "points": [[60, 40]], "labels": [1]}
        assert (
            httpx.post(
                f"{base}/projects/{pid}/masklets/{mid}/prompts", json=click, headers=auth, timeout=60
            ).status_code
            == 200
        )
        job = httpx.post(
            f"{base}/projects/{pid}/masklets/{mid}/propagate", json={"phase": 3}, headers=auth
        ).json()
        assert job["frames_total"] == 59
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/projects/{pid}/jobs/{job['id']}", headers=auth).json()["frames_done"] < 3:
            assert time.monotonic() < deadline, "propagation did not start"
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    from masklet.engine.store import Store

    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        saved_before = {m.frame for m in store.get_frame_masks(mid)}
        counted = store.get_job(job["id"]).frames_done
    assert counted >= 3 and len(saved_before) >= counted + 1  # the click's frame and every counted frame
    port = free_port()
    proc = _serve(tmp_path, port, env, extra)
    base = f"http://127.0.0.1:{port}/api"
    try:
        _wait_up(proc, port)
        auth = _api_login(base, "admin", "admin-pass-1")
        time.sleep(1.5)  # the heartbeat sweep runs every few seconds; the dead job is older than 1 s already
        after = httpx.get(f"{base}/projects/{pid}/jobs/{job['id']}", headers=auth).json()
        assert after["status"] == "interrupted" and after["frames_done"] == counted
        for frame in sorted(saved_before):
            masks = httpx.get(f"{base}/projects/{pid}/videos/{vid}/frames/{frame}/masks", headers=auth).json()
            assert len(masks) == 1, frame
        resumed = httpx.post(f"{base}/projects/{pid}/jobs/{job['id']}/resume", headers=auth).json()
        assert resumed["resumed_from"] == job["id"]
        deadline = time.monotonic() + 120
        while (j := httpx.get(f"{base}/projects/{pid}/jobs/{resumed['id']}", headers=auth).json())[
            "status"
        ] != "done":
            assert j["status"] in ("queued", "running") and time.monotonic() < deadline, j
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_two_workers_share_one_postgres(tmp_path: Path, store_url: str) -> None:
    """Two `masklet serve` processes on one database, as behind a load balancer: a login, a
    project, a saved mask, a version conflict and a cancel made on one are seen by the other."""
    from masklet.io.synthetic import make_synthetic_video, write_mp4

    write_mp4(make_synthetic_video(120, 96, 128, num_objects=1, seed=5).frames, tmp_path / "v.mp4", fps=24.0)
    env = {**os.environ, "MASKLET_ADMIN_PASSWORD": "admin-pass-1"}
    extra = ["--db", store_url, "--random-weights", "--image-size", "128", "--no-sample"]
    ports = [free_port(), free_port()]
    # both start on the empty database at once: migrations and the first admin happen once
    procs = [_serve(tmp_path, port, env, extra) for port in ports]
    try:
        texts = ["".join(_wait_up(proc, port)) for proc, port in zip(procs, ports, strict=True)]
        assert sum("first run: added user admin" in t for t in texts) == 1, texts
        a, b = (f"http://127.0.0.1:{port}/api" for port in ports)
        auth = _api_login(a, "admin", "admin-pass-1")  # a token from one worker works on the other
        pid = httpx.post(f"{a}/projects", json={"name": "p"}, headers=auth).json()["id"]
        vid = httpx.post(f"{a}/projects/{pid}/videos", json={"path": "v.mp4"}, headers=auth).json()["id"]
        mid = httpx.post(f"{b}/projects/{pid}/videos/{vid}/masklets", json={}, headers=auth).json()["id"]
        assert [m["id"] for m in httpx.get(f"{a}/projects/{pid}/masklets", headers=auth).json()] == [mid]

        mask = np.zeros((96, 128), bool)
        mask[20:60, 30:90] = True
        rle = {"size": [96, 128], "counts": encode_rle(mask)["counts"]}
        put = f"/projects/{pid}/masklets/{mid}/masks/0"
        assert (
            httpx.put(a + put, json={"rle": rle, "expected_version": None}, headers=auth).status_code == 200
        )
        late = httpx.put(b + put, json={"rle": rle, "expected_version": None}, headers=auth)
        assert late.status_code == 409  # B drew on "no mask" after A saved one
        [seen] = httpx.get(f"{b}/projects/{pid}/videos/{vid}/frames/0/masks", headers=auth).json()
        assert seen["version"] == 1

        job = httpx.post(
            f"{a}/projects/{pid}/masklets/{mid}/propagate", json={"phase": 3}, headers=auth
        ).json()
        deadline = time.monotonic() + 60
        while httpx.get(f"{b}/projects/{pid}/jobs/{job['id']}", headers=auth).json()["frames_done"] < 2:
            assert time.monotonic() < deadline, "propagation did not start"
            time.sleep(0.05)
        busy = httpx.put(b + put, json={"rle": rle, "expected_version": 1}, headers=auth)
        assert busy.status_code == 409 and "propagat" in busy.json()["detail"]  # B sees A's job
        assert httpx.post(f"{b}/projects/{pid}/jobs/{job['id']}/cancel", headers=auth).status_code == 200
        while (j := httpx.get(f"{a}/projects/{pid}/jobs/{job['id']}", headers=auth).json())[
            "status"
        ] != "cancelled":
            assert j["status"] in ("queued", "running") and time.monotonic() < deadline, j
            time.sleep(0.05)
        assert j["frames_done"] < 119  # stopped by the other worker, not run to the end
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
