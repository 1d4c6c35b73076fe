"""Verification: submit, accept and reject masklets; the review and annotation queues; reviewer stats.

Every decision is one store status change (`Store.set_masklet_status`) naming the version
the reviewer saw, so a masklet edited after it was opened for review cannot be accepted
by mistake (`StaleWriteError`). The store logs each change as a `masklet.status` event
{from, to, reason}; that log is the masklet's review history, so a rejected masklet keeps
every earlier decision when it goes back to the annotation queue and is resubmitted.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from masklet.engine.store import Event, InvalidEditError, Masklet, Store
from masklet.engine.vocabulary import EventAction

log = logging.getLogger(__name__)

__all__ = [
    "Decision",
    "QueueItem",
    "ReviewerStats",
    "accept",
    "annotation_queue",
    "history",
    "reject",
    "review_queue",
    "reviewer_stats",
    "submit",
]

STATUS_ACTION = EventAction.MASKLET_STATUS


@dataclass(frozen=True, slots=True)
class Decision:
    """One status change of a masklet, read back from the event log."""

    masklet_id: int
    at: datetime
    by: str
    from_status: str
    to_status: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A masklet waiting in a queue, with what the queue shows about its past."""

    masklet: Masklet
    since: datetime  # when it entered its current status (created, for a never-submitted draft)
    rejections: int  # how often it has been rejected before
    last_reason: str | None  # the latest rejection's reason


@dataclass(frozen=True, slots=True)
class ReviewerStats:
    """One reviewer's decisions; `wait_s` is from submission to decision."""

    by: str
    accepted: int
    rejected: int
    median_wait_s: float | None

    @property
    def reviewed(self) -> int:
        return self.accepted + self.rejected

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.reviewed if self.reviewed else 0.0


def _decision(event: Event) -> Decision:
    p = event.payload
    assert event.masklet_id is not None  # the store always logs status changes against a masklet
    return Decision(event.masklet_id, event.at, event.by, p["from"], p["to"], p.get("reason"))


def history(store: Store, masklet_id: int) -> list[Decision]:
    """Every status change of one masklet, oldest first."""
    store.get_masklet(masklet_id)  # NotFoundError for an unknown id
    return [_decision(e) for e in store.list_events(masklet_id=masklet_id, action=STATUS_ACTION)]


def _decisions(store: Store, project_id: int | None) -> dict[int, list[Decision]]:
    out: dict[int, list[Decision]] = {}
    for event in store.list_events(project_id=project_id, action=STATUS_ACTION):
        d = _decision(event)
        out.setdefault(d.masklet_id, []).append(d)
    return out


def submit(
    store: Store, masklet_id: int, *, expected_version: int, by: str, phase: int | None = None
) -> Masklet:
    """Send a draft (or a reworked rejected masklet) to review."""
    return store.set_masklet_status(
        masklet_id, "in_review", expected_version=expected_version, by=by, phase=phase
    )


def accept(
    store: Store, masklet_id: int, *, expected_version: int, by: str, reason: str | None = None
) -> Masklet:
    """Accept a masklet in review; `expected_version` is the version the reviewer looked at."""
    _in_review(store, masklet_id, "accept")
    masklet = store.set_masklet_status(
        masklet_id, "accepted", expected_version=expected_version, by=by, reason=reason
    )
    log.info("masklet %d accepted by %s", masklet_id, by)
    return masklet


def reject(store: Store, masklet_id: int, *, expected_version: int, by: str, reason: str) -> Masklet:
    """Reject a masklet in review; it returns to the annotation queue with `reason` in its history."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidEditError("a rejection needs a reason (what the annotator should fix); got none")
    _in_review(store, masklet_id, "reject")
    masklet = store.set_masklet_status(
        masklet_id, "rejected", expected_version=expected_version, by=by, reason=reason
    )
    log.info("masklet %d rejected by %s: %s", masklet_id, by, reason)
    return masklet


def _in_review(store: Store, masklet_id: int, verb: str) -> None:
    status = store.get_masklet(masklet_id).status
    if status != "in_review":
        raise InvalidEditError(
            f"masklet {masklet_id} is {status}, not in review; only masklets in review can be {verb}ed "
            "(submit it first)"
        )


def _entered(masklet: Masklet, decisions: Iterable[Decision]) -> datetime:
    """When the masklet entered its current status."""
    changes = [d.at for d in decisions if d.to_status == masklet.status]
    return changes[-1] if changes else masklet.created_at


def _item(masklet: Masklet, decisions: list[Decision]) -> QueueItem:
    rejections = [d for d in decisions if d.to_status == "rejected"]
    return QueueItem(
        masklet=masklet,
        since=_entered(masklet, decisions),
        rejections=len(rejections),
        last_reason=rejections[-1].reason if rejections else None,
    )


def review_queue(
    store: Store, *, project_id: int | None = None, video_id: int | None = None
) -> list[QueueItem]:
    """Masklets in review, the longest waiting first."""
    masklets = store.list_masklets(project_id=project_id, video_id=video_id, status="in_review")
    decisions = _decisions(store, project_id)
    items = [_item(m, decisions.get(m.id, [])) for m in masklets]
    return sorted(items, key=lambda i: (i.since, i.masklet.id))


def annotation_queue(
    store: Store, *, project_id: int | None = None, video_id: int | None = None
) -> list[QueueItem]:
    """Masklets that need annotation work: rejected ones first (oldest rejection first), then drafts."""
    decisions = _decisions(store, project_id)
    items = [
        _item(m, decisions.get(m.id, []))
        for status in ("rejected", "draft")
        for m in store.list_masklets(project_id=project_id, video_id=video_id, status=status)
    ]
    return sorted(items, key=lambda i: (i.masklet.status != "rejected", i.since, i.masklet.id))


def reviewer_stats(store: Store, *, project_id: int | None = None) -> list[ReviewerStats]:
    """Accepted/rejected counts and the median wait per reviewer, by reviewer name."""
    counts: dict[str, dict[str, int]] = {}
    waits: dict[str, list[float]] = {}
    for decisions in _decisions(store, project_id).values():
        submitted: datetime | None = None
        for d in decisions:
            if d.to_status == "in_review":
                submitted = d.at
            elif d.from_status == "in_review" and d.to_status in ("accepted", "rejected"):
                counts.setdefault(d.by, {"accepted": 0, "rejected": 0})[d.to_status] += 1
                if submitted is not None:
                    waits.setdefault(d.by, []).append((d.at - submitted).total_seconds())
    return [
        ReviewerStats(
            by=by,
            accepted=c["accepted"],
            rejected=c["rejected"],
            median_wait_s=statistics.median(waits[by]) if waits.get(by) else None,
        )
        for by, c in sorted(counts.items())
    ]
