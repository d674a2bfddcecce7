import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml.config import TrainingConfig
from ml.models import FeatureSpec, fit_model
from ml.train import (
    SAMPLE_WEIGHT,
    NotEnoughDataError,
    downsample_negatives,
    temporal_split,
    training_window,
)

FEATURES = FeatureSpec(("signal", "noise"))


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


def test_temporal_split_orders_train_before_tune_before_valid():
    split = temporal_split(_examples(), "shown_date", valid_days=7, tune_days=5)
    assert split.train["shown_date"].max() < split.tune["shown_date"].min()
    assert split.tune["shown_date"].max() < split.valid["shown_date"].min()
    assert (split.valid_start_date, split.valid_end_date) == (dt.date(2026, 1, 24), dt.date(2026, 1, 30))
    assert (split.tune_start_date, split.tune_end_date) == (dt.date(2026, 1, 19), dt.date(2026, 1, 23))
    assert (split.train_start_date, split.train_end_date) == (dt.date(2026, 1, 1), dt.date(2026, 1, 18))
    assert len(split.train) + len(split.tune) + len(split.valid) == 30 * 200


@pytest.mark.parametrize(
    ("window", "days"), [("training", range(0, 18)), ("tune", range(18, 23)), ("validation", range(23, 30))]
)
def test_temporal_split_names_the_window_with_one_class(window, days):
    examples = _examples()
    first = dt.date(2026, 1, 1)
    in_window = examples["shown_date"].isin([first + dt.timedelta(days=d) for d in days])
    examples.loc[in_window, "label"] = 0
    with pytest.raises(NotEnoughDataError, match=f"the {window} window .* needs both"):
        temporal_split(examples, "shown_date", valid_days=7, tune_days=5)


def test_temporal_split_refuses_no_examples():
    with pytest.raises(NotEnoughDataError, match="no labelled"):
        temporal_split(_examples().head(0), "shown_date", valid_days=7, tune_days=5)


def test_model_learns_the_signal_and_is_deterministic():
    split = temporal_split(_examples(), "shown_date", valid_days=7, tune_days=7)
    config = TrainingConfig()
    model = fit_model("lgbm_binary", split, FEATURES, config)
    scores = model.raw_scores(split.valid)
    # A feature that should raise the score does.
    assert np.corrcoef(scores, split.valid["signal"])[0, 1] > 0.8
    assert fit_model("lgbm_binary", split, FEATURES, config).to_text() == model.to_text()


def _labelled(n_positives: int, n_negatives: int) -> pd.DataFrame:
    labels = np.r_[np.ones(n_positives, dtype=int), np.zeros(n_negatives, dtype=int)]
    return pd.DataFrame({"impression_id": np.arange(1, len(labels) + 1) * 7, "label": labels})


def test_downsampling_keeps_every_positive_and_the_asked_ratio_of_negatives():
    sampled = downsample_negatives(_labelled(100, 5000), negatives_per_positive=4, seed=1)
    assert (sampled["label"] == 1).sum() == 100
    assert (sampled["label"] == 0).sum() == 400
    # kept negatives stand for all of them: the weighted class totals are unchanged
    assert sampled.loc[sampled["label"] == 0, SAMPLE_WEIGHT].sum() == pytest.approx(5000)
    assert (sampled.loc[sampled["label"] == 1, SAMPLE_WEIGHT] == 1).all()


def test_downsampling_is_seeded_and_independent_of_row_order():
    examples = _labelled(50, 2000)
    sampled = downsample_negatives(examples, 2, seed=1)
    shuffled = downsample_negatives(examples.sample(frac=1, random_state=3), 2, seed=1)
    assert set(shuffled["impression_id"]) == set(sampled["impression_id"])
    assert set(downsample_negatives(examples, 2, seed=2)["impression_id"]) != set(sampled["impression_id"])


def test_downsampling_an_impression_keeps_its_fate_as_examples_are_added():
    examples = _labelled(50, 2000)
    more = pd.concat([examples, _labelled(50, 2000).assign(impression_id=lambda f: f["impression_id"] + 10**6)])
    kept = set(downsample_negatives(examples, 2, seed=1)["impression_id"])
    kept_later = set(downsample_negatives(more, 4, seed=1)["impression_id"])
    # twice the negatives kept of twice the data: the first half's kept ones are (almost all) still kept
    assert len(kept & kept_later) / len(kept) > 0.8


def test_downsampling_below_the_ratio_keeps_everything():
    examples = _labelled(100, 150)
    sampled = downsample_negatives(examples, 4, seed=1)
    assert len(sampled) == 250
    assert (sampled[SAMPLE_WEIGHT] == 1).all()


def test_training_with_downsampled_negatives_learns_and_stays_calibrated():
    examples = _examples(per_day=400).assign(impression_id=lambda f: np.arange(len(f)))
    split = temporal_split(examples, "shown_date", valid_days=7, tune_days=7)
    config = TrainingConfig(negatives_per_positive=1, class_weighting="none")
    model = fit_model("lgbm_binary", split, FEATURES, config)
    scores = 1 / (1 + np.exp(-model.raw_scores(split.valid)))
    assert np.corrcoef(scores, split.valid["signal"])[0, 1] > 0.8
    # weighting the kept negatives back up keeps the mean prediction near the base rate
    assert scores.mean() == pytest.approx(split.valid["label"].mean(), abs=0.03)
    assert fit_model("lgbm_binary", split, FEATURES, config).to_text() == model.to_text()


@pytest.mark.parametrize("negatives_per_positive", [None, 2])
def test_balanced_training_window_gives_both_classes_equal_weight(negatives_per_positive):
    examples = _examples().assign(impression_id=lambda f: np.arange(len(f)))
    split = temporal_split(examples, "shown_date", valid_days=7, tune_days=7)
    config = TrainingConfig(negatives_per_positive=negatives_per_positive)
    window = training_window(split, config, "balanced")
    labels = window.rows["label"].to_numpy()
    assert window.weights[labels == 1].sum() == pytest.approx(window.weights[labels == 0].sum())
    # the total weight is the number of training rows the window stands for
    assert window.weights.sum() == pytest.approx(len(split.train))
    assert window.params["class_weighting"] == "balanced"
    unweighted = training_window(split, config, "none")
    assert unweighted.weights.sum() == pytest.approx(len(split.train))
