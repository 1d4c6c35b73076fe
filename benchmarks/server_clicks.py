"""How fast `masklet serve` answers clicks, alone and with concurrent annotators (a script, not a test).

    python benchmarks/server_clicks.py [--image-size 1024] [--clicks 60] [--annotators 8] [--seconds 60]

Starts the real app (uvicorn, 127.0.0.1, a temporary SQLite database) with sam2.1_hiera_t and
random weights on a 30-frame clip, then measures over HTTP:
1. click -> saved mask on a frame the server has encoded (--clicks, 60 by default, in rounds of 5
   on one prompt): p50 / p95;
2. after one click on frame 0 (the server's first: it opens the video and the workflow too), the
   first click on three other frames (decode + encode + answer), next to the image encoder's own time
   on that frame, measured in this process: the difference is the server's overhead;
3. N annotators (threads with their own logins and masklets) clicking and saving drawn masks on
   random annotated frames for S seconds: request count, p50 / p95 per kind, any 5xx, and a
   check that no acknowledged write was lost (every saved version is in the store at the end).
Writes benchmarks/results/server_clicks.json and .md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests" / "data" / "videos" / "bedroom_1s.mp4"  # 480x270, 30 frames at 30 fps
OUT = REPO / "benchmarks" / "results"
CLICKS_PER_ROUND = 5


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clicks", type=int, default=60, help="clicks on the encoded frame")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()

    import httpx
    import torch

    from masklet.engine.store import Store
    from masklet.engine.users import add_user, ensure_first_admin
    from masklet.io.frames import open_frame_source
    from masklet.io.masks import encode_rle
    from masklet.predict.image import ImagePredictor
    from masklet.server import ServerSettings, create_app
    from masklet.server.local import running_server

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="masklet-bench-"))
    media = tmp / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(CLIP.read_bytes())
    url = f"sqlite:///{tmp / 'bench.db'}"
    names = [f"ann{i}" for i in range(args.annotators)]
    with Store(url) as store:
        ensure_first_admin(store, "bench-admin")
        for n in names:
            add_user(store, n, "annotator", password=f"{n}-password", by="bench")
    torch.manual_seed(0)
    settings = ServerSettings(database_url=url, data_dir=tmp / "data", media_roots=(media,), random_weights=True,
                              image_size=args.image_size, max_open_workflows=args.annotators + 1)  # fmt: skip
    server = contextlib.ExitStack()
    app = create_app(settings)
    base = server.enter_context(running_server(app)) + "/api"

    def login(name: str, password: str) -> httpx.Client:
        client = httpx.Client(base_url=base, timeout=600)
        token = client.post("/login", json={"name": name, "password": password, "kind": "api"}).json()[
            "token"
        ]
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    admin = login("admin", "bench-admin")
    pid = admin.post("/projects", json={"name": "bench"}).json()["id"]
    video = admin.post(f"/projects/{pid}/videos", json={"path": "clip.mp4"}).json()
    h, w = video["height"], video["width"]
    stride = max(1, round(video["fps"] / 6))
    frames = list(range(0, video["frame_count"], stride))

    # 1 and 2: one annotator
    solo = login(names[0], f"{names[0]}-password")
    mid = solo.post(f"/projects/{pid}/videos/{video['id']}/masklets", json={}).json()["id"]
    rng = random.Random(0)

    def click(client: httpx.Client, masklet: int, frame: int, *, clear: bool = False) -> tuple[int, float]:
        body = {"frame": frame, "phase": 1, "points": [[rng.uniform(0, w - 1), rng.uniform(0, h - 1)]],
                "labels": [rng.choice([0, 1])], "clear": clear}  # fmt: skip
        t = time.perf_counter()
        r = client.post(f"/projects/{pid}/masklets/{masklet}/prompts", json=body)
        return r.status_code, time.perf_counter() - t

    start_up = click(solo, mid, frames[0])[1]  # the server's first click: opens the video and workflow too
    first = {f: click(solo, mid, f)[1] for f in frames[1:4]}
    # in rounds of 5 clicks, each round a fresh prompt (an annotator gives a frame a few clicks, not
    # sixty): the decoder's cost grows with the clicks it is given (60 at once: +24 ms)
    encoded = [click(solo, mid, frames[1], clear=k % CLICKS_PER_ROUND == 0)[1] for k in range(args.clicks)]
    predictor = ImagePredictor(app.state.model)
    with open_frame_source(media / "clip.mp4") as source:
        encoder = {}
        for f in first:
            pixels = source.get(f)
            t = time.perf_counter()
            predictor.set_image(pixels)
            encoder[f] = time.perf_counter() - t

    # 3: concurrent annotators
    clients = [login(n, f"{n}-password") for n in names]
    masklets = [
        c.post(f"/projects/{pid}/videos/{video['id']}/masklets", json={}).json()["id"] for c in clients
    ]
    lock = threading.Lock()
    stats: dict[str, list[float]] = {"click": [], "save": []}
    statuses: dict[int, int] = {}
    acknowledged: dict[tuple[int, int], int] = {}  # (masklet, frame) -> highest version acknowledged
    stop_at = time.monotonic() + args.seconds

    def annotate(k: int) -> None:
        client, masklet, local = clients[k], masklets[k], random.Random(k)
        mask = np.zeros((h, w), bool)
        while time.monotonic() < stop_at:
            frame = local.choice(frames)
            code, dt = click(client, masklet, frame)
            with lock:
                stats["click"].append(dt)
                statuses[code] = statuses.get(code, 0) + 1
            current = client.get(f"/projects/{pid}/videos/{video['id']}/frames/{frame}/masks").json()
            version = next((m["version"] for m in current if m["masklet_id"] == masklet), None)
            y, x = local.randrange(h - 20), local.randrange(w - 20)
            mask[:] = False
            mask[y : y + 20, x : x + 20] = True
            t = time.perf_counter()
            r = client.put(f"/projects/{pid}/masklets/{masklet}/masks/{frame}",
                           json={"rle": encode_rle(mask), "expected_version": version})  # fmt: skip
            with lock:
                stats["save"].append(time.perf_counter() - t)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    key = (masklet, frame)
                    acknowledged[key] = max(acknowledged.get(key, 0), r.json()["version"])

    workers = [threading.Thread(target=annotate, args=(k,)) for k in range(args.annotators)]
    began = time.monotonic()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.monotonic() - began
    with Store(url) as store:
        stored = {(m.masklet_id, m.frame): m.version for ml in masklets for m in store.get_frame_masks(ml)}
    lost = [k for k, v in acknowledged.items() if stored.get(k, 0) < v]
    server.close()

    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "threads": args.threads,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },  # fmt: skip
        "model": "sam2.1_hiera_t (random weights)",
        "image_size": args.image_size,
        "clip": f"{w}x{h}",
        "click_encoded_frame_s": {"n": len(encoded), "p50": _pct(encoded, 50), "p95": _pct(encoded, 95)},
        "first_click_of_the_server_s": start_up,
        "click_new_frame_s": {str(f): first[f] for f in first},
        "encoder_s": {str(f): encoder[f] for f in encoder},
        "new_frame_overhead_s": {str(f): first[f] - encoder[f] for f in first},
        "concurrent": {
            "annotators": args.annotators,
            "seconds": elapsed,
            "requests": sum(statuses.values()),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_errors": sum(v for k, v in statuses.items() if k >= 500),
            "click_s": {
                "n": len(stats["click"]),
                "p50": _pct(stats["click"], 50),
                "p95": _pct(stats["click"], 95),
            },
            "save_s": {
                "n": len(stats["save"]),
                "p50": _pct(stats["save"], 50),
                "p95": _pct(stats["save"], 95),
            },
            "acknowledged_writes": len(acknowledged),
            "lost_writes": len(lost),
        },  # fmt: skip
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "server_clicks.json").write_text(json.dumps(result, indent=2) + "\n")
    c = result["concurrent"]
    md = [
        f"# masklet serve: click latency ({result['model']}, input {args.image_size}, clip {w}x{h})",
        "",
        f"Machine: {result['machine']}",
        "",
        "| measure | p50 | p95 |",
        "| --- | --- | --- |",
        f"| click on an encoded frame (n={len(encoded)}, rounds of {CLICKS_PER_ROUND}) | {1e3 * _pct(encoded, 50):.0f} ms | {1e3 * _pct(encoded, 95):.0f} ms |",
        f"| {args.annotators} annotators, click (n={c['click_s']['n']}) | {1e3 * c['click_s']['p50']:.0f} ms | {1e3 * c['click_s']['p95']:.0f} ms |",
        f"| {args.annotators} annotators, save a drawn mask (n={c['save_s']['n']}) | {1e3 * c['save_s']['p50']:.0f} ms | {1e3 * c['save_s']['p95']:.0f} ms |",
        "",
        f"First click on a new frame (decode + encode + answer) vs the encoder alone, after the server's first "
        f"click (frame {frames[0]}: {start_up:.2f} s, which also opens the video and the workflow):",
        "",
        "| frame | click | encoder | overhead |",
        "| --- | --- | --- | --- |",
        *[f"| {f} | {first[f]:.2f} s | {encoder[f]:.2f} s | {1e3 * (first[f] - encoder[f]):.0f} ms |" for f in first],
        "",
        f"Concurrent run: {c['requests']} requests in {c['seconds']:.0f} s, statuses {c['statuses']}, "
        f"{c['server_errors']} server errors, {c['acknowledged_writes']} frames written, {c['lost_writes']} lost writes.",
    ]  # fmt: skip
    (OUT / "server_clicks.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 1 if c["server_errors"] or lost else 0


if __name__ == "__main__":
    sys.exit(main())
