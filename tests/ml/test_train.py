import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml.config import TrainingConfig
from ml.train import NotEnoughDataError, predict, temporal_split, train_binary


def _examples(n_days: int = 30, per_day: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    signal = rng.normal(size=n)
    return pd.DataFrame(
        {
            "shown_date": np.repeat([dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(n_days)], per_day),
            "customer_id": rng.integers(0, 100, n),
            "signal": signal,
            "noise": rng.normal(size=n),
            "label": (rng.random(n) < 1 / (1 + np.exp(-(2 * signal - 2)))).astype(int),
        }
    )


def test_temporal_split_puts_every_validation_date_after_every_training_date():
    split = temporal_split(_examples(), "shown_date", valid_days=7)
    assert split.train["shown_date"].max() < split.valid["shown_date"].min()
    assert split.valid_start_date == dt.date(2026, 1, 24)
    assert split.valid_end_date == dt.date(2026, 1, 30)
    assert split.train_end_date == dt.date(2026, 1, 23)
    assert len(split.train) + len(split.valid) == 30 * 200


def test_temporal_split_refuses_a_window_with_one_class():
    examples = _examples()
    examples["label"] = 0
    with pytest.raises(NotEnoughDataError, match="needs both"):
        temporal_split(examples, "shown_date", valid_days=7)


def test_model_learns_the_signal_and_is_deterministic():
    split = temporal_split(_examples(), "shown_date", valid_days=7)
    config = TrainingConfig()
    booster = train_binary(split, ["signal", "noise"], config)
    scores = predict(booster, split.valid, ["signal", "noise"])
    # A feature that should raise the score does.
    assert np.corrcoef(scores, split.valid["signal"])[0, 1] > 0.8
    again = train_binary(split, ["signal", "noise"], config)
    assert again.model_to_string() == booster.model_to_string()
