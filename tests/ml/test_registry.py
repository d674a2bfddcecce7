"""The model policy: when to retrain and when a challenger replaces the champion."""

import datetime as dt

import pytest

from ml.config import ModelPolicy, load_model_policy
from ml.registry import promotion_decision, retrain_decision

MONDAY, TUESDAY = dt.date(2026, 6, 1), dt.date(2026, 6, 2)
POLICY = ModelPolicy()


@pytest.mark.parametrize(
    ("kwargs", "retrain", "reason"),
    [
        ({"champion_id": None, "champion_usable": False}, True, "no champion"),
        ({"champion_id": "m", "champion_usable": False}, True, "cannot score"),
        ({"champion_id": "m", "champion_usable": True, "forced": True}, True, "asked for"),
        ({"champion_id": "m", "champion_usable": True, "drift": 0.4}, True, "drift 0.400 exceeds"),
        ({"champion_id": "m", "champion_usable": True, "drift": 0.1}, False, "is current"),
        ({"champion_id": "m", "champion_usable": True}, False, "next retraining on a monday"),
    ],
)
def test_retrain_decision_on_a_tuesday(kwargs, retrain, reason):
    decision = retrain_decision(POLICY, TUESDAY, **kwargs)
    assert decision.yes is retrain
    assert reason in decision.reason


def test_retrain_on_the_configured_weekday():
    assert retrain_decision(POLICY, MONDAY, champion_id="m", champion_usable=True).yes
    never = load_model_policy({"OFFERRANK_RETRAIN_ON": "never"})
    decision = retrain_decision(never, MONDAY, champion_id="m", champion_usable=True)
    assert not decision.yes and "forced run or drift" in decision.reason


@pytest.mark.parametrize(
    ("challenger", "champion", "promote"),
    [
        (0.70, None, True),
        (0.70, float("nan"), True),
        (float("nan"), None, False),
        (0.702, 0.70, True),  # exactly the margin
        (0.7019, 0.70, False),
        (0.69, 0.70, False),
        (float("nan"), 0.70, False),
    ],
)
def test_promotion_needs_the_margin(challenger, champion, promote):
    assert promotion_decision(POLICY, "ndcg@5", challenger, champion).yes is promote


def test_policy_from_environment_and_its_errors():
    policy = load_model_policy(
        {
            "OFFERRANK_RETRAIN_ON": "Monday, thursday",
            "OFFERRANK_PROMOTION_MARGIN": "0.01",
            "OFFERRANK_DRIFT_THRESHOLD": "1",
        }
    )
    assert policy == ModelPolicy(retrain_weekdays=frozenset({0, 3}), promotion_margin=0.01, drift_threshold=1.0)
    with pytest.raises(ValueError, match="unknown weekday"):
        load_model_policy({"OFFERRANK_RETRAIN_ON": "funday"})
    with pytest.raises(ValueError, match="must not be negative"):
        load_model_policy({"OFFERRANK_PROMOTION_MARGIN": "-1"})
    with pytest.raises(ValueError, match="must be a number"):
        load_model_policy({"OFFERRANK_DRIFT_THRESHOLD": "high"})
