"""`masklet user` and `masklet serve`: users from the command line; the server as a real process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from masklet.cli import main


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
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
        assert httpx.post(f"{base}/api/projects", json={"name": "p"}, headers=auth).status_code == 201
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    port = _free_port()
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
        ] == ["p"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _api_login(base: str, name: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{base}/login", json={"name": name, "password": password, "kind": "api"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_killed_server_keeps_saved_frames_and_shows_the_job_interrupted(tmp_path: Path) -> None:
    from masklet.io.synthetic import make_synthetic_video, write_mp4

    write_mp4(make_synthetic_video(240, 96, 128, num_objects=1, seed=5).frames, tmp_path / "long.mp4", fps=24.0)
    env = {**os.environ, "MASKLET_ADMIN_PASSWORD": "admin-pass-1"}
    extra = ["--random-weights", "--image-size", "128", "--job-stale-after", "1"]
    port = _free_port()
    proc = _serve(tmp_path, port, env, extra)
    base = f"http://127.0.0.1:{port}/api"
    try:
        _wait_up(proc, port)
        auth = _api_login(base, "admin", "admin-pass-1")
        pid = httpx.post(f"{base}/projects", json={"name": "p"}, headers=auth).json()["id"]
        vid = httpx.post(f"{base}/projects/{pid}/videos", json={"path": "long.mp4"}, headers=auth).json()["id"]
        mid = httpx.post(f"{base}/projects/{pid}/videos/{vid}/masklets", json={}, headers=auth).json()["id"]
        click = {"frame": 0, "phase": 3, "points": [[60, 40]], "labels": [1]}
        assert httpx.post(f"{base}/projects/{pid}/masklets/{mid}/prompts", json=click, headers=auth, timeout=60).status_code == 200
        job = httpx.post(f"{base}/projects/{pid}/masklets/{mid}/propagate", json={"phase": 3}, headers=auth).json()
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
    port = _free_port()
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
        while (j := httpx.get(f"{base}/projects/{pid}/jobs/{resumed['id']}", headers=auth).json())["status"] != "done":
            assert j["status"] in ("queued", "running") and time.monotonic() < deadline, j
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
