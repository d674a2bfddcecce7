"""The model policy's decisions, on plain values: when to retrain, whether a challenger takes over.

Nothing here reads the database or the clock; `ml.pipeline` gathers the facts and records the
decisions (and their reasons) in `ml.pipeline_runs` and `ml.model_promotions`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

from ml.config import WEEKDAYS, ModelPolicy


@dataclass(frozen=True)
class Decision:
    """A yes or no with the reason a person reads in the run log and the registry history."""

    yes: bool
    reason: str


def retrain_decision(
    policy: ModelPolicy,
    run_date: dt.date,
    *,
    champion_id: str | None,
    champion_usable: bool,
    forced: bool = False,
    drift: float | None = None,
) -> Decision:
    """Whether the run for `run_date` trains new models or scores with the champion.

    `drift` is the day's largest feature drift when the evaluation stage measured one (None
    otherwise); it triggers retraining above `policy.drift_threshold`.
    """
    if champion_id is None:
        return Decision(True, "there is no champion")
    if not champion_usable:
        return Decision(True, f"champion {champion_id} cannot score today's candidates")
    if forced:
        return Decision(True, "retraining was asked for")
    if run_date.weekday() in policy.retrain_weekdays:
        return Decision(True, f"{WEEKDAYS[run_date.weekday()]} is a retraining day")
    if drift is not None and drift > policy.drift_threshold:
        return Decision(True, f"feature drift {drift:.3f} exceeds the threshold {policy.drift_threshold}")
    return Decision(False, f"champion {champion_id} is current; next retraining on a {_days(policy)}")


def _days(policy: ModelPolicy) -> str:
    return " or ".join(WEEKDAYS[day] for day in sorted(policy.retrain_weekdays)) or "forced run or drift"


def promotion_decision(
    policy: ModelPolicy,
    metric: str,
    challenger: float,
    champion: float | None,
) -> Decision:
    """Whether a challenger scoring `challenger` replaces a champion scoring `champion` on the same
    validation window (None: no usable champion). NaN never wins."""
    if champion is None or math.isnan(champion):
        if math.isnan(challenger):
            return Decision(False, f"the challenger's {metric} is undefined on the validation window")
        return Decision(True, f"no usable champion; challenger {metric} {challenger:.4f}")
    beats = not math.isnan(challenger) and challenger >= champion + policy.promotion_margin
    verdict = "beats" if beats else "does not beat"
    return Decision(
        beats,
        f"{metric} {challenger:.4f} {verdict} the champion's {champion:.4f} by the margin {policy.promotion_margin}",
    )


def rollback_target(history: pd.DataFrame, champion_id: str | None) -> str | None:
    """The model the current champion replaced (from `model_promotions`, oldest first), or None."""
    if champion_id is None:
        return None
    promotions = history[history["model_id"] == champion_id]
    return None if promotions.empty else promotions["previous_model_id"].iloc[-1]
