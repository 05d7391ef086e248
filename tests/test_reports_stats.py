"""The A/B figures of a report against statsmodels and scipy called directly, and the
minimum-sample rule."""

from __future__ import annotations

import math

import pytest
from scipy.stats import chi2_contingency
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from journeyc.compile import ir
from journeyc.reports import stats
from journeyc.reports.build import experiment
from journeyc.store.sqlite.reports import EntryGroup


def test_a_rate_has_the_wilson_interval() -> None:
    r = stats.rate(120, 1000)
    low, high = proportion_confint(120, 1000, alpha=0.05, method="wilson")
    assert r.rate == 0.12 and (r.low, r.high) == pytest.approx((low, high))
    assert r.low == pytest.approx(0.1013, abs=1e-4) and r.high == pytest.approx(0.1416, abs=1e-4)
    assert stats.rate(0, 0) == stats.Rate(None, None, None)
    # Wilson stays inside [0, 1] where the normal approximation would not.
    zero = stats.rate(0, 40)
    assert zero.low == pytest.approx(0.0, abs=1e-12) and 0 < (zero.high or 0) < 0.1


def test_a_lift_has_the_z_test_p_value_of_statsmodels_and_scipy() -> None:
    lift = stats.lift((150, 1000), (120, 1000))
    z, p = proportions_ztest([150, 120], [1000, 1000])
    assert lift.enough_data and lift.p_value == pytest.approx(float(p))
    # The pooled two-proportion z-test is the chi-squared test without continuity
    # correction on the 2x2 table: the same p-value from scipy.
    chi2, p_chi2, _, _ = chi2_contingency([[150, 850], [120, 880]], correction=False)
    assert lift.p_value == pytest.approx(p_chi2) and chi2 == pytest.approx(float(z) ** 2)
    assert lift.p_value == pytest.approx(0.0496, abs=1e-4)
    assert lift.lift == pytest.approx(0.03) and lift.relative == pytest.approx(0.25)
    assert lift.lift_low is not None and lift.lift_high is not None
    assert lift.lift_low < 0.03 < lift.lift_high


@pytest.mark.parametrize(
    ("arm", "baseline", "note"),
    [
        ((5, 29), (10, 100), "arm: 29 entries (needs 30)"),
        ((4, 100), (10, 100), "arm: 4 conversions (needs 5)"),
        ((10, 100), (96, 100), "baseline: 4 non-conversions (needs 5)"),
    ],
)
def test_below_the_minimum_sample_there_is_not_enough_data(
    arm: tuple[int, int], baseline: tuple[int, int], note: str
) -> None:
    lift = stats.lift(arm, baseline)
    assert not lift.enough_data and lift.p_value is None and lift.lift is None
    assert lift.note == f"not enough data: {note}"


def test_the_note_names_the_groups_short_of_the_minimum() -> None:
    lift = stats.lift((1, 12), (0, 3), names=("messaged", "holdout"))
    assert lift.note == (
        "not enough data: messaged: 12 entries (needs 30); holdout: 3 entries (needs 30)"
    )


def test_at_the_minimum_sample_there_is_a_p_value() -> None:
    lift = stats.lift((5, 30), (25, 30))
    assert lift.enough_data and lift.p_value is not None and lift.p_value < 0.05


def _journey(holdout: float, arms: list[str], goal: bool = True) -> ir.JourneyIR:
    split = ir.SplitNode(
        id="1",
        arms=[ir.SplitArm(percent=100 / len(arms), name=a, then=None) for a in arms],
    )
    return ir.JourneyIR(
        id="j",
        file="j.journey",
        holdout=holdout,
        goal=ir.GoalRule(event="order_completed") if goal else None,
        start="1",
        nodes={"1": split},
    )


def test_arms_are_compared_with_the_holdout() -> None:
    groups = [
        EntryGroup(False, "A", 1000, 120),
        EntryGroup(False, "B", 1000, 150),
        EntryGroup(True, "A", 400, 30),
        EntryGroup(True, "B", 600, 45),
        EntryGroup(False, None, 7, 0),
    ]
    e = experiment(_journey(10, ["A", "B"]), groups)
    assert e is not None and e.baseline == "holdout" and e.unassigned == 7
    assert [(a.name, a.entries, a.conversions) for a in e.arms] == [
        ("A", 1000, 120),
        ("B", 1000, 150),
        ("holdout", 1000, 75),
    ]
    b = e.comparisons[1]
    _, p = proportions_ztest([150, 75], [1000, 1000])
    assert (b.arm, b.baseline) == ("B", "holdout") and b.p_value == pytest.approx(float(p))
    assert b.significant is True and b.lift == pytest.approx(0.075)


def test_without_a_holdout_the_first_arm_is_the_baseline() -> None:
    e = experiment(
        _journey(0, ["A", "B"]),
        [EntryGroup(False, "A", 1000, 120), EntryGroup(False, "B", 1000, 150)],
    )
    assert e is not None and e.baseline == "A" and [c.arm for c in e.comparisons] == ["B"]
    assert e.comparisons[0].p_value == pytest.approx(0.0496, abs=1e-4)
    assert e.minimum_sample.entries == stats.MINIMUM.entries


def test_without_a_goal_there_is_nothing_to_compare() -> None:
    e = experiment(_journey(0, ["A", "B"], goal=False), [EntryGroup(False, "A", 100, 0)])
    assert e is not None and not e.comparisons[0].enough_data
    assert e.comparisons[0].note == "the journey has no goal to compare"


def test_no_variance_at_all_gives_no_p_value_rather_than_nan() -> None:
    assert stats._finite(math.nan) is None
    assert experiment(_journey(0, []), []) is None  # no split arm, no holdout
