"""The feature refresh benchmark's verdict (bench/feature_refresh.py): the rounds' wall ratios are
judged by their median against the 15% target, and their range and count within it are said."""

from __future__ import annotations

import pytest

from bench.feature_refresh import DbtRun, Round, judge


def _round(refresh_wall: float, full_wall: float = 100.0) -> Round:
    return Round(
        full=DbtRun(full_wall, [("feat_customer_daily", 60.0), ("fct_scoring_candidates", 20.0)]),
        refresh=DbtRun(refresh_wall, [("feat_customer_daily", 3.0), ("fct_scoring_candidates", 20.0)]),
    )


def test_the_median_round_is_judged_not_the_best():
    verdict = judge([_round(14.0), _round(16.0), _round(17.0)])
    assert verdict.median == pytest.approx(0.16)
    assert (verdict.lowest, verdict.highest) == (pytest.approx(0.14), pytest.approx(0.17))
    assert not verdict.met
    assert verdict.rounds_within == 1
    assert "16.0%" in str(verdict) and "NOT met" in str(verdict) and "1 of 3" in str(verdict)


def test_one_slow_full_rebuild_does_not_decide_alone():
    verdict = judge([_round(14.0), _round(14.5), _round(14.0, full_wall=80.0)])
    assert verdict.met
    assert verdict.median == pytest.approx(0.145)
    assert verdict.highest == pytest.approx(0.175)
    assert verdict.rounds_within == 2


def test_the_target_itself_is_met_and_a_hair_above_it_is_not_printed_as_met():
    assert judge([_round(15.0)]).met
    above = judge([_round(15.46)])
    assert not above.met
    assert "15.5%" in str(above) and "NOT met" in str(above)


def test_node_ratios_over_a_subset_of_nodes():
    one = _round(20.0)
    assert one.node_ratio() == pytest.approx(23.0 / 80.0)
    assert one.node_ratio({"feat_customer_daily"}) == pytest.approx(3.0 / 60.0)


def test_no_rounds_is_an_error():
    with pytest.raises(ValueError, match="no rounds"):
        judge([])
