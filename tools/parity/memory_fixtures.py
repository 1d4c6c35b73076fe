"""Record the official memory attention and memory encoder on small sizes, for masklet's parity tests.

Runs only in the oracle venv (sam2==1.1.0), from the repository root, in a few seconds:
    /work/refenv/bin/python tools/parity/memory_fixtures.py
Writes tests/data/parity/memory_modules.npz. Weights are not stored: both sides draw them with
seeded_weights (seed PARITY_SEED) from the names the full model uses ("memory_attention.*",
"memory_encoder.*"). Arrays (float32):

    attn.<case>.{curr, curr_pos}     (B, L, 32)  batch-first current-frame tokens and encoding
    attn.<case>.{memory, memory_pos} (B, Lm, 16) T frames of L tokens, then pointer tokens
    attn.<case>.num_obj_ptr_tokens   ()          int64
    attn.<case>.out                  (B, L, 32)  official output, transposed to batch-first
    enc.<case>.{pix_feat, masks}     (B, 32, h, w), (B, 1, 16h, 16w)
    enc.<case>.skip_mask_sigmoid     ()          bool
    enc.<case>.{features, pos}       (B, 16, h, w)
    {attn, enc}.weights_digest       ()          str: seeded_weights.state_dict_digest of the weights used

Memory attention: d_model 32, 2 heads, 2 layers, feed-forward 64, memory width 16, RoPE grid 8x8.
Memory encoder: in_dim 32, out_dim 16, total stride 16, two ConvNeXt blocks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.transformer import RoPEAttention

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seeded_weights as sw  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "parity" / "memory_modules.npz"

D_MODEL, MEM_DIM, HEADS, FFN, LAYERS, GRID = 32, 16, 2, 64, 2, (8, 8)

# case -> (batch, grid side, memory frames, pointer tokens, bf16-rounded memory)
ATTN_CASES = {
    "frames3_ptr8_b2": (2, 8, 3, 8, False),
    "frames2_noptr": (1, 8, 2, 0, False),
    "grid4_frames2_ptr4": (1, 4, 2, 4, False),  # not the configured grid: tables recomputed
    "bf16_frames1_ptr4": (1, 8, 1, 4, True),
    "ptr_only": (2, 8, 0, 4, False),  # no spatial memory: zero keys to rotate
}
# case -> (batch, h, w, skip_mask_sigmoid)
ENC_CASES = {"logits_b2": (2, 4, 4, False), "binary": (1, 8, 8, True), "wide": (1, 4, 6, False)}


def _seeded(module: torch.nn.Module, prefix: str) -> str:
    """Load the seeded weights; returns their digest (the tests check it before comparing outputs)."""
    shapes = {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}
    sd = sw.seeded_state_dict(shapes, sw.PARITY_SEED)
    module.load_state_dict({k[len(prefix) :]: v for k, v in sd.items()}, strict=True)
    return sw.state_dict_digest(sd)


def _official_attention() -> MemoryAttention:
    def rope(**kw: object) -> RoPEAttention:
        return RoPEAttention(
            embedding_dim=D_MODEL,
            num_heads=HEADS,
            downsample_rate=1,
            dropout=0.1,
            rope_theta=10000.0,
            feat_sizes=list(GRID),
            **kw,
        )

    layer = MemoryAttentionLayer(
        activation="relu",
        cross_attention=rope(rope_k_repeat=True, kv_in_dim=MEM_DIM),
        d_model=D_MODEL,
        dim_feedforward=FFN,
        dropout=0.1,
        pos_enc_at_attn=False,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        self_attention=rope(),
    )
    model = MemoryAttention(d_model=D_MODEL, pos_enc_at_input=True, layer=layer, num_layers=LAYERS)
    return model.eval()


def _official_encoder() -> MemoryEncoder:
    model = MemoryEncoder(
        out_dim=MEM_DIM,
        mask_downsampler=MaskDownSampler(
            embed_dim=D_MODEL, kernel_size=3, stride=2, padding=1, total_stride=16
        ),
        fuser=Fuser(
            CXBlock(dim=D_MODEL, kernel_size=7, padding=3, layer_scale_init_value=1e-6), num_layers=2
        ),
        position_encoding=PositionEmbeddingSine(num_pos_feats=MEM_DIM),
        in_dim=D_MODEL,
    )
    return model.eval()


def main() -> None:
    torch.manual_seed(0)
    arrays: dict[str, np.ndarray] = {}
    attn = _official_attention()
    arrays["attn.weights_digest"] = np.array(_seeded(attn, "memory_attention."))
    for name, (b, side, frames, ptrs, bf16) in ATTN_CASES.items():
        length, mem_len = side * side, frames * side * side + ptrs
        curr, curr_pos = torch.randn(b, length, D_MODEL), torch.randn(b, length, D_MODEL)
        memory, memory_pos = torch.randn(b, mem_len, MEM_DIM), torch.randn(b, mem_len, MEM_DIM)
        if bf16:
            memory, memory_pos = memory.bfloat16().float(), memory_pos.bfloat16().float()

        def run(
            mem: torch.Tensor, curr=curr, curr_pos=curr_pos, memory_pos=memory_pos, ptrs=ptrs
        ) -> torch.Tensor:
            with torch.no_grad():  # the official module takes (L, B, C)
                out = attn(
                    curr=curr.transpose(0, 1),
                    memory=mem.transpose(0, 1),
                    curr_pos=curr_pos.transpose(0, 1),
                    memory_pos=memory_pos.transpose(0, 1),
                    num_obj_ptr_tokens=ptrs,
                )
            return out.transpose(0, 1)

        out = run(memory)
        # the fixture must show that the memory matters
        effect = (run(torch.randn_like(memory)) - out).abs().mean().item()
        assert effect > 0.05, f"{name}: memory barely changes the output ({effect:.3g})"
        print(
            f"attn {name}: out {tuple(out.shape)}, mean |out| {out.abs().mean():.3f}, memory effect {effect:.3f}"
        )
        for key, t in dict(
            curr=curr, curr_pos=curr_pos, memory=memory, memory_pos=memory_pos, out=out
        ).items():
            arrays[f"attn.{name}.{key}"] = t.numpy()
        arrays[f"attn.{name}.num_obj_ptr_tokens"] = np.array(ptrs, dtype=np.int64)

    enc = _official_encoder()
    arrays["enc.weights_digest"] = np.array(_seeded(enc, "memory_encoder."))
    for name, (b, h, w, skip) in ENC_CASES.items():
        pix_feat = torch.randn(b, D_MODEL, h, w)
        masks = 4 * torch.randn(b, 1, 16 * h, 16 * w)
        if skip:
            masks = (masks > 0).float()
        with torch.no_grad():
            res = enc(pix_feat, masks, skip_mask_sigmoid=skip)
        feats, pos = res["vision_features"], res["vision_pos_enc"][0]
        print(f"enc {name}: features {tuple(feats.shape)}, std {feats.std():.3f}")
        arrays.update(
            {
                f"enc.{name}.pix_feat": pix_feat.numpy(),
                f"enc.{name}.masks": masks.numpy(),
                f"enc.{name}.skip_mask_sigmoid": np.array(skip),
                f"enc.{name}.features": feats.numpy(),
                f"enc.{name}.pos": pos.numpy(),
            }
        )
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
