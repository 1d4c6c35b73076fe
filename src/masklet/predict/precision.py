"""Fast mode: the model's arithmetic in bfloat16 where the device has it, exact float32 otherwise.

Exact mode (the default) does the official float32 arithmetic. Fast mode trades exactness for
speed: every model call of a session runs under `torch.autocast` in bfloat16 (matmuls and
convolutions in bfloat16, reductions and norms in float32, as autocast decides) except the SAM
heads, which stay float32 (`model.tracking.sam_heads`: 1 % of a step, and the most sensitive to
rounding), and on CUDA the image encoder is compiled (`torch.compile`, as the official
`vos_optimized` predictor does). Measured on a CPU with AMX (2 threads, 1 object): 2.75x the
official float32 per frame, masks 99.55 % equal on the worst frame.
bfloat16 only pays where the hardware computes it: CUDA GPUs, and CPUs with AVX-512 BF16 or AMX.
On other CPUs it is emulated and slower than float32 (measured: a 4096 x 256 x 28736 matmul, the
memory attention's largest, 0.87 s in float32 and 2.72 s in bfloat16 on AVX-512 without BF16), so
`fast=True` resolves to float32 there and logs a warning saying so. `FastMode(dtype=torch.bfloat16)`
forces it (tests, or measuring the emulation). Whatever the compute dtype, a session hands out
float32 logits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


def cpu_bfloat16_instructions() -> tuple[str, ...]:
    """The bfloat16 instruction sets this CPU has, of AVX-512 BF16 and AMX (empty: emulated)."""
    checks = (("AVX-512 BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported"))
    return tuple(name for name, check in checks if bool(getattr(torch.cpu, check, lambda: False)()))


def cpu_computes_bfloat16() -> bool:
    """True where this CPU has bfloat16 instructions (AVX-512 BF16 or AMX), not an emulation."""
    return bool(cpu_bfloat16_instructions())


@dataclass(frozen=True, slots=True)
class FastMode:
    """How a session computes. dtype None: float32 (exact); compile_image_encoder: torch.compile it."""

    dtype: torch.dtype | None = None
    compile_image_encoder: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"fast mode computes in bfloat16 or float16, not {self.dtype}")

    @property
    def exact(self) -> bool:
        return self.dtype is None and not self.compile_image_encoder

    @classmethod
    def for_device(cls, device: torch.device) -> FastMode:
        """What `fast=True` means on this device (see the module's docstring)."""
        if device.type == "cuda":
            return cls(dtype=torch.bfloat16, compile_image_encoder=True)
        if device.type == "cpu" and cpu_computes_bfloat16():
            return cls(dtype=torch.bfloat16)
        log.warning(
            "fast mode: this %s has no bfloat16 instructions (emulated bfloat16 is slower than float32); "
            "computing in float32", device.type,
        )  # fmt: skip
        return cls()

    @contextlib.contextmanager
    def compute(self, device: torch.device) -> Iterator[None]:
        """The model calls of one step: under autocast when a dtype is set, plain otherwise."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=device.type, dtype=self.dtype):
            yield


def resolve_fast_mode(fast: bool | FastMode, device: torch.device) -> FastMode:
    if isinstance(fast, FastMode):
        return fast
    return FastMode.for_device(device) if fast else FastMode()
