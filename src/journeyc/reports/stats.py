"""The A/B statistics of a report, all from statsmodels: no hand-written formulas.

- a group's conversion rate with its 95% Wilson score interval
  (``proportion_confint(method="wilson")``): unlike the normal approximation it
  stays inside [0, 1] and keeps its coverage for small counts and rates near 0;
- an arm against the baseline: the two-sided two-proportion z-test with a pooled
  variance (``proportions_ztest``), and Newcombe's interval of the difference
  (``confint_proportions_2indep(method="newcomb")``).

The z-test rests on the normal approximation to the binomial. It is trusted
(the usual textbook rule, np ≥ 5 and n(1-p) ≥ 5) when each group has at least 5
conversions and 5 non-conversions; 30 entries per group on top keeps a handful of
early entries from being read as a result. Below :data:`MINIMUM`, a comparison
says "not enough data" instead of a p-value (docs/reports.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95
"""The confidence level of every interval."""

ALPHA = 0.05
"""The significance level: a comparison is significant when its p-value is below."""


@dataclass(frozen=True, slots=True)
class Minimum:
    """The smallest group a comparison reads: entries, conversions, non-conversions."""

    entries: int = 30
    conversions: int = 5
    non_conversions: int = 5


MINIMUM = Minimum()
"""The minimum sample of each group in a comparison."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A group's conversion rate and its Wilson interval (None with no entries)."""

    rate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class Lift:
    """An arm against a baseline: None figures when there is not enough data."""

    enough_data: bool
    note: str | None
    lift: float | None = None
    lift_low: float | None = None
    lift_high: float | None = None
    relative: float | None = None
    p_value: float | None = None


def rate(conversions: int, entries: int) -> Rate:
    """The conversion rate with its 95% Wilson score interval."""
    if entries <= 0:
        return Rate(None, None, None)
    # statsmodels is imported where it is used: it brings scipy and pandas (~60 MB and
    # ~1 s), which the daemon's API process should pay only when a report is asked for.
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(conversions, entries, alpha=1 - CONFIDENCE, method="wilson")
    return Rate(conversions / entries, float(low), float(high))


def shortfall(conversions: int, entries: int, minimum: Minimum = MINIMUM) -> str | None:
    """Why a group is too small to compare (None when it is big enough)."""
    if entries < minimum.entries:
        return f"{entries} entries (needs {minimum.entries})"
    if conversions < minimum.conversions:
        return f"{conversions} conversions (needs {minimum.conversions})"
    if entries - conversions < minimum.non_conversions:
        return f"{entries - conversions} non-conversions (needs {minimum.non_conversions})"
    return None


def lift(
    arm: tuple[int, int],
    baseline: tuple[int, int],
    minimum: Minimum = MINIMUM,
    names: tuple[str, str] = ("arm", "baseline"),
) -> Lift:
    """``arm`` against ``baseline``, each (conversions, entries): absolute and relative
    lift, Newcombe's 95% interval of the absolute lift, and the two-sided p-value of
    the pooled two-proportion z-test; "not enough data" below ``minimum``, the note
    naming the groups short of it by ``names`` (the arm's, the baseline's)."""
    notes = [
        f"{name}: {why}"
        for name, group in zip(names, (arm, baseline), strict=True)
        if (why := shortfall(*group, minimum)) is not None
    ]
    if notes:
        return Lift(False, "not enough data: " + "; ".join(notes))
    (c1, n1), (c0, n0) = arm, baseline
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    _, p_value = proportions_ztest([c1, c0], [n1, n0], alternative="two-sided")
    low, high = confint_proportions_2indep(
        c1, n1, c0, n0, method="newcomb", compare="diff", alpha=1 - CONFIDENCE
    )
    p1, p0 = c1 / n1, c0 / n0
    return Lift(
        True,
        None,
        lift=p1 - p0,
        lift_low=float(low),
        lift_high=float(high),
        relative=p1 / p0 - 1 if p0 > 0 else None,
        p_value=_finite(float(p_value)),
    )


def _finite(x: float) -> float | None:
    # JSON has no NaN: a test with no variance at all gives none, reported as null.
    return x if math.isfinite(x) else None
