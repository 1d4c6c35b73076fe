"""Official SAM 2 / SAM 2.1 checkpoints: registry, cached download, strict loading.

Downloads stream into a `.part` file that is renamed only after its size and
sha256 verify, so a file under its final name is always whole. Loading is
strict; on a mismatch the error names the missing, unexpected and mis-shaped
keys and, given `expected_shapes`, the official config the file most likely
belongs to.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import torch
from torch import Tensor, nn

from masklet.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

ShapeMap = Mapping[str, tuple[int, ...]]

_CHUNK = 1 << 20  # bytes per read while streaming and hashing
_TIMEOUT_S = 60.0  # socket timeout: an unreachable host fails instead of hanging


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """Where an official checkpoint lives and what it must hash to (None: not published)."""

    config_name: str
    url: str
    filename: str
    sha256: str | None
    size_bytes: int | None


def _official(config_name: str, folder: str, filename: str, sha256: str, size: int | None) -> CheckpointInfo:
    url = f"https://dl.fbaipublicfiles.com/segment_anything_2/{folder}/{filename}"
    return CheckpointInfo(config_name, url, filename, sha256, size)


# URLs: facebookresearch/sam2 checkpoints/download_ckpts.sh (072824 = SAM 2, July 2024;
# 092824 = SAM 2.1) and the sam2 1.1.0 README. Hashes and sizes are the Git LFS
# records of the same .pt files on Hugging Face (facebook/sam2-hiera-*,
# facebook/sam2.1-hiera-*, and mirrors: merve/sam2-hiera-*, camenduru/sam2-1-hiera);
# every hash also appears, keyed by these dl.fbaipublicfiles URLs, in micro-sam's
# pooch registry (micro_sam/v2/util.py). No public byte size was found for
# sam2_hiera_small.pt, so that one is checked by hash alone.
CHECKPOINTS: Mapping[str, CheckpointInfo] = MappingProxyType(
    {
        info.config_name: info
        for info in (
            _official("sam2_hiera_t", "072824", "sam2_hiera_tiny.pt",
                      "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125", 155_906_050),
            _official("sam2_hiera_s", "072824", "sam2_hiera_small.pt",
                      "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3", None),
            _official("sam2_hiera_b+", "072824", "sam2_hiera_base_plus.pt",
                      "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071", 323_493_298),
            _official("sam2_hiera_l", "072824", "sam2_hiera_large.pt",
                      "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b", 897_952_466),
            _official("sam2.1_hiera_t", "092824", "sam2.1_hiera_tiny.pt",
                      "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69", 156_008_466),
            _official("sam2.1_hiera_s", "092824", "sam2.1_hiera_small.pt",
                      "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38", 184_416_285),
            _official("sam2.1_hiera_b+", "092824", "sam2.1_hiera_base_plus.pt",
                      "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5", 323_606_802),
            _official("sam2.1_hiera_l", "092824", "sam2.1_hiera_large.pt",
                      "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318", 898_083_611),
        )
    }
)

# Other spellings users type: the file name and its stem ("sam2.1_hiera_tiny").
_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{info.filename: key for key, info in CHECKPOINTS.items()},
        **{info.filename.removesuffix(".pt"): key for key, info in CHECKPOINTS.items()},
    }
)


@dataclass(frozen=True, slots=True)
class CachedCheckpoint:
    """One registry entry and where it is (or would be) in the cache."""

    name: str
    info: CheckpointInfo
    path: Path
    cached: bool  # the file is there (and has the published size, where known)


def checkpoint_info(name: str) -> CheckpointInfo:
    """The registry entry for a config name, checkpoint file name or file stem."""
    key = name if name in CHECKPOINTS else _ALIASES.get(name)
    if key is None:
        raise ConfigError(f"no official checkpoint named {name!r}; choose one of: {', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[key]


def cache_dir_for(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint cache: the argument, else $MASKLET_CACHE, else ~/.cache/masklet."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MASKLET_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "masklet"


def list_checkpoints(*, cache_dir: str | os.PathLike[str] | None = None) -> tuple[CachedCheckpoint, ...]:
    """Every official checkpoint with its cache path and whether it is there (no hashing)."""
    root = cache_dir_for(cache_dir)
    out = []
    for name, info in CHECKPOINTS.items():
        path = root / info.filename
        cached = path.is_file() and (info.size_bytes is None or path.stat().st_size == info.size_bytes)
        out.append(CachedCheckpoint(name, info, path, cached))
    return tuple(out)


# --------------------------------------------------------------------------- download


def download_checkpoint(
    name: str | CheckpointInfo, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Path:
    """Path of the verified checkpoint in the cache, downloading it first if needed.

    A file already in the cache is reused when it verifies. A download goes to a
    `.part` file that is renamed only once its size and sha256 match; on any
    failure the `.part` file is removed. Progress (tqdm) goes to stderr. `name` may
    also be a `CheckpointInfo`, e.g. the official one with a mirror's URL.
    """
    info = name if isinstance(name, CheckpointInfo) else checkpoint_info(name)
    dest = cache_dir_for(cache_dir) / info.filename
    stale = ""
    if dest.is_file():
        problem = _verify_file(info, dest)
        if problem is None:
            return dest
        stale = f" (the file already at {dest} is not it: {problem})"
        log.warning("cached %s does not verify: %s; downloading again", dest, problem)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the checkpoint cache {dest.parent}: {exc}; "
                              "pass cache_dir= or set MASKLET_CACHE to a writable folder") from exc
    _fetch(info, dest, progress=progress, stale=stale)
    return dest


def _fetch(info: CheckpointInfo, dest: Path, *, progress: bool, stale: str) -> None:
    # A unique .part name: two processes fetching the same file never write into one another.
    fd, part_name = tempfile.mkstemp(dir=dest.parent, prefix=f"{info.filename}.", suffix=".part")
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = _stream(info, out, progress=progress, dest=dest, stale=stale)
            out.flush()
            os.fsync(out.fileno())
        problem = _verify(info, size, digest)
        if problem is not None:
            raise CheckpointError(f"download of {info.url} is corrupt: {problem}; the file was removed, "
                                  f"try again or put a good copy at {dest}")
        if info.sha256 is None:
            log.warning("no published sha256 for %s; downloaded %d bytes with sha256 %s (not verified)",
                        info.filename, size, digest)
        os.chmod(part, 0o644)  # mkstemp makes it owner-only; a cache may be shared
        os.replace(part, dest)  # atomic: the final name only ever holds a verified file
    except BaseException:  # also KeyboardInterrupt: never leave a partial file behind
        part.unlink(missing_ok=True)
        raise
    log.info("saved %s (%d bytes, sha256 %s)", dest, size, digest)


def _stream(
    info: CheckpointInfo, out: BinaryIO, *, progress: bool, dest: Path, stale: str
) -> tuple[int, str]:
    from tqdm.auto import tqdm

    def fail(reason: object) -> CheckpointError:
        sha = f" (sha256 {info.sha256})" if info.sha256 else ""
        return CheckpointError(
            f"could not download {info.filename} from {info.url}: {reason}{stale}. Without network access, "
            f"fetch that URL on another machine and put the file{sha} at {dest}"
        )

    request = urllib.request.Request(info.url, headers={"User-Agent": "masklet"})
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or info.size_bytes
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=info.filename,
                      file=sys.stderr, disable=not progress, leave=False) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise fail(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise fail(exc.reason) from exc
    except (OSError, http.client.HTTPException) as exc:  # reset, timeout, short read mid-stream
        raise fail(f"{type(exc).__name__}: {exc}") from exc
    return size, digest.hexdigest()


def _verify(info: CheckpointInfo, size: int, sha256: str) -> str | None:
    """What is wrong with a file of this size and hash, or None if it is the published one."""
    if info.size_bytes is not None and size != info.size_bytes:
        return f"expected {info.size_bytes} bytes, got {size}"
    if info.sha256 is not None and sha256 != info.sha256:
        return f"expected sha256 {info.sha256}, got {sha256}"
    return None


def _verify_file(info: CheckpointInfo, path: Path) -> str | None:
    size = path.stat().st_size
    if info.size_bytes is not None and size != info.size_bytes:
        return _verify(info, size, "")  # a wrong size needs no hashing
    digest = _sha256_of(path)
    if info.sha256 is None:
        log.info("no published sha256 for %s; using the cached file as is (sha256 %s)", path, digest)
    return _verify(info, size, digest)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class MismatchedKey:
    key: str
    expected: tuple[int, ...]  # shape in the model
    found: tuple[int, ...]  # shape in the checkpoint


@dataclass(frozen=True, slots=True)
class LoadReport:
    """How a state dict differs from what a model expects (all empty: it fits)."""

    missing: tuple[str, ...]  # in the model, not in the file
    unexpected: tuple[str, ...]  # in the file, not in the model
    mismatched: tuple[MismatchedKey, ...]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def first_problem(self) -> str | None:
        if self.missing:
            return f"missing {self.missing[0]!r}"
        if self.unexpected:
            return f"unexpected {self.unexpected[0]!r}"
        if self.mismatched:
            m = self.mismatched[0]
            return f"{m.key!r} is {m.found} in the file, {m.expected} in the model"
        return None


@dataclass(frozen=True, slots=True)
class ConfigGuess:
    """The candidate config whose key→shape list best matches a state dict."""

    config_name: str
    matching: int  # keys present in both with the same shape
    total: int  # keys in the larger of the two lists

    def __str__(self) -> str:
        return f"{self.config_name} ({self.matching}/{self.total} keys match)"


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, official `{"model": state_dict}` layout or bare."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}; give the path of a .pt file or download one "
                              f"(masklet download NAME, names: {', '.join(CHECKPOINTS)})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a bad file
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).rstrip('.')}. The file may be "
            f"truncated or corrupt (or not a weights-only PyTorch file); {_redownload_hint(path)}"
        ) from exc
    # The official files are {"model": state_dict}; training checkpoints add optimizer etc.
    state = obj["model"] if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) else obj
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path} holds {type(obj).__name__}, expected a state dict of tensors "
                              "or the official layout {'model': state_dict}")
    bad = [k for k, v in state.items() if not (isinstance(k, str) and isinstance(v, Tensor))]
    if bad:
        raise CheckpointError(f"{path}: expected a state dict of tensors; {len(bad)} entries are not "
                              f"str -> Tensor (first: {bad[0]!r}); top-level keys: {list(obj)[:5]}")
    return dict(state)


def _redownload_hint(path: Path) -> str:
    known = _ALIASES.get(path.name)
    if known is not None:
        return f"delete it and run `masklet download {known}` (or download_checkpoint({known!r}))"
    return "delete it and download it again"


def shapes_of(state_dict: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def compare_state_dict(expected: ShapeMap, state_dict: Mapping[str, Tensor]) -> LoadReport:
    """Keys missing from, unexpected in, and mis-shaped in `state_dict` against `expected`."""
    missing = tuple(k for k in expected if k not in state_dict)
    unexpected = tuple(k for k in state_dict if k not in expected)
    mismatched = tuple(
        MismatchedKey(k, tuple(shape), tuple(state_dict[k].shape))
        for k, shape in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(shape)
    )
    return LoadReport(missing, unexpected, mismatched)


def guess_config(
    state_dict: Mapping[str, Tensor],
    expected_shapes: Callable[[str], ShapeMap],
    candidates: Iterable[str],
) -> ConfigGuess | None:
    """The candidate with most key+shape pairs in common; ties go to the tighter fit."""
    found = shapes_of(state_dict)
    best: ConfigGuess | None = None
    for name in candidates:
        shapes = expected_shapes(name)
        matching = sum(1 for k, s in shapes.items() if found.get(k) == tuple(s))
        guess = ConfigGuess(name, matching, max(len(shapes), len(found)))
        # A SAM 2 file matches all of its keys in the SAM 2.1 model of its size too (2.1 only
        # adds keys), so equal counts are broken by the smaller total.
        if best is None or (guess.matching, -guess.total) > (best.matching, -best.total):
            best = guess
    return best


def load_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    config_name: str,
    expected_shapes: Callable[[str], ShapeMap] | None = None,
    candidates: Iterable[str] | None = None,
) -> None:
    """Load a checkpoint file into `model` strictly, or raise a `CheckpointError` that says why not.

    `expected_shapes(name)` gives the key→shape list of a config (the builder passes
    one that builds models on the meta device); with it, the error names the
    candidate (default: the eight official configs) the file most likely fits.
    """
    state_dict = read_state_dict(path)
    report = compare_state_dict(shapes_of(model.state_dict()), state_dict)
    if not report.ok:
        raise CheckpointError(_mismatch_message(Path(path), config_name, report, state_dict,
                                                expected_shapes, candidates))
    model.load_state_dict(state_dict, strict=True)


def _mismatch_message(
    path: Path,
    config_name: str,
    report: LoadReport,
    state_dict: Mapping[str, Tensor],
    expected_shapes: Callable[[str], ShapeMap] | None,
    candidates: Iterable[str] | None,
) -> str:
    def first(items: tuple[str, ...], n: int = 3) -> str:
        return f" [{', '.join(items[:n])}{', ...' if len(items) > n else ''}]" if items else ""

    missing = tuple(map(repr, report.missing))
    unexpected = tuple(map(repr, report.unexpected))
    shapes = tuple(f"{m.key!r} file {m.found} vs model {m.expected}" for m in report.mismatched)
    lines = [
        f"{path} does not fit {config_name}: {len(missing)} missing{first(missing)}, "
        f"{len(unexpected)} unexpected{first(unexpected)}, {len(shapes)} mis-shaped keys{first(shapes)}."
    ]
    if expected_shapes is not None:
        names = candidates if candidates is not None else CHECKPOINTS
        guess = guess_config(state_dict, expected_shapes, names)
        if guess is not None:
            lines.append(_guess_advice(guess, config_name, path))
    else:
        lines.append("Is it a SAM 2 or a SAM 2.1 file, and of which size?")
    return " ".join(lines)


def _guess_advice(guess: ConfigGuess, config_name: str, path: Path) -> str:
    name, counts = guess.config_name, f"({guess.matching}/{guess.total} keys match)"
    if guess.matching < guess.total / 2:
        return f"It does not look like any known checkpoint (closest: {name}, {counts[1:-1]})."
    if name == config_name:
        return f"It is closest to {name} itself {counts}: modified or damaged? {_redownload_hint(path)}."
    return f"It looks like a {name} checkpoint {counts}: build the model as {name!r}."
