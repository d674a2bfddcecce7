"""Every algorithm learns a planted signal, explains its scores additively and survives its own text."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer

from ml import logreg
from ml.config import ALGORITHMS, TrainingConfig
from ml.evaluate import roc_auc
from ml.lgbm import ranking_groups
from ml.logreg import logreg_pipeline, median_or_zero
from ml.models import FeatureSpec, fit_model, load_model
from ml.train import TemporalSplit, temporal_split, training_window

FEATURES = FeatureSpec(("signal", "noise", "business_type"), categorical=("business_type",))


def _examples(n_days: int = 24, per_day: int = 250, seed: int = 0) -> pd.DataFrame:
    """Impressions whose redemption rises with `signal` and with business type 'a' (falls with 'b')."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    signal = rng.normal(size=n)
    business_type = rng.choice(np.array(["a", "b", "c", None], dtype=object), n)
    logit = 1.5 * signal + np.select([business_type == "a", business_type == "b"], [1.0, -1.0], 0.0) - 2
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "impression_id": np.arange(n),
            "customer_id": rng.integers(0, 80, n),
            "offer_id": rng.integers(0, 20, n),
            "shown_date": np.repeat([dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(n_days)], per_day),
            "label": label,
            # redeemed: 3; otherwise viewed or clicked sometimes
            "relevance": np.where(label == 1, 3, rng.choice([0, 0, 1, 2], n)),
            "signal": signal,
            "noise": rng.normal(size=n),
            "business_type": business_type,
        }
    )


def _split(examples: pd.DataFrame) -> TemporalSplit:
    return temporal_split(examples, "shown_date", valid_days=7, tune_days=5)


CONFIG = TrainingConfig(num_boost_round=200, early_stopping_rounds=20)


@pytest.fixture(scope="module")
def split() -> TemporalSplit:
    return _split(_examples())


@pytest.fixture(scope="module", params=ALGORITHMS)
def fitted(request, split):
    return fit_model(request.param, split, FEATURES, CONFIG)


def test_each_algorithm_learns_the_signal(fitted, split):
    assert roc_auc(split.valid["label"].to_numpy(), fitted.raw_scores(split.valid)) > 0.6
    # A feature that should raise the score does.
    change = fitted.raw_scores(split.valid.assign(signal=split.valid["signal"] + 1)) - fitted.raw_scores(split.valid)
    assert change.mean() > 0
    assert (change >= 0).mean() > 0.8  # trees need not be monotone everywhere


def test_contributions_add_up_to_the_raw_scores(fitted, split):
    contributions = fitted.contributions(split.valid)
    assert contributions.shape == (len(split.valid), len(FEATURES.names) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), fitted.raw_scores(split.valid), atol=1e-6)


def test_text_round_trip_scores_identically(fitted, split):
    loaded = load_model(fitted.algorithm, fitted.to_text(), FEATURES)
    np.testing.assert_array_equal(loaded.raw_scores(split.valid), fitted.raw_scores(split.valid))
    np.testing.assert_array_equal(loaded.contributions(split.valid), fitted.contributions(split.valid))
    assert loaded.to_text() == fitted.to_text()


def test_unknown_and_null_categories_score(fitted, split):
    rows = split.valid.head(3).assign(business_type=["never seen", None, "a"])
    scores = fitted.raw_scores(rows)
    assert np.isfinite(scores).all()
    assert scores[2] == fitted.raw_scores(split.valid.head(3).assign(business_type="a"))[2]


def test_training_is_deterministic(fitted, split):
    assert fit_model(fitted.algorithm, split, FEATURES, CONFIG).to_text() == fitted.to_text()


def test_params_and_importance_are_reportable(fitted):
    params = json.loads(json.dumps(fitted.params))
    assert params["negatives_per_positive"] is None
    importance = fitted.feature_importance()
    assert list(importance.columns) == ["feature", "importance_type", "importance"]
    for _kind, rows in importance.groupby("importance_type"):
        assert tuple(rows["feature"]) == FEATURES.names
    gain = importance[importance["importance_type"] != "split"].set_index("feature")["importance"]
    assert gain["signal"] > gain["noise"]


def test_logreg_text_scores_as_scikit_learn_does(split):
    model = fit_model("logreg", split, FEATURES, CONFIG)
    window = training_window(split, CONFIG, CONFIG.class_weighting)
    pipeline = logreg_pipeline(FEATURES, CONFIG.logreg_params)
    pipeline.fit(FEATURES.frame(window.rows), window.rows["label"], model__sample_weight=window.weights)
    valid = split.valid.assign(business_type=split.valid["business_type"].where(split.valid.index % 7 > 0, "new"))
    expected = pipeline.decision_function(FEATURES.frame(valid))
    assert np.allclose(load_model("logreg", model.to_text(), FEATURES).raw_scores(valid), expected)


def test_logreg_medians_are_scikit_learns_median_strategy():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "odd_count": rng.normal(size=101),
            "even_count": np.r_[rng.normal(size=100), np.nan],
            "gappy": np.where(rng.random(101) < 0.4, np.nan, rng.integers(0, 5, 101)),
            "never_seen": np.full(101, np.nan),
        }
    )
    ours = SimpleImputer(strategy=median_or_zero, keep_empty_features=True).fit(frame)
    theirs = SimpleImputer(strategy="median", keep_empty_features=True).fit(frame)
    assert ours.statistics_.tolist() == theirs.statistics_.tolist()
    assert ours.statistics_[-1] == 0.0


def test_logreg_importance_over_a_sample_is_close_to_all_rows(split, monkeypatch):
    everything = fit_model("logreg", split, FEATURES, CONFIG).feature_importance().set_index("feature")
    monkeypatch.setattr(logreg, "IMPORTANCE_ROWS", 400)  # every 7th of the 3,000 training rows
    sampled = fit_model("logreg", split, FEATURES, CONFIG).feature_importance().set_index("feature")
    assert not sampled["importance"].equals(everything["importance"])
    assert np.allclose(sampled["importance"], everything["importance"], rtol=0.1)


def test_lambdarank_groups_are_consecutive_and_row_order_does_not_matter(split):
    shuffled = split.train.sample(frac=1, random_state=1)
    order, sizes = ranking_groups(shuffled)
    ordered = shuffled.iloc[order]
    keys = list(zip(ordered["customer_id"], ordered["shown_date"], strict=True))
    assert keys == sorted(keys)
    assert sizes.sum() == len(shuffled)
    assert len(sizes) == len(set(keys))
    reshuffled = TemporalSplit(**{**split.__dict__, "train": shuffled, "tune": split.tune.iloc[::-1]})
    assert (
        fit_model("lgbm_lambdarank", reshuffled, FEATURES, CONFIG).to_text()
        == fit_model("lgbm_lambdarank", split, FEATURES, CONFIG).to_text()
    )


def test_lambdarank_falls_back_to_the_binary_label():
    split = _split(_examples().drop(columns="relevance"))
    model = fit_model("lgbm_lambdarank", split, FEATURES, CONFIG)
    assert roc_auc(split.valid["label"].to_numpy(), model.raw_scores(split.valid)) > 0.6


def test_unknown_algorithm_and_mismatched_features_are_refused(split):
    with pytest.raises(ValueError, match="unknown algorithm 'xgboost'"):
        fit_model("xgboost", split, FEATURES, CONFIG)
    text = fit_model("lgbm_binary", split, FEATURES, CONFIG).to_text()
    with pytest.raises(ValueError, match="reads features"):
        load_model("lgbm_binary", text, FeatureSpec(("signal", "noise")))


def test_feature_spec_refuses_a_categorical_column_it_does_not_name():
    with pytest.raises(ValueError, match="not among"):
        FeatureSpec(("signal",), categorical=("business_type",))
    assert FEATURES.numeric == ("signal", "noise")
