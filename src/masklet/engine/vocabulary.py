"""The data engine's fixed words: masklet types and statuses, mask sources, event actions.

String enums (`StrEnum`): a member equals its text, so rows keep plain strings, old rows read
back compare equal, and a typo in code is an AttributeError instead of a silent new word.
No database import here: the CLI builds its choices from these without loading SQLAlchemy.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EventAction",
    "JobStatus",
    "MaskSource",
    "MaskletStatus",
    "MaskletType",
    "PromptKind",
    "ReviewAction",
    "Role",
    "TokenKind",
]


class MaskletType(StrEnum):
    MANUAL = "manual"
    AUTO = "auto"


class MaskletStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class MaskSource(StrEnum):
    """Where a saved frame mask came from."""

    MANUAL = "manual"  # drawn (brush, eraser, polygon) or set by hand
    CLICK_MODEL = "click_model"  # the model's answer to clicks or a box on that frame
    PROPAGATED = "propagated"  # tracked from other frames
    AUTO = "auto"  # an auto masklet (segment everything, then track)

    @property
    def by_hand(self) -> bool:
        """Edited on that frame by a person (counts as an edit in the effort table)."""
        return self in (MaskSource.MANUAL, MaskSource.CLICK_MODEL)


class PromptKind(StrEnum):
    CLICK = "click"
    BOX = "box"
    MASK = "mask"


class ReviewAction(StrEnum):
    SUBMIT = "submit"
    ACCEPT = "accept"
    REJECT = "reject"


class Role(StrEnum):
    """What a user of the web tool may do: an admin everything, an annotator edit masks and
    submit them, a reviewer accept or reject them (never edit)."""

    ADMIN = "admin"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"


class JobStatus(StrEnum):
    """A propagation job's state; done, failed, cancelled and interrupted are final."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its server stopped mid-way; the frames saved so far stay

    @property
    def final(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class TokenKind(StrEnum):
    SESSION = "session"  # the page's cookie; expires
    API = "api"  # a bearer token for scripts; until revoked


# the payload key that marks the events of a deleted masklet (their masklet_id is then null)
DELETED_MASKLET = "deleted_masklet"


class EventAction(StrEnum):
    """What an event row records (`events.action`)."""

    PROJECT_CREATE = "project.create"
    VIDEO_ADD = "video.add"
    VIDEO_META = "video.meta"
    MASKLET_CREATE = "masklet.create"
    MASKLET_STATUS = "masklet.status"
    MASKLET_EDIT = "masklet.edit"
    MASKLET_DELETE = "masklet.delete"
    MASK_PUT = "mask.put"
    MASK_DELETE = "mask.delete"
    MASK_EDIT = "mask.edit"
    PROMPT_ADD = "prompt.add"
    IMPORT_SAV = "import.sav"
    IMPORT_DAVIS = "import.davis"
    IMPORT_COCO = "import.coco"
    IMPORT_YTVIS = "import.ytvis"
    AUTO_RUN = "auto.run"
    JOB_START = "job.start"
    JOB_END = "job.end"
    USER_ADD = "user.add"
    USER_PASSWORD = "user.password"
    TIME_LOCATE = "time.locate"
    TIME_CLICK = "time.click"
    TIME_EDIT = "time.edit"
    TIME_EXAMINE = "time.examine"


TIME_ACTIONS = (
    EventAction.TIME_LOCATE,
    EventAction.TIME_CLICK,
    EventAction.TIME_EDIT,
    EventAction.TIME_EXAMINE,
)
