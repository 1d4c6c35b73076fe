"""Checkpoint registry, cached download (no network: file:// and a local HTTP server), strict loading."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import logging
import re
import socket
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from masklet import checkpoints as ck
from masklet.checkpoints import (
    CheckpointInfo,
    compare_state_dict,
    download_checkpoint,
    guess_config,
    load_checkpoint,
    read_state_dict,
    shapes_of,
)
from masklet.configs import CONFIGS
from masklet.errors import CheckpointError, ConfigError

# --------------------------------------------------------------------------- registry


def test_registry_covers_the_eight_official_configs():
    assert set(ck.CHECKPOINTS) == set(CONFIGS)
    for name, info in ck.CHECKPOINTS.items():
        assert info.config_name == name
        folder = "092824" if name.startswith("sam2.1") else "072824"
        assert info.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{folder}/{info.filename}"
        size_word = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}[name.rsplit("_", 1)[1]]
        assert info.filename == f"{name.split('_')[0]}_hiera_{size_word}.pt"
        assert info.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", info.sha256)
    hashes = [i.sha256 for i in ck.CHECKPOINTS.values() if i.sha256]
    assert len(set(hashes)) == len(hashes)
    # Pinned against accidental edits (public Git LFS record of facebook/sam2.1-hiera-tiny).
    tiny = ck.CHECKPOINTS["sam2.1_hiera_t"]
    assert tiny.sha256 == "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"
    assert tiny.size_bytes == 156_008_466


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        ck.CHECKPOINTS["x"] = ck.CHECKPOINTS["sam2.1_hiera_t"]  # type: ignore[index]


def test_checkpoint_info_accepts_file_names_and_rejects_unknown():
    assert ck.checkpoint_info("sam2.1_hiera_base_plus").config_name == "sam2.1_hiera_b+"
    assert ck.checkpoint_info("sam2_hiera_large.pt").config_name == "sam2_hiera_l"
    with pytest.raises(ConfigError, match="sam2.1_hiera_t"):
        ck.checkpoint_info("sam3_hiera_huge")


def test_cache_dir_argument_then_env_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MASKLET_CACHE", raising=False)
    assert ck.cache_dir_for() == tmp_path / "home" / ".cache" / "masklet"
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path / "env"))
    assert ck.cache_dir_for() == tmp_path / "env"
    assert ck.cache_dir_for(tmp_path / "arg") == tmp_path / "arg"


def test_list_checkpoints_reports_cached_files(tmp_path):
    info = ck.CHECKPOINTS["sam2.1_hiera_t"]
    (tmp_path / info.filename).write_bytes(b"x" * 10)  # wrong size: not counted as cached
    rows = {r.name: r for r in ck.list_checkpoints(cache_dir=tmp_path)}
    assert len(rows) == 8 and not any(r.cached for r in rows.values())
    assert rows["sam2.1_hiera_t"].path == tmp_path / info.filename
    # sam2_hiera_small has no published size: presence is enough.
    (tmp_path / "sam2_hiera_small.pt").write_bytes(b"x")
    rows = {r.name: r for r in ck.list_checkpoints(cache_dir=tmp_path)}
    assert rows["sam2_hiera_s"].cached


# --------------------------------------------------------------------------- download

PAYLOAD = bytes(range(256)) * 4099  # ~1 MiB, more than one read chunk


def _info(url: str, *, sha: str | None = "auto", size: int | None = -1) -> CheckpointInfo:
    return CheckpointInfo(
        config_name="test",
        url=url,
        filename="weights.pt",
        sha256=hashlib.sha256(PAYLOAD).hexdigest() if sha == "auto" else sha,
        size_bytes=len(PAYLOAD) if size == -1 else size,
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture()
def source(tmp_path) -> Path:
    src = tmp_path / "remote" / "weights.pt"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    return src


def test_download_verifies_then_reuses_the_cache(tmp_path, source, capsys):
    cache = tmp_path / "cache"
    info = _info(source.as_uri())
    path = download_checkpoint(info, cache_dir=cache, progress=True)
    assert path == cache / "weights.pt" and path.read_bytes() == PAYLOAD
    assert _leftovers(cache) == ["weights.pt"]
    assert path.stat().st_mode & 0o777 == 0o644
    assert capsys.readouterr().out == ""  # the bar goes to stderr
    source.unlink()  # a second call must not fetch
    assert download_checkpoint(info, cache_dir=cache, progress=False) == path


def test_download_over_http_and_http_error(tmp_path, source):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(source.parent))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        path = download_checkpoint(_info(f"{base}/weights.pt"), cache_dir=tmp_path / "a", progress=False)
        assert path.read_bytes() == PAYLOAD
        url = f"{base}/absent.pt"
        with pytest.raises(CheckpointError, match="HTTP 404") as err:
            download_checkpoint(_info(url), cache_dir=tmp_path / "b", progress=False)
        assert url in str(err.value) and str(tmp_path / "b" / "weights.pt") in str(err.value)
        assert _leftovers(tmp_path / "b") == []
    finally:
        server.shutdown()
        server.server_close()


def test_checksum_mismatch_names_both_hashes_and_removes_the_file(tmp_path, source):
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(CheckpointError) as err:
        download_checkpoint(_info(source.as_uri(), sha=wrong), cache_dir=cache, progress=False)
    message = str(err.value)
    assert wrong in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert _leftovers(cache) == []


def test_size_mismatch_is_refused(tmp_path, source):
    with pytest.raises(CheckpointError, match=f"expected {len(PAYLOAD) + 1} bytes, got {len(PAYLOAD)}"):
        download_checkpoint(_info(source.as_uri(), size=len(PAYLOAD) + 1), cache_dir=tmp_path, progress=False)
    assert _leftovers(tmp_path) == ["remote"]


def test_unpublished_hash_is_computed_and_logged(tmp_path, source, caplog):
    caplog.set_level(logging.WARNING, logger="masklet.checkpoints")
    path = download_checkpoint(_info(source.as_uri(), sha=None, size=None), cache_dir=tmp_path / "c",
                               progress=False)
    assert path.read_bytes() == PAYLOAD
    assert hashlib.sha256(PAYLOAD).hexdigest() in caplog.text


class _BrokenResponse(io.BytesIO):
    """Serves half the payload, then fails like a dropped connection (or a Ctrl-C)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(PAYLOAD[: len(PAYLOAD) // 2])
        self.headers = {"Content-Length": str(len(PAYLOAD))}
        self._exc = exc

    def read(self, n: int = -1) -> bytes:
        chunk = super().read(n)
        if not chunk:
            raise self._exc
        return chunk


@pytest.mark.parametrize("exc", [ConnectionResetError("reset by peer"), KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing_that_looks_whole(tmp_path, monkeypatch, exc):
    monkeypatch.setattr(ck.urllib.request, "urlopen", lambda *a, **k: _BrokenResponse(exc))
    cache = tmp_path / "cache"
    expected = CheckpointError if isinstance(exc, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        download_checkpoint(_info("https://example.invalid/weights.pt"), cache_dir=cache, progress=False)
    assert _leftovers(cache) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connecting is refused


def test_offline_error_names_url_and_where_to_put_the_file(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/segment_anything_2/weights.pt"
    info = _info(url)
    with pytest.raises(CheckpointError) as err:
        download_checkpoint(info, cache_dir=tmp_path, progress=False)
    message = str(err.value)
    assert url in message and str(tmp_path / "weights.pt") in message and info.sha256 in message
    assert _leftovers(tmp_path) == []


def test_a_bad_cached_file_is_replaced_or_reported(tmp_path, source):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.pt").write_bytes(b"\0" * len(PAYLOAD))  # right size, wrong bytes
    path = download_checkpoint(_info(source.as_uri()), cache_dir=cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    (cache / "weights.pt").write_bytes(b"\0" * len(PAYLOAD))
    source.unlink()
    with pytest.raises(CheckpointError, match="the file already at .* is not it: expected sha256"):
        download_checkpoint(_info(source.as_uri()), cache_dir=cache, progress=False)


# --------------------------------------------------------------------------- loading


class Tiny(nn.Module):
    def __init__(self, width: int = 4, extra: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, width)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2)
        if extra:
            self.pointer = nn.Parameter(torch.zeros(1, width))


def _save(tmp_path: Path, state: object, name: str = "ckpt.pt") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


@pytest.mark.parametrize("official_layout", [True, False])
def test_load_official_and_bare_layouts(tmp_path, official_layout):
    torch.manual_seed(0)
    src = Tiny()
    state = src.state_dict()
    path = _save(tmp_path, {"model": state} if official_layout else state)
    dst = Tiny()
    load_checkpoint(dst, path, config_name="tiny")
    for key, value in src.state_dict().items():
        assert torch.equal(dst.state_dict()[key], value)


def test_truncated_checkpoint_is_a_checkpoint_error(tmp_path):
    path = _save(tmp_path, {"model": Tiny().state_dict()}, name="sam2.1_hiera_tiny.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert str(path) in message and "truncated" in message
    assert "masklet download sam2.1_hiera_t" in message


def test_unreadable_inputs_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        read_state_dict(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="expected a state dict"):
        read_state_dict(_save(tmp_path, [torch.zeros(2)], name="list.pt"))
    with pytest.raises(CheckpointError, match="not str -> Tensor"):
        read_state_dict(_save(tmp_path, {"model": {"w": torch.zeros(2), "step": 3}}, name="mixed.pt"))


def test_report_lists_missing_unexpected_and_misshaped_keys():
    expected = shapes_of(Tiny(width=4, extra=True).state_dict())
    found = Tiny(width=8).state_dict()
    found["stray.weight"] = torch.zeros(1)
    report = compare_state_dict(expected, found)
    assert report.missing == ("pointer",)
    assert report.unexpected == ("stray.weight",)
    assert [(m.key, m.expected, m.found) for m in report.mismatched] == [
        ("encoder.weight", (4, 3), (8, 3)),
        ("encoder.bias", (4,), (8,)),
        ("norm.weight", (4,), (8,)),
        ("norm.bias", (4,), (8,)),
        ("head.weight", (2, 4), (2, 8)),
    ]
    assert not report.ok and report.first_problem() == "missing 'pointer'"
    assert compare_state_dict(expected, Tiny(width=4, extra=True).state_dict()).ok


CANDIDATES = {
    "tiny_w4": shapes_of(Tiny(width=4).state_dict()),
    "tiny_w4_ptr": shapes_of(Tiny(width=4, extra=True).state_dict()),  # a superset, like 2.1 over 2.0
    "tiny_w8": shapes_of(Tiny(width=8).state_dict()),
}


def test_guess_prefers_most_matches_then_the_tighter_fit():
    # The superset comes first, so only the tie-break can pick the exact fit.
    order = ["tiny_w4_ptr", "tiny_w8", "tiny_w4"]
    guess = guess_config(Tiny(width=4).state_dict(), CANDIDATES.__getitem__, order)
    assert (guess.config_name, guess.matching, guess.total) == ("tiny_w4", 6, 6)
    guess = guess_config(Tiny(width=4, extra=True).state_dict(), CANDIDATES.__getitem__, CANDIDATES)
    assert (guess.config_name, guess.matching, guess.total) == ("tiny_w4_ptr", 7, 7)
    assert str(guess) == "tiny_w4_ptr (7/7 keys match)"


def test_wrong_model_error_names_keys_and_the_likely_config(tmp_path):
    path = _save(tmp_path, {"model": Tiny(width=8).state_dict()})
    model = Tiny(width=4, extra=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, path, config_name="tiny_w4_ptr", expected_shapes=CANDIDATES.__getitem__,
                        candidates=CANDIDATES)
    message = str(err.value)
    assert f"{path} does not fit tiny_w4_ptr" in message
    assert "1 missing ['pointer']" in message and "0 unexpected" in message
    assert "5 mis-shaped keys ['encoder.weight' file (8, 3) vs model (4, 3), 'encoder.bias'" in message
    assert "'norm.weight' file (8,) vs model (4,), ...]" in message
    assert "looks like a tiny_w8 checkpoint (6/6 keys match)" in message
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # untouched


def test_wrong_model_error_without_candidates_still_names_keys(tmp_path):
    path = _save(tmp_path, Tiny(width=8).state_dict())
    with pytest.raises(CheckpointError, match=r"does not fit tiny: 0 missing, 0 unexpected, 5 mis-shaped"):
        load_checkpoint(Tiny(width=4), path, config_name="tiny")


def _official_key_shapes() -> dict[str, dict[str, tuple[int, ...]]]:
    # Written by tools/parity/key_shapes.py from sam2 1.1.0: {config: [[key, shape], ...], "_meta": ...}.
    import json

    data = json.loads((Path(__file__).parent / "data" / "parity" / "key_shapes.json").read_text())
    return {name: {k: tuple(s) for k, s in pairs} for name, pairs in data.items() if name in CONFIGS}


def test_guess_tells_every_official_config_apart():
    official = _official_key_shapes()
    assert set(official) == set(CONFIGS)
    for name, shapes in official.items():
        state = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
        # Reversed order: each SAM 2 file also fully matches the SAM 2.1 model of its size.
        guess = guess_config(state, official.__getitem__, reversed(list(official)))
        assert (guess.config_name, guess.matching, guess.total) == (name, len(shapes), len(shapes))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_architecture_has_the_official_keys_and_shapes(name):
    """Each of the eight models, built on the meta device, lists the official state-dict keys in
    the official order with the official shapes (key_shapes.json from sam2 1.1.0)."""
    from masklet.configs import get_config
    from masklet.model.sam2 import SAM2Model

    official = _official_key_shapes()[name]
    with torch.device("meta"):
        model = SAM2Model(get_config(name))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(official)  # same keys, same order (strict loading needs the set)
    assert ours == official
    counts = json.loads((Path(__file__).parent / "data" / "parity" / "key_shapes.json").read_text())
    expected = counts["_meta"]["counts"][name]
    numel = sum(v.numel() for v in model.state_dict().values())
    assert (len(ours), numel) == (expected["keys"], expected["numel"])
