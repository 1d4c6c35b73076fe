"""Memory selection (frame indices only), the bank's bounded RAM and spill, and the result store."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from masklet.configs import get_config
from masklet.model.memory_selection import (
    BankRules,
    closest_cond_frames,
    pointer_limit,
    recent_frame_slots,
    select_memory,
)
from masklet.predict.memory_bank import MemoryBank
from masklet.predict.results import ResultStore
from masklet.predict.spill import SpillDir

RULES = BankRules()  # the SAM 2.1 defaults: 7 memories, stride 1, 16 pointers, signed, past only


def test_rules_follow_the_config() -> None:
    assert BankRules.from_config(get_config("sam2.1_hiera_t").tracking) == RULES
    v20 = BankRules.from_config(get_config("sam2_hiera_t").tracking)
    assert not v20.signed_ptr_offsets and v20.only_past_ptrs


def test_forward_selection() -> None:
    sel = select_memory(10, [0], set(range(1, 10)), rules=RULES, reverse=False, num_frames=20)
    assert sel.spatial == ((0, 0), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9))
    # the conditioning pointer first, then tracked frames 9, 8, ... (frame 0 is already in)
    assert sel.pointers == ((10, 0),) + tuple((d, 10 - d) for d in range(1, 10))
    assert sel.ptr_norm == 15 and sel.layout == (7, 10)


def test_missing_frames_leave_gaps() -> None:
    sel = select_memory(10, [0], {9, 7}, rules=RULES, reverse=False, num_frames=20)
    assert sel.spatial == ((0, 0), (4, 7), (6, 9))
    assert sel.pointers == ((10, 0), (1, 9), (3, 7))


def test_reverse_selection() -> None:
    sel = select_memory(5, [10], {6, 7, 8, 9}, rules=RULES, reverse=True, num_frames=12)
    assert sel.spatial == ((0, 10), (3, 9), (4, 8), (5, 7), (6, 6))
    # signed offset of a later conditioning frame in a reverse pass: (5 - 10) * -1
    assert sel.pointers == ((5, 10), (1, 6), (2, 7), (3, 8), (4, 9))
    unsigned = dataclasses.replace(RULES, signed_ptr_offsets=False)
    assert select_memory(5, [10], set(), rules=unsigned, reverse=True, num_frames=12).pointers == ((5, 10),)


def test_stride() -> None:
    slots = recent_frame_slots(20, num_maskmem=7, stride=3, reverse=False)
    assert slots == [(1, 6), (2, 9), (3, 12), (4, 15), (5, 18), (6, 19)]
    slots = recent_frame_slots(20, num_maskmem=7, stride=3, reverse=True)
    assert slots == [(1, 36), (2, 33), (3, 30), (4, 27), (5, 24), (6, 21)]  # ceil((20 + 2) / 3) * 3 = 24
    strided = dataclasses.replace(RULES, stride=3)
    sel = select_memory(20, [0], set(range(1, 20)), rules=strided, reverse=False, num_frames=40)
    assert [f for _, f in sel.spatial] == [0, 6, 9, 12, 15, 18, 19]


def test_future_conditioning_frames_give_memory_but_no_pointer() -> None:
    sel = select_memory(10, [0, 15], set(), rules=RULES, reverse=False, num_frames=20)
    assert sel.spatial == ((0, 0), (0, 15))
    assert sel.pointers == ((10, 0),)
    every = dataclasses.replace(RULES, only_past_ptrs=False)
    assert select_memory(10, [0, 15], set(), rules=every, reverse=False, num_frames=20).pointers == (
        (10, 0),
        (-5, 15),
    )


def test_max_cond_frames() -> None:
    assert closest_cond_frames(10, [0, 4, 8, 12], -1) == ([0, 4, 8, 12], [])
    assert closest_cond_frames(10, [0, 4, 8, 12], 2) == ([8, 12], [0, 4])
    assert closest_cond_frames(10, [0, 4, 8, 12], 3) == ([8, 12, 4], [0])
    assert closest_cond_frames(30, [0, 4, 8, 12], 2) == ([12, 8], [0, 4])
    rules = dataclasses.replace(RULES, max_cond_frames=2)
    sel = select_memory(10, [0, 4, 8, 12], {1, 2, 3, 5, 6, 7, 9}, rules=rules, reverse=False, num_frames=20)
    # unselected conditioning frames (4, then 0) still fill recent slots and pointers
    assert sel.spatial == ((0, 8), (0, 12), (1, 4), (2, 5), (3, 6), (4, 7), (6, 9))
    assert [f for _, f in sel.pointers] == [8, 9, 7, 6, 5, 4, 3, 2, 1, 0]


def test_pointer_limits() -> None:
    many = set(range(100))
    sel = select_memory(50, [0], many, rules=RULES, reverse=False, num_frames=100)
    assert len(sel.pointers) == 16 and sel.pointers[-1] == (15, 35)
    short = select_memory(4, [0], {1, 2, 3}, rules=RULES, reverse=False, num_frames=5)
    assert short.ptr_norm == 4 and len(short.pointers) == 4
    live = select_memory(50, [0], many, rules=RULES, reverse=False, num_frames=None)
    assert live.ptr_norm == 15 and live.pointers == sel.pointers
    assert pointer_limit(None, 16) == 16 and pointer_limit(3, 16) == 3
    assert select_memory(0, [0], set(), rules=RULES, reverse=False, num_frames=1).ptr_norm == 1
    fewer = dataclasses.replace(RULES, max_obj_ptrs=4)
    assert len(select_memory(50, [0], many, rules=fewer, reverse=False, num_frames=100).pointers) == 4
    none = dataclasses.replace(RULES, use_obj_ptrs=False)
    assert select_memory(50, [0], many, rules=none, reverse=False, num_frames=100).pointers == ()


def _mem(frame: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(frame)
    return torch.randn(4, 3, 3, generator=g).to(torch.bfloat16)


def test_bank_conditioning_replaces_and_refuses() -> None:
    bank = MemoryBank(RULES)
    ptr = torch.zeros(8)
    assert bank.add(3, _mem(3), ptr, cond=False)
    assert bank.tracked_frames == {3}
    assert bank.add(3, _mem(30), ptr, cond=True)
    assert bank.tracked_frames == set() and bank.cond_frames == (3,)
    assert not bank.add(3, _mem(31), ptr, cond=False)  # parity: a tracked memory never replaces a prompt
    assert torch.equal(bank.memory(3), _mem(30))
    bank.add(0, _mem(0), ptr, cond=True)
    bank.add(3, _mem(32), ptr, cond=True)  # replacing keeps the insertion order
    assert bank.cond_frames == (3, 0)


def test_bank_spills_exactly_and_stays_bounded(tmp_path) -> None:
    def run(num_frames: int) -> tuple[MemoryBank, SpillDir]:
        spill = SpillDir(tmp_path)
        bank = MemoryBank(RULES, spill=spill, max_in_memory=3, name="o1")
        bank.add(0, _mem(0), torch.full((8,), 0.0), cond=True)
        for f in range(1, num_frames):
            bank.add(f, _mem(f), torch.full((8,), float(f)), cond=False)
            bank.select(f + 1, reverse=False, num_frames=None)
        return bank, spill

    small, _ = run(8)
    big, spill = run(32)
    assert small.num_in_memory == big.num_in_memory == 4  # 1 conditioning + 3 tracked
    assert len(spill) == 2 * (31 - 3) and spill.path is not None  # a memory and a pointer each
    assert sorted(big._ptrs) == sorted([0, *big._recent])  # pointers in RAM only beside their memory
    assert big.tracked_frames == set(range(1, 32))
    for f in (1, 5, 30):
        assert torch.equal(big.memory(f), _mem(f))  # bit-exact bfloat16, from disk or RAM
        assert big.pointer(f)[0].item() == f
    big.add(5, _mem(55), torch.zeros(8), cond=False)  # recomputed: the stale file goes
    assert torch.equal(big.memory(5), _mem(55)) and big.pointer(5).eq(0).all() and len(spill) == 2 * (31 - 3)
    path = spill.path
    big.clear()
    assert len(spill) == 0 and not any(path.iterdir())
    spill.close()
    assert not path.exists()


def test_bank_without_spill_drops_evicted_frames() -> None:
    bank = MemoryBank(RULES, max_in_memory=2)
    bank.add(0, _mem(0), torch.zeros(8), cond=True)
    for f in range(1, 6):
        bank.add(f, _mem(f), torch.zeros(8), cond=False)
    assert bank.tracked_frames == {4, 5} and 1 not in bank
    with pytest.raises(KeyError):
        bank.memory(1)


def test_result_store(tmp_path) -> None:
    spill = SpillDir(tmp_path)
    store = ResultStore(spill, max_in_memory=2)
    maps = {f: torch.randn(1, 1, 8, 8) for f in range(6)}
    for f, m in maps.items():
        store.put(f, 7, m, obj_score_logit=f - 2.5)
    store.put(0, 9, maps[0], obj_score_logit=1.0)
    assert store.num_in_memory == 2 and len(store) == 7
    for f, m in maps.items():
        got = store.get(f, 7)
        assert torch.equal(got.low_res_logits, m) and got.present == (f >= 3)
    assert store.frames(7) == list(range(6)) and store.frames(9) == [0]
    assert store.get(6, 7) is None
    assert tuple(store.get(2, 7).logits(16, 24).shape) == (16, 24)
    store.remove_object(7)
    assert store.frames() == [0] and len(spill) <= 1
    store.clear()
    assert len(store) == 0 and len(spill) == 0
    spill.close()
