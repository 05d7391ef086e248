"""The journey report as JSON: stable field names, every figure documented.

``JourneyReport.model_dump(mode="json")`` is what ``journeyc report --json`` prints
and ``GET /v1/journeys/{id}/report`` returns; the dashboard renders it. Times are
ISO-8601 UTC strings (``2026-01-05T10:00:00Z``), durations whole seconds, rates
fractions in [0, 1]. A figure that cannot be known is ``null``, never a guess; maps
(``{"push": 3}``) list only the keys that occurred, sorted. docs/reports.md says how
each figure is computed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_FORMAT = 1
"""The version of this JSON shape: raised when a field changes meaning or goes."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionInfo(_Model):
    """One deployed version of the journey."""

    version: str = Field(description="The version hash (the IR's content hash).")
    deployed_at: str = Field(description="When this version was first deployed.")
    active: bool = Field(description="Whether it takes new entries now.")


class StepReport(_Model):
    """One step (a node of the compiled graph) and what happened there in the range."""

    id: str = Field(description="The node id: the step's `as NAME`, or its position (`3.2`).")
    kind: str | None = Field(
        description="wait, wait_until, wait_for, branch, split, send, set, unset, track "
        "or exit; null for a step the actions name that the report's graph does not have "
        "(it was in another version)."
    )
    line: int | None = Field(description="The step's line in its .journey file.")
    reached: int | None = Field(
        description="Entries that reached the step in the range. Counted for steps that "
        "log an action when reached (send, set, unset, track, exit); worked out from the "
        "graph for the others (see reached_how); null when the graph does not tell."
    )
    reached_how: Literal["counted", "inferred"] | None = Field(
        description="counted: from the step's own actions; inferred: the start, reached "
        "by every entry, or (when the range runs to now) the users waiting or ended there "
        "plus those that went on to steps only it leads to; null: unknown."
    )
    waiting_now: int = Field(
        description="Users at the step now (waiting, or held by quiet hours), whatever the range."
    )
    sends: dict[str, int] = Field(description="Messages sent (queued) by channel.")
    suppressed: dict[str, int] = Field(
        description="Sends suppressed by reason: no_channel, cap, holdout, quiet_hours, "
        "render_error."
    )
    exits: dict[str, int] = Field(
        description="Entries that ended at this step, by reason: completed, exit_event, exit_step."
    )


class FunnelStep(_Model):
    """A step on a funnel path, with how many entries reached it."""

    id: str = Field(description="The node id.")
    kind: str = Field(description="The node kind.")
    reached: int | None = Field(description="As in StepReport.reached.")
    via: str | None = Field(
        description="How the path left the step before this one: a branch's `case N` or "
        "`else`, a split's arm name, a wait for's `event` or `timeout`; null when it "
        "had one way on."
    )


class FunnelPath(_Model):
    """One path through the compiled graph from the start to an end."""

    steps: list[FunnelStep] = Field(description="The steps in order, the start first.")
    ends: Literal["completes", "exit"] = Field(
        description="completes: the journey runs out of steps; exit: an exit step."
    )


class GoalReport(_Model):
    """The journey's goal and the entries that reached it."""

    event: str = Field(description="The goal event.")
    within_seconds: int | None = Field(
        description="The goal window after entry; null: while in the journey."
    )
    conversions: int = Field(
        description="Entries of the range that reached the goal within its window (at "
        "any time, also after `until`)."
    )
    rate: float | None = Field(description="conversions / entries; null with no entries.")
    median_seconds_to_goal: float | None = Field(
        description="Median of goal time minus entry time over the conversions."
    )


class ArmReport(_Model):
    """One group of an experiment: a split arm (held-out users excluded), the
    messaged group of a journey with a holdout and no split, or the holdout."""

    name: str = Field(
        description="The arm's name; `messaged` for the messaged group; `holdout` for the holdout."
    )
    group: Literal["arm", "messaged", "holdout"] = Field(
        description="arm: a split arm; messaged: in a journey with a holdout and no "
        "split, every entry not held out (the users the journey messages); holdout: "
        "the held-out entries (whatever arm they took)."
    )
    holdout: bool = Field(description="True for the holdout group (group is `holdout`).")
    entries: int = Field(description="Entries of the range in the group.")
    conversions: int = Field(description="Of them, those that reached the goal.")
    rate: float | None = Field(description="conversions / entries; null with no entries.")
    ci_low: float | None = Field(description="95% Wilson interval of the rate, low end.")
    ci_high: float | None = Field(description="95% Wilson interval of the rate, high end.")


class Comparison(_Model):
    """An arm (or the messaged group) against the baseline group: the lift and
    whether it is significant."""

    arm: str = Field(description="The arm compared, or `messaged`.")
    baseline: str = Field(description="The group it is compared with.")
    enough_data: bool = Field(
        description="Both groups meet the minimum sample (MinimumSample); when false, "
        "lift and p_value are null."
    )
    note: str | None = Field(description="Why there is not enough data, when there is not.")
    lift: float | None = Field(description="Absolute lift: arm rate minus baseline rate.")
    lift_ci_low: float | None = Field(
        description="95% interval of the absolute lift (Newcombe, statsmodels), low end."
    )
    lift_ci_high: float | None = Field(description="The same interval, high end.")
    relative_lift: float | None = Field(
        description="arm rate / baseline rate - 1; null when the baseline rate is 0."
    )
    p_value: float | None = Field(
        description="Two-sided p-value of the two-proportion z-test (pooled), "
        "statsmodels proportions_ztest."
    )
    significant: bool | None = Field(description="p_value < 0.05.")


class MinimumSample(_Model):
    """Below these, a comparison reports not enough data (docs/reports.md says why)."""

    entries: int = Field(description="Entries each group needs at least.")
    conversions: int = Field(description="Conversions each group needs at least.")
    non_conversions: int = Field(description="Entries without a conversion, at least.")


class ExperimentReport(_Model):
    """Split arms (or the messaged group) and the holdout, with each one's lift over
    the baseline."""

    arms: list[ArmReport] = Field(
        description="Each split arm (split order, then other arm names the entries hold), "
        "or, for a journey with a holdout and no split, the `messaged` group; then the "
        "holdout when there is one."
    )
    unassigned: int = Field(
        description="Entries not held out that took no split arm (they ended before it); "
        "0 without a split (the messaged group holds them)."
    )
    baseline: str | None = Field(
        description="What the arms are compared with: the holdout when there is one, "
        "else the first arm; null when there is nothing to compare."
    )
    comparisons: list[Comparison] = Field(
        description="Each other group against the baseline: each arm, or `messaged`, "
        "against the holdout (else each arm after the first against the first)."
    )
    confidence: float = Field(description="The confidence level of the intervals (0.95).")
    alpha: float = Field(description="The significance level of `significant` (0.05).")
    minimum_sample: MinimumSample


class ChannelDelivery(_Model):
    """The outbox and provider feedback of one channel."""

    channel: str = Field(description="The channel.")
    queued: int = Field(
        description="Outbox rows queued in the range still waiting to be delivered (or retried)."
    )
    sent: int = Field(description="Outbox rows queued in the range the provider accepted.")
    failed: int = Field(description="Outbox rows queued in the range that failed for good.")
    retried: int = Field(description="Outbox rows (any status) tried more than once.")
    feedback: dict[str, int] = Field(
        description="Provider reports by kind (delivered, opened, clicked, bounced, "
        "complained, unsubscribed): messages counted once per kind, when the first report "
        "of that kind for them is dated in the range."
    )


class JourneyReport(_Model):
    """What one journey did over a time range: entries, steps, funnel, goal,
    experiment and delivery."""

    format: int = Field(default=REPORT_FORMAT, description="The version of this JSON shape.")
    journey_id: str = Field(description="The journey.")
    title: str | None = Field(description="The journey's title, when it has one.")
    version: str | None = Field(description="The version reported on; null: all versions together.")
    graph_version: str = Field(
        description="The version whose compiled graph names the steps and paths: the one "
        "asked for, else the active one, else the last deployed."
    )
    versions: list[VersionInfo] = Field(description="Every deployed version, oldest first.")
    since: str | None = Field(description="The range's start (inclusive); null: the start.")
    until: str | None = Field(description="The range's end (exclusive); null: now.")
    entries: int = Field(description="Entries into the journey in the range.")
    in_flight: int = Field(description="Users in the journey now (all its steps).")
    exits: dict[str, int] = Field(
        description="Entries that ended in the range, by reason (completed, exit_event, exit_step)."
    )
    steps: list[StepReport] = Field(
        description="Every step of the graph in graph order, then steps only the actions name."
    )
    funnel: list[FunnelPath] = Field(description="Each path through the graph, in order.")
    funnel_truncated: bool = Field(
        description="True when the graph has more paths than the report lists."
    )
    goal: GoalReport | None = Field(description="null for a journey without a goal.")
    experiment: ExperimentReport | None = Field(
        description="null for a journey with neither a split nor a holdout."
    )
    delivery: list[ChannelDelivery] = Field(description="Per channel, sorted by channel.")
