"""The annotation page end to end in headless Chromium (Debian's package, driven by Playwright).

One annotator's day on a real clip (32 frames of bedroom.mp4 as an mp4 at 24 fps): log in, create
a project from the video, click an object and see its mask drawn, propagate and watch the
timeline fill, correct a frame with the brush, accept as a reviewer, download the SA-V export and
check that it decodes to the masks the page showed. A screenshot of each step is saved under
test-artifacts/page/ (the README shows the propagated one).
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from masklet.engine.store import Store
from masklet.engine.users import add_user, ensure_first_admin
from masklet.io.formats import read_sav_json
from masklet.io.frames import open_frame_source
from masklet.io.masks import decode_rle
from masklet.io.synthetic import write_mp4
from masklet.server import ServerSettings, create_app
from masklet.server.local import running_server

if os.environ.get("MASKLET_REQUIRE_BROWSER"):  # CI: a missing browser or driver is a failure, not a skip
    import playwright.sync_api as playwright_api
else:
    playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("MASKLET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("MASKLET_REQUIRE_BROWSER"):
        raise RuntimeError("MASKLET_REQUIRE_BROWSER is set but no chromium binary was found")
    pytest.skip("no chromium binary (apt-get install chromium)", allow_module_level=True)

pytestmark = [pytest.mark.threads(1)]
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "page"
PASSWORD = {"admin": "admin-pass-1", "rev": "reviewer-pass"}


@pytest.fixture
def server(tmp_path: Path, data_dir: Path):
    import torch

    media = tmp_path / "media"
    media.mkdir()
    with open_frame_source(data_dir / "videos" / "bedroom_small_frames") as frames:
        write_mp4((frames.get(i) for i in range(len(frames))), media / "bedroom.mp4", fps=24.0)
    url = f"sqlite:///{tmp_path / 'page.db'}"
    with Store(url) as store:
        ensure_first_admin(store, PASSWORD["admin"])
        add_user(store, "rev", "reviewer", password=PASSWORD["rev"], by="test")
    torch.manual_seed(0)
    settings = ServerSettings(database_url=url, data_dir=tmp_path / "data", media_roots=(media,),
                              random_weights=True, image_size=256)  # fmt: skip
    with running_server(create_app(settings)) as base:
        yield base, url


def _log_in(page, base: str, name: str) -> None:
    page.goto(base)
    page.fill("#login-form input[name=name]", name)
    page.fill("#login-form input[name=password]", PASSWORD[name])
    page.click("#login-form button")
    page.wait_for_selector("#projects-view:not([hidden])")


def _canvas_pixels(page) -> np.ndarray:
    data = page.evaluate(
        "() => { const c = document.querySelector('#frame'); return Array.from(c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data); }"
    )
    return np.array(data, dtype=np.uint8).reshape(180, 320, 4)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def test_annotate_review_export_in_a_browser(server, tmp_path: Path) -> None:
    base, url = server
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # 1. log in (a wrong password first)
        page.goto(base)
        page.wait_for_selector("#login-view:not([hidden])")
        page.fill("#login-form input[name=name]", "admin")
        page.fill("#login-form input[name=password]", "wrong-password")
        page.click("#login-form button")
        page.wait_for_function("document.querySelector('#login-error').textContent.includes('wrong')")
        _shot(page, "01_login.png")
        _log_in(page, base, "admin")
        assert "random weights" in page.inner_text("#banner")

        # 2. a project from a real video
        page.fill("#new-project input[name=name]", "bedroom")
        page.click("#new-project button")
        page.wait_for_selector("#project-view:not([hidden])")
        page.fill("#new-video input[name=path]", "bedroom.mp4")
        page.click("#new-video button")
        page.wait_for_selector("#video-list a[data-video]")
        _shot(page, "02_project.png")
        page.click("#video-list a[data-video]")
        page.wait_for_selector("#video-view:not([hidden])")
        page.wait_for_function("document.querySelector('#frame-label').textContent.startsWith('frame 0')")

        # 3. click an object: its mask is drawn
        page.click("#add-object")
        page.wait_for_selector("#objects li.selected")
        before = _canvas_pixels(page)
        page.click("#frame", position={"x": 160, "y": 120})
        page.wait_for_function("document.querySelector('#message').textContent.includes('mask saved')")
        after = _canvas_pixels(page)
        changed = np.abs(after[..., :3].astype(int) - before[..., :3]).sum(axis=-1) > 0
        assert changed.sum() > 100, "no mask drawn after the click"
        _shot(page, "03_clicked.png")

        # 3b. name the object, give it a category; an object added by mistake is deleted
        page.fill("#object-editor input[name=name]", "girl")
        page.fill("#object-editor input[name=category]", "person")
        page.click("#save-object")
        page.wait_for_function(
            "document.querySelector('#objects li.selected').textContent.includes('girl · person')"
        )
        page.click("#add-object")
        page.wait_for_function("document.querySelectorAll('#timeline .lane').length === 2")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#delete-object")
        page.wait_for_function("document.querySelector('#message').textContent.includes('object deleted')")
        assert page.locator("#timeline .lane").count() == 1
        page.click("#objects li")

        # 4. propagate and watch the timeline fill (frames 4, 8, ..., 28)
        page.click("#propagate-fwd")
        page.wait_for_function(
            "document.querySelector('#message').textContent.startsWith('propagated')", timeout=120_000
        )
        propagated = page.locator("#timeline .lane span[data-source=propagated]").count()
        assert propagated == 7
        assert page.locator("#timeline .lane span[data-source=click_model]").count() == 1
        _shot(page, "04_propagated.png")

        # 5. correct frame 8 with the brush
        page.locator("#timeline .lane span").nth(2).click()
        page.wait_for_function("document.querySelector('#frame-label').textContent.startsWith('frame 8')")
        page.click("#tools button[data-tool=brush]")
        box = page.locator("#frame").bounding_box()
        sx, sy = box["width"] / 320, box["height"] / 180
        page.mouse.move(box["x"] + 20 * sx, box["y"] + 20 * sy)
        page.mouse.down()
        page.mouse.move(box["x"] + 60 * sx, box["y"] + 40 * sy, steps=8)
        page.mouse.up()
        page.wait_for_function("document.querySelector('#message').textContent.includes('drawn mask saved')")
        assert page.locator("#timeline .lane span[data-source=manual]").count() == 1
        _shot(page, "05_brushed.png")
        shown = {}
        for frame in range(0, 32, 4):
            page.locator("#timeline .lane span").nth(frame // 4).click()
            page.wait_for_function(
                f"document.querySelector('#frame-label').textContent.startsWith('frame {frame} ')"
            )
            shown[frame] = page.evaluate(
                f"async () => (await (await fetch('/api/projects/1/videos/1/frames/{frame}/masks')).json())[0].rle"
            )
        assert decode_rle(shown[8])[25:35, 25:55].all()  # the brushed stroke is in the saved mask

        # 6. as a reviewer: submit (admin), then accept
        page.click("#submit-review")
        page.wait_for_function("document.querySelector('#message').textContent.includes('in_review')")
        page.click("#logout")
        page.wait_for_selector("#login-view:not([hidden])")
        _log_in(page, base, "rev")
        page.click("#project-list a")
        page.click("#video-list a[data-video]")
        page.wait_for_selector("#objects li")
        assert page.locator("#tools").is_hidden()  # a reviewer gets no editing tools
        page.click("#objects li")
        page.click("#accept")
        page.wait_for_function("document.querySelector('#message').textContent.includes('accepted')")
        _shot(page, "06_accepted.png")

        # 7. the SA-V download decodes to the masks shown
        page.click("#back-to-project")
        page.wait_for_selector("#project-view:not([hidden])")
        with page.expect_download() as download:
            page.click("#exports a[data-format=sav]")
        archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
        [name] = archive.namelist()
        archive.extract(name, tmp_path)
        exported = read_sav_json(tmp_path / name).to_eval_masks()
        assert list(exported) == [0] and sorted(exported[0]) == list(range(0, 32, 4))
        for frame, rle in shown.items():
            np.testing.assert_array_equal(
                exported[0][frame].decode(), decode_rle(rle), err_msg=f"frame {frame}"
            )
        _shot(page, "07_project.png")

        # 8. a video uploaded from the browser (by the admin)
        page.click("#logout")
        page.wait_for_selector("#login-view:not([hidden])")
        _log_in(page, base, "admin")
        page.fill("#new-project input[name=name]", "uploads")
        page.click("#new-project button")
        page.wait_for_selector("#project-view:not([hidden])")
        page.set_input_files("#upload-video input[type=file]", str(tmp_path / "media" / "bedroom.mp4"))
        page.click("#upload-video button")
        page.wait_for_selector("#video-list a[data-video]")
        assert page.inner_text("#video-list").startswith("bedroom — 320×180, 32 frames")
        assert not errors, errors
        browser.close()
    with Store(url) as store:
        assert store.get_masklet(1).status == "accepted"
