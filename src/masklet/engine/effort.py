"""The SAM 2 paper's annotation-effort table, per phase, read from the store's event log.

Event conventions (what the annotation tools must log for the table to be right):
- every store edit made while annotating names its `phase` (1, 2 or 3); events without a
  phase are not counted;
- annotator time rides on events' `duration_s`: the tools log it with `log_time` (actions
  `time.locate`, `time.click`, `time.edit`, `time.examine`, with the masklet and frame where
  known); the table sums `duration_s` over every event of the phase, whatever its action;
- clicks are the `clicks` field the store writes into each `prompt.add` payload.
Measures per phase:
- frames: distinct (masklet, frame) pairs the phase saved a mask for (`mask.put`); save only
  the annotated frames (SA-V: every 4th) to get the paper's per-frame numbers;
- time per frame = summed `duration_s` / frames;
- edited frames: of those pairs, the ones with a prompt, or with a mask saved from source
  `manual` (pixel tools, redrawn masks) or `click_model`; shown as a share of frames;
- clicks per clicked frame = clicks / pairs with at least one click;
- Phase-1 alignment: a Phase-1 re-annotation of a masklet is a masklet whose meta holds
  `{"realigned_from": <that masklet's id>}` (the latest one counts). Its IoU with the original
  is spatio-temporal: summed intersection / summed union over the re-annotation's saved frames
  (the original's missing frames are empty; an empty union is 1). The share of masklets with a
  re-annotation whose IoU exceeds `alignment_iou` (0.75). Re-annotation masklets and all their
  events are left out of every other measure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from masklet.engine.store import Event, Masklet, Store
from masklet.engine.vocabulary import DELETED_MASKLET, TIME_ACTIONS, EventAction, MaskSource
from masklet.errors import MaskletError
from masklet.io.masks import decode_rle

__all__ = ["REALIGNED_FROM", "TIME_ACTIONS", "EffortTable", "PhaseEffort", "effort_table", "log_time"]

REALIGNED_FROM = "realigned_from"
EDIT_SOURCES = frozenset(s for s in MaskSource if s.by_hand)


def log_time(
    store: Store,
    action: str,
    seconds: float,
    *,
    by: str,
    phase: int,
    masklet_id: int | None = None,
    video_id: int | None = None,
    frame: int | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Event:
    """Log annotator time under one of TIME_ACTIONS (e.g. `time.click`, 1.5 s, on a masklet's frame)."""
    if action not in TIME_ACTIONS:
        raise MaskletError(f"time is logged as one of {', '.join(TIME_ACTIONS)}; got {action!r}")
    return store.log_event(
        action, by=by, phase=phase, masklet_id=masklet_id, video_id=video_id, frame=frame,
        duration_s=float(seconds), payload=payload,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PhaseEffort:
    """The counts behind one phase's column of the table; ratios are None where undefined."""

    phase: int
    masklets: int
    frames: int
    edited_frames: int
    clicked_frames: int
    clicks: int
    seconds: float
    checked: int  # masklets with a Phase-1 re-annotation
    aligned: int  # of those, IoU above the threshold

    @property
    def time_per_frame_s(self) -> float | None:
        return self.seconds / self.frames if self.frames else None

    @property
    def edited_share(self) -> float | None:
        return self.edited_frames / self.frames if self.frames else None

    @property
    def clicks_per_clicked_frame(self) -> float | None:
        return self.clicks / self.clicked_frames if self.clicked_frames else None

    @property
    def alignment(self) -> float | None:
        return self.aligned / self.checked if self.checked else None


_ROWS = (  # (label, attribute, format)
    ("masklets", "masklets", "{:d}"),
    ("annotated frames", "frames", "{:d}"),
    ("time per frame (s)", "time_per_frame_s", "{:.1f}"),
    ("edited frames (%)", "edited_share", "{:.0%}"),
    ("clicks per clicked frame", "clicks_per_clicked_frame", "{:.2f}"),
    ("Phase-1 alignment, IoU > {iou:g} (%)", "alignment", "{:.1%}"),
)


@dataclass(frozen=True, slots=True)
class EffortTable:
    """One `PhaseEffort` per phase that has events, in phase order."""

    phases: tuple[PhaseEffort, ...]
    alignment_iou: float = 0.75

    def to_json(self) -> dict[str, Any]:
        """Counts and ratios per phase (ratios null where undefined), as a JSON-ready dict."""
        out = []
        for p in self.phases:
            row: dict[str, Any] = {f: getattr(p, f) for f in PhaseEffort.__dataclass_fields__}
            for name in ("time_per_frame_s", "edited_share", "clicks_per_clicked_frame", "alignment"):
                row[name] = getattr(p, name)
            out.append(row)
        return {"alignment_iou": self.alignment_iou, "phases": out}

    def render(self) -> str:
        """The paper's layout: one column per phase, one row per measure ("-" where undefined)."""
        header = ["", *(f"Phase {p.phase}" for p in self.phases)]
        lines = [header]
        for label, attr, fmt in _ROWS:
            cells = [label.format(iou=self.alignment_iou)]
            for p in self.phases:
                value = getattr(p, attr)
                cells.append("-" if value is None else fmt.format(value))
            lines.append(cells)
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in lines
        )


def _realignments(masklets: list[Masklet]) -> dict[int, int]:
    """{original masklet id: its latest re-annotation's id}."""
    out: dict[int, int] = {}
    for m in sorted(masklets, key=lambda m: m.id):
        original = m.meta.get(REALIGNED_FROM)
        if isinstance(original, int) and not isinstance(original, bool):
            out[original] = m.id
    return out


def masklet_iou(store: Store, masklet_id: int, reference_id: int) -> float:
    """Spatio-temporal IoU of a masklet against a reference masklet over the reference's frames."""
    reference = store.get_frame_masks(reference_id)
    mine = {m.frame: m for m in store.get_frame_masks(masklet_id, frames=[r.frame for r in reference])}
    inter = union = 0
    for ref in reference:
        b = decode_rle(ref.rle)
        a = decode_rle(mine[ref.frame].rle) if ref.frame in mine else np.zeros_like(b)
        inter += int(np.count_nonzero(a & b))
        union += int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else inter / union


def effort_table(
    store: Store, *, project_id: int | None = None, video_id: int | None = None, alignment_iou: float = 0.75
) -> EffortTable:
    """The effort table of a project (or one video) from its events and masks."""
    masklets = store.list_masklets(project_id=project_id, video_id=video_id)
    realigned = _realignments(masklets)
    checks = set(realigned.values())
    per_phase: dict[int, dict[str, Any]] = {}
    for e in store.list_events(project_id=project_id, video_id=video_id):
        if e.phase is None or e.masklet_id in checks or DELETED_MASKLET in e.payload:
            continue  # the table describes the masklets that exist: a deleted one's work leaves it
        acc = per_phase.setdefault(
            e.phase,
            {"masklets": set(), "frames": set(), "edited": set(), "clicked": set(), "clicks": 0, "s": 0.0},
        )
        acc["s"] += e.duration_s or 0.0
        key = (e.masklet_id, e.frame)
        if e.action == EventAction.MASK_PUT:
            acc["masklets"].add(e.masklet_id)
            acc["frames"].add(key)
            if e.payload.get("source") in EDIT_SOURCES:
                acc["edited"].add(key)
        elif e.action == "prompt.add":
            acc["edited"].add(key)
            clicks = int(e.payload.get("clicks", 0))
            acc["clicks"] += clicks
            if clicks:
                acc["clicked"].add(key)
    phases = []
    for phase, acc in sorted(per_phase.items()):
        checked = [m for m in acc["masklets"] if m in realigned]
        ious = [masklet_iou(store, m, realigned[m]) for m in checked]
        phases.append(
            PhaseEffort(
                phase=phase,
                masklets=len(acc["masklets"]),
                frames=len(acc["frames"]),
                edited_frames=len(acc["edited"] & acc["frames"]),
                clicked_frames=len(acc["clicked"]),
                clicks=acc["clicks"],
                seconds=acc["s"],
                checked=len(checked),
                aligned=sum(1 for iou in ious if iou > alignment_iou),
            )
        )
    return EffortTable(tuple(phases), alignment_iou)
