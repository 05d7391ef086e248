"""The HTTP API's wire models: the bodies :mod:`journeyc.serve.api` takes and answers.

Pydantic models, so FastAPI validates and documents them (the OpenAPI schema names
each by its class). Times in answers are ISO-8601 UTC strings (:data:`UtcTime`); the
routes build them from the store's epoch milliseconds.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from journeyc.events import AliasEvent, IdentifyEvent, TrackEvent

__all__ = [
    "ActionOut",
    "AliasCall",
    "BatchCall",
    "Cohort",
    "ErrorBody",
    "Forgotten",
    "Health",
    "IdentifyCall",
    "Inbox",
    "InboxMessage",
    "JourneyStats",
    "JourneysView",
    "LiveJourney",
    "Membership",
    "ProblemOut",
    "Sends",
    "StatusView",
    "Success",
    "TrackCall",
    "UserView",
    "UtcTime",
    "VersionOut",
]


class Success(BaseModel):
    """Segment's answer to an accepted call: every event in it is committed."""

    success: Literal[True] = True


class ProblemOut(BaseModel):
    """One thing wrong with a call: the JSON path of the field and what is wrong."""

    path: str = Field(examples=["$.batch[3].event"])
    message: str = Field(examples=["is required"])


class ErrorBody(BaseModel):
    """Why a request was refused."""

    error: str = Field(description="What is wrong, for people.")
    code: str = Field(description="A stable word for programs, such as `invalid_event`.")
    problems: list[ProblemOut] = Field(
        default_factory=list, description="For a bad event, every bad field."
    )


class TrackCall(TrackEvent):
    """A Segment ``track`` call as ``/v1/track`` takes it; ``type`` may be left out."""

    model_config = ConfigDict(title="TrackCall")

    type: Literal["track"] = "track"
    write_key: str | None = Field(
        default=None, alias="writeKey", description="The write key, if not sent as Basic auth."
    )


class IdentifyCall(IdentifyEvent):
    """A Segment ``identify`` call as ``/v1/identify`` takes it; ``type`` may be left out."""

    model_config = ConfigDict(title="IdentifyCall")

    type: Literal["identify"] = "identify"
    write_key: str | None = Field(
        default=None, alias="writeKey", description="The write key, if not sent as Basic auth."
    )


class AliasCall(AliasEvent):
    """A Segment ``alias`` call as ``/v1/alias`` takes it: ``previousId`` (an anonymous
    id) merges into ``userId``; ``type`` may be left out."""

    model_config = ConfigDict(title="AliasCall")

    type: Literal["alias"] = "alias"
    write_key: str | None = Field(
        default=None, alias="writeKey", description="The write key, if not sent as Basic auth."
    )


class BatchCall(BaseModel):
    """A Segment ``/v1/batch`` body: calls stored together, or not at all."""

    model_config = ConfigDict(title="BatchCall", extra="ignore")

    batch: list[Annotated[TrackEvent | IdentifyEvent | AliasEvent, Field(discriminator="type")]]
    write_key: str | None = Field(
        default=None, alias="writeKey", description="The write key, if not sent as Basic auth."
    )


UtcTime = Annotated[
    str,
    Field(json_schema_extra={"format": "date-time"}, examples=["2026-01-05T10:31:00.000Z"]),
]
"""A time in an answer: ISO-8601 UTC with milliseconds (``2026-01-05T10:31:00.000Z``),
made by :func:`~journeyc.serve.times.iso` from the store's epoch milliseconds."""


class LiveJourney(BaseModel):
    """A user's running instance of a journey. Times are ISO-8601 UTC."""

    journey_id: str
    version: str
    entry_no: int
    step: str = Field(description="The step the instance is at.")
    status: Literal["active", "waiting"]
    entered_at: UtcTime
    wake_at: UtcTime | None = Field(description="When a waiting timer fires, if one is armed.")
    waiting_for: str | None = Field(description="The event a `wait for` step waits for.")


class ActionOut(BaseModel):
    """One thing the engine did for the user (``at`` in ISO-8601 UTC)."""

    at: UtcTime
    journey_id: str | None
    step: str | None
    action: str = Field(examples=["send"])
    detail: dict[str, Any]


class Membership(BaseModel):
    """A segment the user is in, as the engine keeps it (``since`` in ISO-8601 UTC)."""

    segment: str
    since: UtcTime


class UserView(BaseModel):
    """A user's profile, running journeys, segments and latest actions (newest first)."""

    user_id: str
    traits: dict[str, Any]
    journeys: list[LiveJourney]
    segments: list[Membership] = []
    actions: list[ActionOut]


class Forgotten(BaseModel):
    """What forgetting a user removed: rows per table."""

    user_id: str
    removed: dict[str, int] = Field(examples=[{"events": 12, "profiles": 1, "outbox": 2}])


class VersionOut(BaseModel):
    """A deployed version of a journey (``deployed_at`` in ISO-8601 UTC)."""

    version: str
    deployed_at: UtcTime
    active: bool


class Sends(BaseModel):
    """Outbox rows by channel, per status."""

    sent: dict[str, int]
    queued: dict[str, int]
    failed: dict[str, int]


class Cohort(BaseModel):
    """Entries into a journey and how many of them reached its goal."""

    entries: int
    goals: int


class JourneyStats(BaseModel):
    """How a journey is doing, across all its versions."""

    id: str
    versions: list[VersionOut]
    instances: dict[str, int] = Field(description="Running instances per step.")
    entries: int
    goals: int
    arms: dict[str, Cohort] = Field(
        description="A/B tests: the entries that were sent messages, per split arm (the "
        "last `split` each went through), and their goals."
    )
    holdout: Cohort = Field(
        description="The held-out entries (every send suppressed), whatever their arm, "
        "and their goals: the control group."
    )
    sends: Sends
    suppressions: dict[str, int] = Field(description="Suppressed sends per reason.")


class JourneysView(BaseModel):
    """Every journey that was deployed or has left rows behind, by id."""

    journeys: list[JourneyStats]


class InboxMessage(BaseModel):
    """An in-app message delivered to the user (``sent_at`` in ISO-8601 UTC)."""

    id: int
    journey_id: str
    step: str
    message: str
    content: dict[str, Any]
    sent_at: UtcTime | None


class Inbox(BaseModel):
    """A user's in-app messages, newest first."""

    user_id: str
    messages: list[InboxMessage]


class Health(BaseModel):
    """Whether the store answers."""

    ok: bool


class StatusView(BaseModel):
    """The daemon's own report, with the store's event count and outbox backlog."""

    last_event_seq: int
    outbox_backlog: int
    daemon: dict[str, Any]
