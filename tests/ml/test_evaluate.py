"""The metrics offerrank reports agree with scikit-learn's reference implementations."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sklearn_log_loss

from ml import pipeline
from ml.config import RerankConfig, TrainingConfig
from ml.evaluate import (
    EvalWindow,
    Predictions,
    brier_score,
    expected_calibration_error,
    log_loss,
    roc_auc,
    scorer_metrics,
    select_best,
    with_margin_lift,
)


def test_auc_matches_sklearn_and_is_nan_for_one_class():
    rng = np.random.default_rng(3)
    labels = (rng.random(1500) < 0.25).astype(int)
    scores = np.round(rng.random(1500), 1)  # many ties: a tied pair counts one half in both
    assert roc_auc(labels, scores) == roc_auc_score(labels, scores)
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5)))


def _probabilities(seed: int, n: int = 2000):
    rng = np.random.default_rng(seed)
    probabilities = rng.beta(1, 4, n)
    labels = (rng.random(n) < probabilities * 1.2).astype(int)  # slightly under-confident
    return labels, probabilities


def test_log_loss_and_brier_match_sklearn():
    labels, probabilities = _probabilities(0)
    assert log_loss(labels, probabilities) == pytest.approx(sklearn_log_loss(labels, probabilities), rel=1e-12)
    assert brier_score(labels, probabilities) == pytest.approx(brier_score_loss(labels, probabilities), rel=1e-12)
    # certain and wrong: clipped, finite, as scikit-learn
    extreme = np.array([0.0, 1.0])
    assert log_loss(np.array([1, 0]), extreme) == pytest.approx(sklearn_log_loss([1, 0], extreme, labels=[0, 1]))


def test_ece_matches_the_weighted_gaps_of_sklearns_calibration_curve():
    labels, probabilities = _probabilities(1)
    rate, mean_probability = calibration_curve(labels, probabilities, n_bins=10, strategy="uniform")
    occupied = np.bincount(np.minimum((probabilities * 10).astype(int), 9), minlength=10)
    weights = occupied[occupied > 0] / len(labels)
    expected = float(np.sum(weights * np.abs(mean_probability - rate)))
    assert expected_calibration_error(labels, probabilities) == pytest.approx(expected, rel=1e-12)


def test_ece_hand_worked_example():
    # bin [0.1, 0.2): p 0.1, 0.1, y 0, 1 -> gap 0.4, weight 1/2; bin [0.9, 1]: p 1.0, 0.9, y 1, 1 -> gap 0.05
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(labels, np.array([0.1, 0.1, 1.0, 0.9])) == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)


def test_select_best_takes_the_primary_metric_then_the_tiebreak_then_the_name():
    metrics = {
        "logreg": {"ndcg@5": 0.60, "roc_auc": 0.80},
        "lgbm_binary": {"ndcg@5": 0.62, "roc_auc": 0.70},
        "lgbm_lambdarank": {"ndcg@5": 0.62 + 1e-13, "roc_auc": 0.75},
    }
    assert select_best(metrics, "ndcg@5", "roc_auc") == "lgbm_lambdarank"  # ndcg tied within 1e-12
    assert select_best(metrics, "roc_auc", "ndcg@5") == "logreg"
    tied = {name: {"ndcg@5": 0.5, "roc_auc": 0.7} for name in ("b_model", "a_model")}
    assert select_best(tied, "ndcg@5", "roc_auc") == "a_model"


def test_select_best_counts_nan_as_worst():
    metrics = {"a": {"ndcg@5": math.nan, "roc_auc": 0.9}, "b": {"ndcg@5": 0.1, "roc_auc": 0.5}}
    assert select_best(metrics, "ndcg@5", "roc_auc") == "b"
    all_nan = {"a": {"ndcg@5": math.nan, "roc_auc": 0.5}, "b": {"ndcg@5": math.nan, "roc_auc": 0.6}}
    assert select_best(all_nan, "ndcg@5", "roc_auc") == "b"
    with pytest.raises(ValueError, match="no candidates"):
        select_best({}, "ndcg@5", "roc_auc")


def _window(seed: int = 6, n_customers: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    customers = np.repeat(np.arange(100, 100 + n_customers), rng.integers(3, 12, n_customers))
    offers = rng.integers(0, 30, len(customers))
    return pd.DataFrame(
        {
            "customer_id": customers,
            "offer_id": offers,
            "label": (rng.random(len(customers)) < 0.3).astype(int),
            "offer_category": np.array(["dairy", "bakery", "drinks"])[offers % 3],
            "is_own_brand": offers % 2,
            "discount_depth": (offers % 5) / 10,
            "margin_impact": (offers % 4) / 4,
            "business_type": np.array(["retail", "horeca"])[customers % 2],
        }
    )


def _metrics(examples: pd.DataFrame, scores: np.ndarray, options: RerankConfig, ks=(3, 5)) -> pd.DataFrame:
    window = EvalWindow.from_examples(examples, ("business_type",))
    return pd.DataFrame(scorer_metrics(window, Predictions(scores, scores, scores), ks, options))


LIST_METRICS = {"ndcg", "precision", "recall", "map", "margin", "diversity", "coverage"}


def test_served_order_with_lambda_one_and_no_binding_cap_is_the_raw_order():
    examples = _window()
    scores = np.random.default_rng(7).permutation(len(examples)) / len(examples)  # untied
    metrics = _metrics(examples, scores, RerankConfig(mmr_lambda=1.0, max_per_category=100))
    raw, served = (metrics[metrics["ordering"] == o].drop(columns="ordering") for o in ("raw", "served"))
    listed = raw[raw["metric"].isin(LIST_METRICS)].reset_index(drop=True)
    pd.testing.assert_frame_equal(listed, served.reset_index(drop=True))
    # the order-free metrics are written for the raw order only
    assert set(served["metric"]) == LIST_METRICS
    assert {"roc_auc", "log_loss", "brier", "ece"} <= set(raw["metric"])


def test_the_category_cap_moves_the_served_list_hand_worked():
    # One customer: three dairy offers score highest, the bakery offer last; only the bakery
    # offer was redeemed. Raw order puts it 4th; a cap of 2 per category serves it 3rd.
    examples = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1],
            "offer_id": [10, 11, 12, 13],
            "label": [0, 0, 0, 1],
            "offer_category": ["dairy", "dairy", "dairy", "bakery"],
        }
    )
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    metrics = _metrics(examples, scores, RerankConfig(mmr_lambda=1.0, max_per_category=2), ks=(3,))
    value = metrics.set_index(["segment", "ordering", "metric"])["value"]
    assert value["all", "raw", "precision"] == 0.0
    assert value["all", "served", "precision"] == pytest.approx(1 / 3)
    assert value["all", "served", "map"] == pytest.approx(1 / 3)  # redeemed at place 3
    assert value["all", "raw", "map"] == pytest.approx(1 / 4)
    assert value["all", "served", "coverage"] == value["all", "raw", "coverage"] == 3 / 4  # another 3 of 4
    # raw top 3: three dairy offers, similarity 1 on the only attribute; served: 2 of 3 pairs differ
    assert value["all", "raw", "diversity"] == 0.0
    assert value["all", "served", "diversity"] == pytest.approx(2 / 3)


def test_segments_partition_the_customers_and_match_sklearn_on_their_rows():
    examples = _window()
    scores = np.random.default_rng(8).random(len(examples))
    metrics = _metrics(examples, scores, RerankConfig())
    assert set(metrics["segment"]) == {"all", "business_type=horeca", "business_type=retail"}
    per_customer = metrics[metrics["n_groups"].notna()]
    totals = per_customer[per_customer["segment"] != "all"].groupby(["ordering", "metric", "k"], dropna=False)
    overall = per_customer[per_customer["segment"] == "all"].set_index(["ordering", "metric", "k"]).sort_index()
    pd.testing.assert_series_equal(totals["n_groups"].sum(), overall["n_groups"], check_names=False)
    pd.testing.assert_series_equal(totals["n_rows"].sum(), overall["n_rows"], check_names=False)
    retail = (examples["business_type"] == "retail").to_numpy()
    auc = metrics[(metrics["segment"] == "business_type=retail") & (metrics["metric"] == "roc_auc")]
    assert auc["value"].item() == pytest.approx(roc_auc_score(examples["label"][retail], scores[retail]))


def test_margin_lift_compares_with_the_baseline_in_the_same_segment_ordering_and_k():
    rows = [
        {"segment": "all", "ordering": "raw", "metric": "margin", "k": 5, "value": value, "n_rows": 9, "n_groups": 3}
        for value in (0.6, 0.4, 0.0)
    ]
    results = with_margin_lift({"model": [rows[0]], "heuristic": [rows[1]], "empty": [rows[2]]}, "heuristic")
    lift = {name: [row["value"] for row in rows if row["metric"] == "margin_lift"] for name, rows in results.items()}
    assert lift["model"] == [pytest.approx(0.5)]
    assert lift["heuristic"] == [0.0]
    assert lift["empty"] == [-1.0]
    assert with_margin_lift({"model": [rows[0]]}, "heuristic") == {"model": [rows[0]]}


def test_margin_counts_only_redeemed_rows_at_their_kept_share():
    examples = _window()
    scores = np.random.default_rng(9).random(len(examples))
    metrics = _metrics(examples, scores, RerankConfig(), ks=(1000,))  # every row is in the top k
    margin = metrics[(metrics["segment"] == "all") & (metrics["ordering"] == "raw") & (metrics["metric"] == "margin")]
    kept = (examples["label"] * (1 - examples["margin_impact"])).groupby(examples["customer_id"]).sum()
    assert margin["value"].item() == pytest.approx(kept.mean())


def test_scorers_judged_side_by_side_give_the_rows_of_one_at_a_time():
    examples = _window()
    scores = np.random.default_rng(9).random((5, len(examples)))
    predictions = {f"scorer_{i}": Predictions(row, row, row) for i, row in enumerate(scores)}
    results = {
        threads: pipeline.evaluate_window(
            examples, predictions, TrainingConfig(evaluation_threads=threads), RerankConfig()
        )
        for threads in (1, 2)
    }
    assert list(results[2]) == list(predictions)
    for name in predictions:
        pd.testing.assert_frame_equal(pd.DataFrame(results[2][name]), pd.DataFrame(results[1][name]))
    with pytest.raises(ValueError, match="evaluation_threads must be at least 1"):
        TrainingConfig(evaluation_threads=0)
