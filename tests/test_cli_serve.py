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


def _serve(tmp_path: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    argv = [sys.executable, "-m", "masklet", "serve", "--db", f"sqlite:///{tmp_path / 's.db'}",
            "--port", str(port), "--data-dir", str(tmp_path / "data"), "--media-root", str(tmp_path)]  # fmt: skip
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)


def _wait_up(proc: subprocess.Popen, port: int) -> list[str]:
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, f"server exited: {''.join(lines)}"
        lines.append(line)
        if "Uvicorn running" in line or "Application startup complete" in line:
            return lines
    raise AssertionError(f"server did not start: {''.join(lines)}")


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
        r = httpx.post(f"http://127.0.0.1:{port}/api/login", json={"name": "admin", "password": password, "kind": "api"})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        assert [p["project"]["name"] for p in httpx.get(f"http://127.0.0.1:{port}/api/projects", headers=auth).json()] == ["p"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
